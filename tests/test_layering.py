"""The dependency rules of the code base, read from the import statements (ast), and the proof
that tinynet's reference runs without its accelerators.

Rules: no import cycle anywhere in tinynet, mnist_half and bench (imports inside functions
count: they run too); tinynet never imports the application (mnist_half, bench); outside
tinynet.accel, tinynet never imports tinynet.accel (only tinynet.dispatch reaches it, by
name, at run time); the framework's tests never import the application; nothing imports a
command module (each is run with python -m).
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tinynet", "mnist_half", "bench")
COMMANDS = {f"mnist_half.{name}" for name in ("train", "evaluate", "complete", "figures", "classifier", "demo")}


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(*folders):
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


MODULES = {module_name(path): path for path in python_files(*PACKAGES)}


def imported_modules(path):
    """The absolute names of every module that `path` imports, anywhere in it. For
    `from package import name`, package.name where that is a module, else package."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in MODULES else source)
    return found


GRAPH = {name: {target for target in imported_modules(path) if target in MODULES} for name, path in MODULES.items()}


def cycles(graph):
    """The strongly connected components with more than one module, or a module importing
    itself (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def violations(sources, forbidden):
    """'source -> target' for every import of a module `forbidden(target)` by a module of `sources`."""
    return sorted(f"{source} -> {target}" for source in sources for target in GRAPH[source] if forbidden(target))


def test_the_scan_sees_the_imports():
    assert "tinynet.dispatch" in GRAPH["tinynet.functional.lstm"]
    assert "tinynet.shapes" in GRAPH["tinynet.functional.conv"]
    assert "tinynet.layers" in GRAPH["mnist_half.models"]
    assert "tinynet.accel.cpu.numba_gemm" in GRAPH["tinynet.accel.cpu.ops"]  # `from . import numba_gemm`
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_tinynet_never_imports_the_application():
    tinynet = [name for name in GRAPH if name.split(".")[0] == "tinynet"]
    assert violations(tinynet, lambda target: target.split(".")[0] in ("mnist_half", "bench")) == []


def test_only_the_dispatch_reaches_the_accelerators():
    """functional/, layers/, optim/ and the rest of tinynet outside tinynet.accel import no
    accelerator; tinynet.dispatch finds tinynet.accel by name, at run time."""
    outside = [name for name in GRAPH if name.startswith("tinynet") and not name.startswith("tinynet.accel")]
    assert {"tinynet.functional.decoder", "tinynet.layers.recurrent", "tinynet.optim.update"} <= set(outside)
    assert violations(outside, lambda target: target.startswith("tinynet.accel")) == []


def test_framework_tests_never_import_the_application():
    application = ("mnist_half", "bench")
    found = sorted(f"{path.name} -> {target}" for path in python_files("tests/tinynet")
                   for target in imported_modules(path) if target.split(".")[0] in application)
    assert found == []


def test_nothing_imports_a_command():
    importers = [f"{source} -> {target}" for source, targets in GRAPH.items() for target in targets
                 if target in COMMANDS]
    importers += [f"{path.relative_to(ROOT)} -> {target}" for path in python_files("tests")
                  for target in imported_modules(path) if target in COMMANDS]
    assert sorted(importers) == []


@pytest.mark.slow
def test_eq_checks_pass_without_the_accelerators():
    """`python -m pytest -q -k eq tests/tinynet` with tinynet.accel hidden from the import
    system (as if the package were deleted): the reference alone passes every eqNN check,
    and not one accelerator module is loaded."""
    code = (
        "import sys; sys.modules['tinynet.accel'] = None\n"
        "import pytest\n"
        "status = pytest.main(['-q', '-p', 'no:cacheprovider', '-k', 'eq', 'tests/tinynet'])\n"
        "loaded = sorted(name for name in sys.modules if name.startswith('tinynet.accel.'))\n"
        "print('accelerator modules loaded:', loaded)\n"
        "sys.exit(int(status) or bool(loaded))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "TINYNET_NUMPY"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "accelerator modules loaded: []" in result.stdout
    assert " passed" in result.stdout
