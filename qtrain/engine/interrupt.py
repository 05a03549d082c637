"""Ctrl-C and SIGTERM as a request to stop at the next safe point, not a crash mid-step."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


class StopRequest:
    """While active, SIGINT/SIGTERM set `requested` (the signal number) instead of
    raising; the loop checks it between optimizer steps and writes `last.pt` before
    leaving. A second signal raises KeyboardInterrupt at once, for the impatient.

    The loop asks through `poll`, which lets `agree` combine the requests of all
    training processes: under DDP every rank must stop at the same step."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, agree: Callable[[int | None], int | None] = lambda signum: signum):
        self.requested: int | None = None
        self.agree = agree
        self._previous = {}

    def poll(self) -> int | None:
        """The signal to stop on, if any process got one; None to go on."""
        self.requested = self.agree(self.requested)
        return self.requested

    def _handle(self, signum, frame):
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
