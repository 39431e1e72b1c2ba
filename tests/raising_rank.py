"""``torchrun ... -m tests.raising_rank OVERRIDES``: app-train, whose rank 1 raises in its first
training pass, while rank 0 waits for it at the step: one process of a run crashing."""

import os
from typing import Any

from app import train
from app.training import engine

_run_pass = engine.run_pass


def run_pass(*args: Any, **kwargs: Any) -> Any:
    training = args[3] if len(args) > 3 else kwargs.get("training")
    if os.environ.get("RANK") == "1" and training is not None:
        raise RuntimeError("a failure on rank 1, raised by the test")
    return _run_pass(*args, **kwargs)


if __name__ == "__main__":
    engine.run_pass = run_pass
    train.main()
