"""The docs cannot rot: every code pointer and test they cite exists, the generated table of
docs/equations.md is what its command prints, the walkthrough's shape and parameter tables
are those of the built models, the diagrams and the runnable walkthrough run."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinynet.gradcheck import long_double_is_wider

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

# `path.py: name, name2`, `path.py::name`, and `path.py`: `name`, `name2` (to the end of the clause)
POINTER = re.compile(r"`([\w./-]+\.py)(?:::|:\s*)([^`]+)`")
POINTER_THEN_NAMES = re.compile(r"`([\w./-]+\.py)`:\s*(?=(.*?)(?:\.\s|\.$|;|\n\n))", re.S)
IDENTIFIER = re.compile(r"`([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)`")
PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|md|png|sh|toml))`")
TEST_NAME = re.compile(r"\b(test_\w+)\b(?!\.py)")
LINK = re.compile(r"\]\(((?!https?:|#)[^)#\s]+)(?:#[^)]*)?\)")


def doc_texts():
    return [(path, path.read_text(encoding="utf-8")) for path in DOCS]


def defines(source, name):
    """True when `source` defines `name`: a function, class, module-level or class-level
    assignment, attribute set on self, or dict key (for NAME["key"], NAME is looked up)."""
    name = re.sub(r"\[.*$|\(.*$", "", name.strip())
    parts = name.split(".")
    return all(re.search(rf"(^\s*(async\s+)?(def|class)\s+{re.escape(part)}\b)"
                         rf"|(^\s*{re.escape(part)}\s*(:[^=\n]*)?=)"
                         rf"|(self\.{re.escape(part)}\s*=)", source, re.M) for part in parts if part)


def cited_pointers():
    """(doc, path, name) for every name a doc says a file defines."""
    for doc, text in doc_texts():
        for match in POINTER.finditer(text):
            path, names = match.groups()
            names = re.sub(r"\([^)]*\)", "", names)  # a signature's arguments are no names
            for name in re.split(r",\s*|\s+and\s+|\s*/\s*", names):
                if name.strip():
                    yield doc.name, path, name.strip()
        for match in POINTER_THEN_NAMES.finditer(text):
            path, clause = match.groups()
            clause = re.split(r"`[\w./-]+\.py", clause)[0]  # up to the next file named
            clause = re.sub(r"\([^()]*\)", "", clause)  # asides in parentheses name no definitions
            for name in IDENTIFIER.findall(clause):
                yield doc.name, path, name


def test_docs_cite_code_pointers_at_all():
    """The pointer test below must see pointers, or it checks nothing."""
    assert len(list(cited_pointers())) > 30


def test_every_code_pointer_names_a_file_that_defines_it():
    missing = []
    for doc, path, name in cited_pointers():
        file = ROOT / path
        if not file.is_file():
            missing.append(f"{doc}: {path} (no such file)")
        elif not defines(file.read_text(encoding="utf-8"), name):
            missing.append(f"{doc}: {path}: {name} (not defined there)")
    assert not missing, "\n".join(missing)


def test_every_cited_path_and_link_exists():
    missing = []
    for doc, text in doc_texts():
        for path in PATH.findall(text):
            if not (ROOT / path).exists() and not (doc.parent / path).exists():
                missing.append(f"{doc.name}: {path}")
        for target in LINK.findall(text):
            if not (doc.parent / target).exists():
                missing.append(f"{doc.name}: link {target}")
    assert not missing, "\n".join(missing)


def test_every_cited_test_exists():
    sources = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("*.py"))
    defined = set(re.findall(r"^\s*def (test_\w+)", sources, re.M))
    cited = {(doc.name, name) for doc, text in doc_texts() for name in TEST_NAME.findall(text)
             if not name.startswith("test_eqNN")}
    assert len(cited) > 40
    missing = sorted(f"{doc}: {name}" for doc, name in cited if name not in defined)
    assert not missing, "\n".join(missing)


def run_module(*args, timeout=120):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=True).stdout


def table_rows(text):
    return [line for line in text.splitlines() if line.startswith("| ")]


@pytest.mark.skipif(not long_double_is_wider(),
                    reason="np.longdouble is float64 here: recurrent checks bound norm-wise errors, not the table's")
def test_gradcheck_table_in_equations_md_is_what_the_command_prints():
    text = (ROOT / "docs" / "equations.md").read_text(encoding="utf-8")
    start, end = "<!-- gradcheck-table: start -->", "<!-- gradcheck-table: end -->"
    in_doc = table_rows(text[text.index(start):text.index(end)])
    printed = table_rows(run_module("-m", "docs.gradcheck_table"))
    assert len(in_doc) == len(printed) > 10

    def split(row):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        decade = re.fullmatch(r"< 1e(-?\d+)", cells[-1])
        return cells[:-1], int(decade.group(1)) if decade else cells[-1]

    for doc_row, printed_row in zip(in_doc, printed):
        (doc_cells, doc_decade), (cells, decade) = split(doc_row), split(printed_row)
        assert doc_cells == cells, (doc_row, printed_row)
        if isinstance(decade, int) and isinstance(doc_decade, int):
            assert abs(decade - doc_decade) <= 1, (doc_row, printed_row)
        else:
            assert decade == doc_decade, (doc_row, printed_row)


def marked_tables(text, kind):
    """{label: rows (lists of cells)} of the tables between `<!-- kind: label -->` and `<!-- end kind -->`."""
    tables = {}
    for label, body in re.findall(rf"<!-- {kind}: ([\w-]+(?: \w+)?) -->\n(.*?)<!-- end {kind} -->", text, re.S):
        tables[label] = [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in table_rows(body)[2:]]
    return tables


def built(name):
    from mnist_half.models import build_model

    config = {"hidden": 128, "layers": 5, "dropout": 0.25}
    return build_model(name, np.random.default_rng(0), config, 0.13, dtype=np.float64)


@pytest.mark.parametrize("name", ["cnn-lstm", "cnn-cnn"])
def test_walkthrough_parameter_counts_are_the_built_models(name):
    rows = marked_tables((ROOT / "docs" / "walkthrough.md").read_text(encoding="utf-8"), "parameters")[name]
    params = built(name).named_params()
    counted = 0
    for group, _, count in rows[:-1]:
        size = sum(p.size for key, p in params.items() if key.startswith(group + "/"))
        assert size == int(count.replace(",", "")), group
        counted += size
    assert rows[-1][0] == "total"
    assert counted == sum(p.size for p in params.values()) == int(rows[-1][2].replace(",", ""))


@pytest.mark.parametrize("name, table", [("cnn-lstm", "cnn-lstm encoder"), ("cnn-cnn", "cnn-cnn")])
def test_walkthrough_shapes_are_the_built_models(name, table):
    rows = marked_tables((ROOT / "docs" / "walkthrough.md").read_text(encoding="utf-8"), "shapes")[table]
    model = built(name)
    layers = model.encoder.layers if name == "cnn-lstm" else model.layers
    x = np.random.default_rng(1).uniform(0, 1, (1, 1, 28, 28))
    assert rows[0][0] == "input" and rows[0][-1] == str(x.shape)
    assert [row[0] for row in rows[1:]] == list(layers)
    for row, layer in zip(rows[1:], layers.values()):
        x = layer.forward(x)
        assert row[-1] == str(x.shape), row[0]
    if name == "cnn-lstm":
        y = model.decoder.forward(np.zeros((1, 28, 28)), x)
        assert y.shape == (1, 28, 28)


def test_diagram_generator_draws_every_picture_the_docs_use(tmp_path):
    out = run_module("-m", "docs.make_diagrams", "--out", str(tmp_path))
    drawn = {path.name for path in tmp_path.glob("*.png")}
    assert drawn == {Path(line).name for line in out.split()} and len(drawn) == 5
    assert all((tmp_path / name).stat().st_size > 10_000 for name in drawn)
    used = set(re.findall(r"img/(\w+\.png)", "".join(text for _, text in doc_texts())))
    assert drawn <= used, drawn - used
    assert drawn <= {path.name for path in (ROOT / "docs" / "img").glob("*.png")}, "checked in under docs/img"


def test_runnable_walkthrough_checks_every_group_and_catches_every_broken_backward():
    out = run_module("docs/walkthrough.py", timeout=60)
    passed = re.findall(r"^(.+): passed \(bound 1e-06\)$", out, re.M)
    caught = re.findall(r"^(.+): FAILED as expected$", out, re.M)
    assert len(passed) >= 10 and len(caught) >= 6
    for equation in ("(1)", "(5)", "(6)", "(7)", "(8)-(13)", "(13)", "(14)", "(15)", "(16)", "(17)"):
        assert any(equation in title for title in passed + caught), equation
    assert f"{len(caught)} broken backward passes, each caught" in out


def readme_results():
    """The rows of the README's "What you get" table, as lists of cells."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## What you get"):text.index("## Where to read next")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in table_rows(section)[2:]]


def test_every_readme_result_names_the_command_that_reproduces_it():
    rows = readme_results()
    assert len(rows) >= 5
    for row in rows:
        assert re.search(r"`python -m mnist_half\.\w+[^`]*`|printed by", row[-1]), row


def test_the_readmes_shipped_model_row_is_what_the_packaged_file_measured():
    from mnist_half.checkpoint import load_checkpoint
    from mnist_half.config import PRETRAINED

    meta = load_checkpoint(PRETRAINED)[2]
    provenance = meta["provenance"]
    shipped = [row for row in readme_results() if "shipped model" in row[0]]
    assert len(shipped) == 1
    _, held_out, lower, read_right, _ = (cell.strip("*") for cell in shipped[0])
    held_out_count = provenance["held_out"].split()[0]  # "15,000 digits: ..."
    assert held_out.startswith(held_out_count + " ")
    assert lower == f"{provenance['metrics']['rmse_lower']:.3f}"
    assert read_right == f"{100 * provenance['metrics']['accuracy']:.1f} %"
    # an ensemble's row names each member's length, one model's row its own
    lengths = [run["iteration"] for run in meta["member_runs"]] if "member_runs" in meta else [provenance["iterations"]]
    assert all(f"{length:,}" in shipped[0][0] for length in lengths) and "iterations" in shipped[0][0]
