"""The layout shows the architecture, and keeps to it: each room of ``app/`` imports only the rooms
below it, the launch side never imports torch or the job side, only ``app/launch/`` reaches into
Hydra's internals, no module or function outgrows a screen's worth of reading, and importing the
app leaves Hydra as it was."""

import ast
import copy
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

APP = ROOT / "app"
# What each room of app/ may import from app/ (a package is one room: its modules import each
# other freely). The schema and the leaves sit at the bottom; the job side (training/, and models
# for a checkpoint) uses checks/ to check what it builds but never reaches launch/, and the
# checking side never reaches the job side.
ALLOWED = {
    # leaves every side uses, torch-free
    "configs": set(),  # the schema
    "errors": set(),  # every exception, with its hint
    "files": {"configs", "errors"},  # run-dir layout, lock, atomic writes, a checkpoint's config
    "plots": {"files"},  # all Pillow drawing
    "images": {"configs", "errors", "files"},  # image files opened with bounds, the scan
    "state_dicts": {"files"},  # a state dict's names and shapes, read without torch
    # the checking side, torch-free
    "checks": {"configs", "errors", "files", "state_dicts"},
    "launch": {"configs", "errors", "files", "checks"},
    # what a _target_ names
    "pixels": {"configs"},  # a picture as the model's tensor
    "data": {"configs", "errors", "files", "images", "pixels"},
    "models": {"configs", "errors", "files", "checks"},  # a checkpoint's config is checked before it is built
    "schedules": {"configs"},
    "factories": {"configs", "checks", "data", "models"},  # the typed way to build what a config describes
    "loggers": {"files"},
    # the job side
    "training": {"configs", "errors", "files", "checks", "plots", "data", "models", "loggers", "factories"},
    # the commands
    "train": {"configs", "errors", "checks", "launch", "training", "summary"},
    "evaluate": {"configs", "errors", "files", "launch", "data", "models", "plots", "training"},
    "predict": {"configs", "files", "images", "launch", "data", "models", "training"},
    "summary": {"configs", "files", "plots"},
    "lr_find": {"files", "launch", "checks", "plots", "training"},
}
TORCH_FREE = [
    "configs",
    "errors",
    "files",
    "images",
    "state_dicts",
    "plots",
    "checks",
    "launch",
    "summary",
    "train",
    "lr_find",
]  # on import
MODULE_LINES, FUNCTION_LINES = 450, 60  # the schema, app/configs.py, aside


def rooms() -> dict[str, list[Path]]:
    """Each room of app/ and its files: a module, or a package's modules."""
    found = {p.stem: [p] for p in APP.glob("*.py") if p.stem != "__init__"}
    found |= {p.name: sorted(p.glob("*.py")) for p in APP.iterdir() if (p / "__init__.py").exists()}
    return found


def app_imports(path: Path) -> set[str]:
    """The rooms of ``app`` that ``path`` imports, anywhere in it (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("app.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "app":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app."):
            found.add((node.module or "").split(".")[1])
    return found


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    return found


def test_every_module_has_a_place_in_the_layers() -> None:
    assert set(rooms()) == set(ALLOWED)


def test_imports_point_one_way_and_never_in_a_cycle() -> None:
    graph = {name: set().union(*(app_imports(p) for p in paths)) - {name} for name, paths in rooms().items()}
    for name, imported in graph.items():
        assert imported <= ALLOWED[name], f"app/{name} imports {imported - ALLOWED[name]}"

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert not [name for name in graph if reaches(name, name)]


def test_only_launch_reaches_into_hydras_internals() -> None:
    for name, paths in rooms().items():
        for path in paths:
            internal = {m for m in imported_modules(path) if m.startswith("hydra._internal")}
            assert name == "launch" or not internal, f"{path.relative_to(ROOT)} imports {internal}"


def test_no_module_or_function_outgrows_a_reading() -> None:
    too_long = []
    for paths in rooms().values():
        for path in paths:
            text = path.read_text()
            if path != APP / "configs.py" and len(text.splitlines()) > MODULE_LINES:
                too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    if node.end_lineno is not None and node.end_lineno - start + 1 > FUNCTION_LINES:
                        too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}()")
    assert not too_long, f"over {MODULE_LINES} lines a module or {FUNCTION_LINES} a function: {too_long}"


@pytest.mark.cli
def test_the_schema_imports_no_other_app_module() -> None:
    code = "import sys, app.configs; print(sorted(m for m in sys.modules if m.split('.')[0] == 'app'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['app', 'app.configs']"


@pytest.mark.cli
def test_the_launch_side_and_the_commands_import_no_torch() -> None:
    imports = "; ".join(f"import app.{name}" for name in TORCH_FREE)
    code = f"import sys; {imports}; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_importing_the_app_leaves_hydra_unpatched() -> None:
    from hydra.core.config_store import ConfigStore
    from hydra.core.singleton import Singleton

    import app.train  # noqa: F401  (everything a notebook or a test might import)

    assert "__deepcopy__" not in vars(ConfigStore)
    # Hydra's own snapshot and restore of its singletons still restores the store.
    state = Singleton.get_state()
    ConfigStore.instance().store(name="canary", node={"x": 1})
    assert "canary.yaml" in ConfigStore.instance().list("")
    Singleton.set_state(state)
    assert "canary.yaml" not in ConfigStore.instance().list("")
    assert "config.yaml" in ConfigStore.instance().list("")  # the app's configs are still there


def test_the_cli_shares_the_store_only_while_it_runs() -> None:
    from hydra.core.config_store import ConfigStore

    from app.launch import shared_config_store

    with shared_config_store():
        store = ConfigStore.instance()
        assert copy.deepcopy(store) is store
    assert "__deepcopy__" not in vars(ConfigStore)


def test_the_app_plugin_imports_only_files_from_the_app() -> None:
    # hydra_plugins/app_search (the resumable Optuna sweeper, built by Hydra) sits beside the
    # launch layer: it reads the sweep dir's job numbers and nothing of the job side.
    plugin = ROOT / "hydra_plugins" / "app_search"
    assert set().union(*(app_imports(path) for path in plugin.glob("*.py"))) == {"files"}
