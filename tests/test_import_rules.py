"""The package's imports run the way docs/architecture.md draws them (issue O item 3).

Every module under snnconvert/ is parsed with `ast` (nothing is imported or run), and every import
statement counts wherever it stands: at the top, inside a function, under `if TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "snnconvert"


def _module_name(path: Path) -> str:
    parts = ("snnconvert", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(mod: str) -> bool:
    return MODULES[mod].name == "__init__.py"


def _resolve(mod: str, node: ast.ImportFrom) -> str:
    """The absolute module name an ImportFrom names (relative imports resolved against `mod`)."""
    if not node.level:
        return node.module or ""
    base = mod.split(".") if _is_package(mod) else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(mod: str) -> dict[str, int]:
    """Every module this module imports ({name: line}): snnconvert's own modules by their module
    (`from pkg import sub` names pkg.sub when that is a module), others by their full name."""
    found: dict[str, int] = {}
    tree = ast.parse(MODULES[mod].read_text(), filename=str(MODULES[mod]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                found.setdefault(a.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(mod, node)
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.setdefault(sub if sub in MODULES else base, node.lineno)
    return found


IMPORTS = {mod: imports_of(mod) for mod in MODULES}


def _ours(mod: str) -> dict[str, int]:
    return {t: line for t, line in IMPORTS[mod].items() if t == "snnconvert" or t.startswith("snnconvert.")}


def _in(mod: str, *packages: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in packages)


def _violations(where: str, allowed: tuple[str, ...]) -> list[str]:
    return [
        f"{MODULES[m].relative_to(ROOT.parent)}:{line} imports {t}"
        for m in MODULES
        if _in(m, where)
        for t, line in sorted(_ours(m).items())
        if not _in(t, where, *allowed)
    ]


def import_cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (or a module importing itself), Tarjan."""
    graph = {m: [t for t in _ours(m) if t in MODULES] for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                cycles.append(sorted(group))

    for m in graph:
        if m not in index:
            visit(m)
    return cycles


def test_the_walk_sees_imports_at_every_level():
    """Self-check: the function-level and bottom-of-file imports that the rules are about are seen."""
    assert "snnconvert.frontends.onnx" in _ours("snnconvert.api")  # inside load_model
    assert "snnconvert.frontends.onnx_ops" in _ours("snnconvert.frontends.onnx")  # at the file's bottom
    assert "snnconvert.ir.ops_math" in _ours("snnconvert.ir")  # `from snnconvert.ir import ops_math`
    assert len(MODULES) > 40


def test_no_import_cycles_outside_the_onnx_frontend():
    cycles = [c for c in import_cycles() if not all(_in(m, "snnconvert.frontends") for m in c)]
    assert cycles == []


def test_no_import_cycles_in_the_onnx_frontend():
    assert import_cycles() == []


def test_ir_imports_only_ir_errors_and_neurons():
    """The IR knows no stage. It may use neurons/, the plain-torch neuron dynamics that its neuron ops
    (SpikingSoftmax) take as their reference, which import nothing of ours but errors."""
    assert _violations("snnconvert.ir", ("snnconvert.errors", "snnconvert.neurons")) == []
    assert _violations("snnconvert.neurons", ("snnconvert.errors",)) == []


def test_energy_reads_the_ir_and_no_other_stage():
    """energy/ counts and prices what it is handed (the spiking IR, the simulation's results as data):
    it imports no stage (calibrate, passes, sim, frontends, inspect, api, cli, report, data), and
    formats and writes nothing (report/ formats, api reads and writes the SNN directory)."""
    assert _violations("snnconvert.energy", ("snnconvert.ir", "snnconvert.errors")) == []
    formatting = [
        f"{m}: {t}"
        for m in MODULES
        if _in(m, "snnconvert.energy")
        for t in IMPORTS[m]
        if _in(t, "csv", "rich", "matplotlib", "snnconvert.atomic")
    ]
    assert formatting == []


def test_nothing_imports_the_cli():
    """Only `python -m snnconvert` (the entry point, like the console script) runs cli.py."""
    users = [m for m in MODULES if "snnconvert.cli" in _ours(m) and m not in ("snnconvert.__main__",)]
    assert users == []
