"""``python -m tests.without_extras app-train|app-check ARGS``: the command as it runs where
none of the app's optional extras is installed (``pip install -e .`` alone): the extras'
packages cannot be imported or found, and Hydra's plugin scan sees only the app's own
``hydra_plugins`` folder, as in a fresh environment."""

import sys
from pathlib import Path

import hydra_plugins
from app.configs import OPTIONS_OF_EXTRAS

OWN_PLUGINS = str(Path(__file__).resolve().parents[1] / "hydra_plugins")
EXTRA_MODULES = {extra.module for options in OPTIONS_OF_EXTRAS.values() for extra in options.values()}
# what the extras bring besides their Hydra plugins (optuna, joblib, submitit themselves)
EXTRA_MODULES |= {"optuna", "joblib", "submitit", "tensorboard", "sqlalchemy", "alembic"}

if __name__ == "__main__":
    for name in EXTRA_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]  # import fails, find_spec gives None
    hydra_plugins.__path__ = [OWN_PLUGINS]  # Hydra scans this list
    command, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    if command == "app-check":
        from app.launch.cli import check_main

        sys.exit(check_main())
    from app.train import main

    main()
