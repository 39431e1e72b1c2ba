"""The signals that stop a run cleanly: the first asks it to stop after the current step, a
second stops it at once."""

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Optional

from app.errors import Interrupted

log = logging.getLogger("app.engine")


class GracefulStop:
    """SIGINT and SIGTERM, while installed: the first asks the run to stop after the current
    step (``requested`` holds its number), the second stops it at once (``Interrupted``)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, agree: Optional[Callable[[bool], bool]] = None) -> None:
        self.requested: Optional[int] = None
        self.agree = agree  # among processes: whether any was asked (so that all stop at one step)

    def asked(self) -> bool:
        """Whether the run stops here: a signal came (to any of its processes)."""
        here = self.requested is not None
        return self.agree(here) if self.agree is not None else here

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested is not None:
            raise Interrupted(signum)
        self.requested = signum
        log.warning("%s: stopping after this step (send it again to stop at once)", signal.Signals(signum).name)

    @contextlib.contextmanager
    def installed(self) -> Iterator["GracefulStop"]:
        if threading.current_thread() is not threading.main_thread():  # only it may set handlers
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
