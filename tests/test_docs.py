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
POINTER_THEN_NAMES = re.compile(r"`([\w./-]+\.py)`:\s*(.*?)(?:\.\s|\.$|;|\n\n)", re.S)
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


@pytest.mark.skipif(not long_double_is_wider(), reason="the recurrent checks need a long double wider than float64")
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
