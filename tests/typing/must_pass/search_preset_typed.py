"""A search preset of one's own: Hydra sweep expressions by key."""

from app.configs import as_untyped, search_preset, store

Wide = search_preset("wide", {"optimizer.lr": "tag(log, interval(1e-5, 1e-1))"}, n_trials=5)
store(as_untyped(Wide), group="hparams_search", name="wide", package="_global_")
