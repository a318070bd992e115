"""Deferring Ctrl-C / SIGTERM to a step boundary, so an interrupted run can resume bit-exactly.

A signal that lands in the middle of an optimizer step would leave the weights and Adam's state
half updated; while :class:`DeferredStop` is active it only records the request, and the trainer
checks :attr:`DeferredStop.requested` once per step, between steps (a request that arrives
after the last step is delivered when the block ends: deferred, never dropped). A second
Ctrl-C forces a ``KeyboardInterrupt`` at once (for a step that takes too long); the trainer then
keeps the last checkpoint instead of saving a possibly half-updated state.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DeferredStop:
    """Context manager: SIGINT/SIGTERM set :attr:`requested` (the signal's name) instead of
    interrupting. Only the main thread can own signal handlers; elsewhere it does nothing and
    signals keep their usual effect. The previous handlers are restored on exit."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> DeferredStop:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        self._old = {}
        if self.requested is not None and exc_type is None:
            # asked to stop while finishing (nothing raised): deliver the signal to the restored
            # handler now, so a sweep or script around the run stops too instead of going on
            signal.raise_signal(signal.Signals[self.requested])
