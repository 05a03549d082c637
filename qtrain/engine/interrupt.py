"""Ctrl-C and SIGTERM as a request to stop at the next safe point, not a crash mid-step."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """While active, SIGINT/SIGTERM set `requested` (the signal number) instead of
    raising; the loop checks it between optimizer steps and writes `last.pt` before
    leaving. A second signal raises KeyboardInterrupt at once, for the impatient."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: int | None = None
        self._previous = {}

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
