"""Ctrl-C and SIGTERM as a request to stop at the next safe point, not a crash mid-step."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


class SignalStop(KeyboardInterrupt):
    """SIGTERM where no safe point is near (startup, the reports after the test): raised
    at once, as Ctrl-C raises KeyboardInterrupt, so that `finally` blocks remove
    half-written files and trackers close their run as killed. Python's default would
    end the process on the spot."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_signal_stop(signum, frame):
    raise SignalStop(signum)


def stop_at_once_on_sigterm() -> None:
    """SIGTERM outside a StopRequest raises SignalStop (the process's default from now on)."""
    signal.signal(signal.SIGTERM, _raise_signal_stop)


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
