"""Architecture checks on the import graph of the first-party packages ``engine``, ``ui`` and ``app``.

The graph is built statically with ``ast`` from every ``.py`` file under those packages; nothing is
imported. Imports inside ``if TYPE_CHECKING:`` blocks count like any other on purpose: a type-only
cycle or layering breach does not fail at runtime, but it is still a design cycle or breach. Each
detector is proven on synthetic inputs at the bottom of this module, so every check can fail.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QT = ("PySide6", "qasync", "pyqtgraph")
IMPURE = ("asyncio", "aiosqlite", "sqlite3", "websockets", "socket", "time", "random", "secrets")


@dataclass(frozen=True, slots=True)
class Imp:
    target: str  # absolute; ``from x import y`` gives ``x.y`` if that is a known module, else ``x``
    line: int
    local: bool  # nested inside a function or method body


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    where: str  # path relative to the repository, for messages
    imports: tuple[Imp, ...]


def scan_source(source: str, name: str, is_package: bool, known: Iterable[str]) -> tuple[Imp, ...]:
    """Every import statement of a module (at any depth), resolved to absolute names."""
    known_set, found = set(known), list[Imp]()
    package = name.split(".") if is_package else name.split(".")[:-1]

    # `if TYPE_CHECKING:` bodies are walked like any block: a type-only cycle is still a design cycle.
    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Imp(alias.name, child.lineno, local) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: up (level - 1) packages from this module's package
                    parts = package[: len(package) - child.level + 1]
                    base = ".".join([*parts, child.module] if child.module else parts)
                for alias in child.names:
                    candidate = f"{base}.{alias.name}" if base else alias.name
                    found.append(Imp(candidate if candidate in known_set else base, child.lineno, local))
            visit(child, local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(source), False)
    return tuple(found)


def load_modules(root: Path, packages: Iterable[str] = ("engine", "ui", "app")) -> dict[str, Module]:
    files: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {
        name: Module(
            name, str(p.relative_to(root)), scan_source(p.read_text("utf-8"), name, p.stem == "__init__", files)
        )
        for name, p in files.items()
    }


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _owner(target: str, modules: Mapping[str, Module]) -> str | None:
    """The first-party module a dotted name belongs to: its longest known prefix."""
    parts = target.split(".")
    return next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules), None)


def import_graph(modules: Mapping[str, Module]) -> dict[str, set[str]]:
    owners = {m.name: {_owner(i.target, modules) for i in m.imports} for m in modules.values()}
    return {name: {o for o in found if o is not None} for name, found in owners.items()}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module, or with a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def offences(modules: Mapping[str, Module], under: str, bad: Callable[[Imp], bool]) -> list[str]:
    """``file:line module -> target`` for every import, in a module under ``under``, that is ``bad``."""
    return [
        f"{m.where}:{i.line} {m.name} -> {i.target}"
        for m in modules.values()
        if _within(m.name, under)
        for i in m.imports
        if bad(i)
    ]


def of(packages: Iterable[str]) -> Callable[[Imp], bool]:
    names = tuple(packages)
    return lambda imp: any(_within(imp.target, p) for p in names)


def cycle_report(modules: Mapping[str, Module], found: list[list[str]]) -> str:
    """Each cycle's modules, then the imports that close it (``file:line``)."""
    lines: list[str] = []
    for component in found:
        lines.append("cycle: " + ", ".join(component))
        lines += dict.fromkeys(
            f"    {modules[n].where}:{i.line} {n} -> {i.target}"
            for n in component
            for i in modules[n].imports
            if _owner(i.target, modules) in component
        )
    return "\n".join(lines)


MODULES = load_modules(ROOT)


# --- the checks on the real code ------------------------------------------------------------------


def test_the_scan_sees_the_real_packages() -> None:
    assert {"engine.core.model", "engine.runtime.engine", "ui.main_window", "app.cli"} <= MODULES.keys()
    assert any(MODULES["engine.runtime.engine"].imports)


def test_no_import_cycle_among_first_party_modules() -> None:
    found = cycles(import_graph(MODULES))
    assert not found, "import cycles (TYPE_CHECKING imports included):\n" + cycle_report(MODULES, found)


def test_layers_engine_imports_neither_ui_nor_app_and_ui_does_not_import_app() -> None:
    breaches = offences(MODULES, "engine", of(("ui", "app"))) + offences(MODULES, "ui", of(("app",)))
    assert not breaches, "layering breaches:\n" + "\n".join(breaches)


def test_no_function_local_import_in_engine_runtime() -> None:
    found = offences(MODULES, "engine.runtime", lambda imp: imp.local)
    assert not found, "function-local imports:\n" + "\n".join(found)


def test_engine_has_no_qt() -> None:
    found = offences(MODULES, "engine", of(QT))
    assert not found, "Qt imports in engine:\n" + "\n".join(found)


def test_engine_core_has_no_io_clock_or_randomness() -> None:
    found = offences(MODULES, "engine.core", of(IMPURE))
    assert not found, "I/O, clock or randomness imports in engine.core:\n" + "\n".join(found)


# --- the detectors, proven on synthetic inputs ----------------------------------------------------

SYNTHETIC = """
from typing import TYPE_CHECKING
import os.path
from . import sib
from .. import top
from .sib import thing
if TYPE_CHECKING:
    from pkg.top import Kind
def f() -> None:
    import json
class C:
    async def m(self) -> None:
        from .sib import other
"""
KNOWN = ("pkg", "pkg.top", "pkg.sub", "pkg.sub.mod", "pkg.sub.sib")
SYNTHETIC_MODULES = {
    "pkg.sub.mod": Module("pkg.sub.mod", "mod.py", scan_source(SYNTHETIC, "pkg.sub.mod", False, KNOWN))
}


def test_scan_resolves_relative_and_from_imports_and_counts_type_checking() -> None:
    got = " ".join(f"{i.target}:{i.line}{'L' * i.local}" for i in SYNTHETIC_MODULES["pkg.sub.mod"].imports)
    assert got == "typing:2 os.path:3 pkg.sub.sib:4 pkg.top:5 pkg.sub.sib:6 pkg.top:8 json:10L pkg.sub.sib:13L"
    assert scan_source("from . import x", "pkg", True, ("pkg", "pkg.x"))[0].target == "pkg.x"


def test_cycles_are_found_with_their_modules_and_lines() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}, "b": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    modules = {n: Module(n, f"{n}.py", (Imp(t, 7, False),)) for n, t in (("x", "y.z.f"), ("y", "x"), ("y.z", "y"))}
    assert cycles(import_graph(modules)) == [["x", "y", "y.z"]]
    report = cycle_report(modules, cycles(import_graph(modules))).splitlines()
    assert report == ["cycle: x, y, y.z", "    x.py:7 x -> y.z.f", "    y.py:7 y -> x", "    y.z.py:7 y.z -> y"]


def test_banned_and_local_imports_are_reported_with_file_and_line() -> None:
    modules = SYNTHETIC_MODULES
    assert offences(modules, "pkg.sub", of(("os", "json"))) == [
        "mod.py:3 pkg.sub.mod -> os.path",
        "mod.py:10 pkg.sub.mod -> json",
    ]
    assert offences(modules, "pkg.other", of(("os",))) == []
    assert offences(modules, "pkg", of(("typ",))) == []  # a name prefix is not a package
    assert [v.split(" ")[0] for v in offences(modules, "pkg", lambda i: i.local)] == ["mod.py:10", "mod.py:13"]
