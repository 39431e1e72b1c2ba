"""Hydra's Optuna sweeper made resumable: an interrupted search goes on with the same command.

Hydra finds it by scanning ``hydra_plugins`` and builds it from ``hydra.sweeper._target_``, which
the ``hparams_search`` presets set (``app.configs.SEARCH_SWEEPER``). Without the optional
``hydra-optuna-sweeper`` it defines nothing; optuna itself is imported only by a sweep.
"""

import logging
import os
from typing import Any

from app.files import next_job

log = logging.getLogger(__name__)

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # pip install -e '.[optuna]' brings it
    pass
else:

    class ResumableOptunaSweeper(OptunaSweeper):
        """``n_trials`` in all, counting those its stored study has finished; new jobs are
        numbered after the sweep dir's last one, so no earlier run dir is reused."""

        def sweep(self, arguments: list[str]) -> Any:
            """Make the sweep dir (SQLite opens its file there), skip finished trials, then search."""
            impl: Any = self.sweeper
            sweep_dir = str(impl.config.hydra.sweep.dir)
            os.makedirs(sweep_dir, exist_ok=True)
            done = finished_trials(impl.study_name, impl.storage)
            if done:
                log.info("Resuming study %s: %d of %d trials finished", impl.study_name, done, impl.n_trials)
            impl.n_trials = max(impl.n_trials - done, 0)
            seed = impl.config.hydra.sweeper.get("sampler", {}).get("seed")
            if done and seed is not None:
                reseed(impl.sampler, int(seed) + done)
            impl.job_idx = next_job(sweep_dir)
            return super().sweep(arguments)


def reseed(sampler: Any, seed: int) -> None:
    """Seed ``sampler`` (and the random sampler TPE starts with) afresh for a resumed search.

    A sampler seeded as before would draw the first run's points again (trial 3 of a resumed
    3-trial search repeated trial 1's), so a resumed run seeds it with seed + trials finished:
    the same command still draws the same points. Optuna 2.10 keeps the state in ``_rng``.
    """
    import numpy as np

    for owner in (sampler, getattr(sampler, "_random_sampler", None)):
        if owner is not None and hasattr(owner, "_rng"):
            owner._rng = np.random.RandomState(seed)


def finished_trials(study_name: Any, storage: Any) -> int:
    """How many trials the stored study has finished (0 when there is no such study yet)."""
    import optuna

    if storage is None or study_name is None:
        return 0
    try:
        study = optuna.load_study(study_name=str(study_name), storage=str(storage))
    except KeyError:  # no study of that name in the storage yet
        return 0
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(trial.state in finished for trial in study.get_trials(deepcopy=False))
