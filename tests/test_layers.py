"""The code's layers import only downward, and no module imports itself through others.

Read from the source (every import, at module level or inside a function), not from Python's
import machinery, so an import hidden in a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Lowest first. A module may import from its own layer or any layer below it.
LAYERS: dict[str, tuple[str, ...]] = {
    "leaves": (
        "pipelines.settings",
        "pipelines.protocol",
        "pipelines.memory",
        "pipelines.registry",
        "pipelines.checks",
        "pipelines.images",
        "pipelines.diffusion",
        "pipelines.t5_openvino",
        "pipelines.cpu",
    ),
    "on-disk format": ("pipelines.folders", "pipelines.layout", "pipelines.serving_files", "pipelines.ovms_layout"),
    "hub client": ("pipelines.hub",),
    "parts": ("pipelines.pose", "pipelines.controlnet_pipeline"),
    "build": (
        "pipelines.standins",
        "pipelines.convert",
        "pipelines.controlnet_export",
        "pipelines.export",
        "pipelines.ovms_repo",
    ),
    "resolve": ("pipelines.resolve", "pipelines.prepare"),
    "serving": (
        "pipelines.runtime",
        "pipelines.models",
        "pipelines.budget",
        "pipelines.worker",
        "pipelines.sd",
        "pipelines.controlnet",
        "pipelines.remote",
        "pipelines.kserve_server",
    ),
    "tasks": ("pipelines.classification", "pipelines.translation"),
    "startup": ("pipelines.startup", "pipelines.tuning"),
    "consumers": ("ui", "app", "bench", "pipelines.ovms"),
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank_of(module: str) -> int | None:
    while module:
        if module in RANK:
            return RANK[module]
        module = module.rpartition(".")[0]
    return None


def project_imports(path: Path) -> set[str]:
    """Project modules that `path` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from . import standins`
    path_of = lambda m: REPO / m.replace(".", "/")
    is_module = lambda m: path_of(m).with_suffix(".py").is_file() or (path_of(m) / "__init__.py").is_file()
    return {m for m in found if m.split(".")[0] in ("pipelines", "ui", "app", "bench") and m != name and is_module(m)}


def graph() -> dict[str, set[str]]:
    files = [*REPO.glob("pipelines/**/*.py"), *REPO.glob("ui/*.py"), *REPO.glob("bench/*.py"), REPO / "app.py"]
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
    """Imports hidden in a function body (the way circles hide), `from . import x`, `from .x import y`."""
    assert "pipelines.convert" in project_imports(REPO / "pipelines" / "export.py")  # inside a function
    assert "pipelines.standins" in project_imports(REPO / "pipelines" / "resolve.py")  # from . import standins
    assert "pipelines.resolve" in project_imports(REPO / "bench" / "controlnet.py")  # inside a function
    assert "ui.common" in project_imports(REPO / "ui" / "scaffold.py")  # from .common import
