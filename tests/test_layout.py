"""The arrows of docs/architecture.md: no import cycle among jaxbell's modules (every import
statement counts, function-local ones too), and the layers that must not reach up."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "jaxbell"


def _graph() -> dict[str, set[str]]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != m and not m.startswith(t + "."):
                    edges[m].add(t)
    return edges


def test_no_import_cycles():
    edges = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m, path):
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join(path[path.index(n) :] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("jaxbell.dataset", "jaxbell.store"),  # labelling knows nothing of files
        ("jaxbell.cli._args", "jaxbell.cli.grid"),  # the leaf of the command line
        ("jaxbell.rates.backends", "jaxbell.rates.front"),
        ("jaxbell.family", "jaxbell.rates"),
    ],
)
def test_layers_do_not_reach_up(module, forbidden):
    edges = _graph()
    assert forbidden not in edges[module], f"{module} imports {forbidden}"
    if module == "jaxbell.cli._args":
        assert not any(e.startswith("jaxbell.cli.") for e in edges[module])


@pytest.mark.parametrize("path", ["rates/design.py", "rates/front.py", "rates/finite.py"])
def test_the_rates_side_does_not_import_the_package_top_level(path):
    tree = ast.parse((ROOT / path).read_text())
    top = [
        ast.unparse(n)
        for n in ast.walk(tree)
        if (isinstance(n, ast.Import) and any(a.name == "jaxbell" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and n.module == "jaxbell")
    ]
    assert not top, top


SCRIPTS = sorted(
    p for d in ("benchmarks", "experiments", "figures") for p in (ROOT.parent / d).glob("*.py")
)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_import_what_exists(path):
    # the scripts are not run by the suite: a module that moved breaks them silently (two
    # benchmarks imported jaxbell.bff and jaxbell.protocol for a while after the redesign)
    import importlib

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxbell"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")  # a submodule
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jaxbell"):
                    importlib.import_module(alias.name)


def test_every_lazy_public_name_is_in_all():
    # the lazy top level names each public function once for import and once for __all__;
    # the five names of issue 22 had been left out of __all__ (star imports, docs tools)
    import jaxbell

    assert set(jaxbell._LAZY) <= set(jaxbell.__all__)
    assert all(hasattr(jaxbell, name) for name in jaxbell.__all__)
