"""The code's layers import only downward, and no module imports itself through others.

Read from the source (every import, at module level or inside a function), not from Python's
import machinery, so an import hidden in a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE_STRING = re.compile(r"(pipelines|ui|bench)(\.\w+)+")

# Lowest first: the library's folders, then what stands on it. A module may import from its own layer or any
# layer below it. A package's `__main__` is a program: it may import anything (`python -m pipelines.build`).
LAYERS: dict[str, tuple[str, ...]] = {
    "core": ("pipelines.core",),
    "models": ("pipelines.models",),
    "build": ("pipelines.build",),
    "sources": ("pipelines.sources",),
    "serving": ("pipelines.serving",),
    "tasks": ("pipelines.tasks",),
    "composition root": ("pipelines.startup", "pipelines.tuning"),
    "scale-out": ("pipelines.scale_out",),
    "ui": ("ui",),
    "programs": ("app", "bench"),
}
PROGRAMS = len(LAYERS) - 1
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank_of(module: str) -> int | None:
    if module.endswith(".__main__"):
        return PROGRAMS
    while module:
        if module in RANK:
            return RANK[module]
        module = module.rpartition(".")[0]
    return None


def project_imports(path: Path, source: str | None = None) -> set[str]:
    """Project modules that `path` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from . import standins`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.fullmatch(node.value):
            found.add(node.value)  # `[sys.executable, "-m", "pipelines.sources.prepare"]`, `import_module("...")`
    path_of = lambda m: REPO / m.replace(".", "/")
    is_module = lambda m: path_of(m).with_suffix(".py").is_file() or (path_of(m) / "__init__.py").is_file()
    return {m for m in found if m.split(".")[0] in ("pipelines", "ui", "app", "bench") and m != name and is_module(m)}


def graph() -> dict[str, set[str]]:
    files = [*REPO.glob("pipelines/**/*.py"), *REPO.glob("ui/**/*.py"), *REPO.glob("bench/*.py"), REPO / "app.py"]
    files = [p for p in files if p.name != "__init__.py" or p.read_text().strip()]
    modules = {module_name(p): p for p in files}
    return {name: {m for m in project_imports(path) if m in modules} for name, path in modules.items()}


def test_every_module_has_a_layer():
    assert not [m for m in graph() if rank_of(m) is None], "add the new module to LAYERS"


def test_layers_import_only_downward():
    upward = [
        f"{importer} ({rank_of(importer)}) imports {imported} ({rank_of(imported)})"
        for importer, imports in graph().items()
        for imported in imports
        if rank_of(imported) > rank_of(importer)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    edges, state, circles = graph(), {}, []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(edges[module]):
            if state.get(imported) == "open":
                circles.append(" -> ".join([*trail[trail.index(imported) :], imported]))
            elif imported not in state:
                visit(imported, [*trail, imported])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not circles, "\n".join(circles)


def test_the_reader_sees_every_kind_of_import():
    """Imports hidden in a function body (the way circles hide), `from x import y`, and module names in
    strings (a child process started with `-m`)."""
    assert "pipelines.build.convert" in project_imports(REPO / "pipelines" / "build" / "export.py")  # in a function
    assert "pipelines.build.standins" in project_imports(REPO / "pipelines" / "sources" / "resolve.py")
    assert "pipelines.sources.resolve" in project_imports(REPO / "bench" / "controlnet.py")  # inside a function
    assert "ui.common" in project_imports(REPO / "ui" / "scaffold.py")
    started = 'subprocess.run([sys.executable, "-m", "pipelines.sources.prepare"])'
    assert "pipelines.sources.prepare" in project_imports(REPO / "pipelines" / "startup.py", started)


def test_every_library_folder_is_small():
    """One folder a layer, each one screenful of modules."""
    for folder in [REPO / "pipelines", *(p.parent for p in (REPO / "pipelines").glob("*/__init__.py"))]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 12, f"{folder.relative_to(REPO)} holds {len(modules)} modules"


def test_no_public_name_is_defined_twice():
    """One name per idea: no public class or function is defined in two library modules (programs excepted)."""
    where: dict[str, list[str]] = {}
    for path in [*REPO.glob("pipelines/**/*.py"), *REPO.glob("ui/**/*.py")]:
        if path.name == "__main__.py":
            continue
        for node in ast.parse(path.read_text()).body:
            public = not getattr(node, "name", "_").startswith("_")
            if public and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                where.setdefault(node.name, []).append(module_name(path))
    twice = {name: modules for name, modules in where.items() if len(modules) > 1}
    assert not twice, twice
