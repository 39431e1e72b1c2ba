"""The layers point one way (entry -> launch -> checks -> schema), the job side imports nothing
from the checking side, and importing the app leaves Hydra as it was."""

import ast
import copy
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

APP = ROOT / "app"
# What each module of app/ may import from app/. The schema sits at the bottom; data, models and
# engine (the job side) never reach the checks.
ALLOWED = {
    "configs": set(),
    "folders": {"configs"},
    "checks": {"configs", "folders"},
    "launch": {"configs", "checks", "folders"},
    "train": {
        "configs",
        "checks",
        "launch",
        "data",
        "distributed",
        "engine",
        "features",
        "loggers",
        "models",
        "folders",
        "summary",
    },
    "data": {"configs", "folders"},
    "models": {"configs", "folders"},
    "evaluate": {"configs", "launch", "train", "folders", "data", "engine", "loggers", "models"},
    "predict": {"configs", "launch", "train", "folders", "data", "engine", "models"},
    "schedules": {"configs"},
    "engine": {"models", "folders"},  # weights in and out of a model, and the checkpoint format
    "features": {"configs", "data", "engine", "folders", "models"},  # the frozen extractor's feature cache
    "loggers": {"folders"},
    "summary": {"configs", "folders", "loggers"},
    "distributed": set(),  # torchrun's and SLURM's ranks, the process group, what rank 0 decides
}


def app_imports(path: Path) -> set[str]:
    """The ``app`` modules that ``path`` imports, anywhere in it (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("app.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "app":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app."):
            found.add((node.module or "").split(".")[1])
    return found


def test_every_module_has_a_place_in_the_layers() -> None:
    assert {p.stem for p in APP.glob("*.py")} - {"__init__"} == set(ALLOWED)


def test_imports_point_one_way_and_never_in_a_cycle() -> None:
    graph = {name: app_imports(APP / f"{name}.py") for name in ALLOWED}
    for name, imported in graph.items():
        assert imported <= ALLOWED[name], f"app/{name}.py imports {imported - ALLOWED[name]}"

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert not [name for name in graph if reaches(name, name)]


def test_the_schema_imports_no_other_app_module() -> None:
    code = "import sys, app.configs; print(sorted(m for m in sys.modules if m.split('.')[0] == 'app'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['app', 'app.configs']"


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


def test_the_app_plugin_imports_only_folders_from_the_app() -> None:
    # hydra_plugins/app_search (the resumable Optuna sweeper, built by Hydra) sits beside the
    # launch layer: it reads the sweep dir's job numbers and nothing of the job side.
    plugin = ROOT / "hydra_plugins" / "app_search"
    assert set().union(*(app_imports(path) for path in plugin.glob("*.py"))) == {"folders"}
