"""Ctrl-C and SIGTERM during a run: SIGTERM is handled like Ctrl-C, so that what a Ctrl-C saves or
stops is saved or stopped too; and while compiled steps run, either signal is held until the chunk
of steps returns (``Interrupts.held``), so that the controller stops at a chunk's end, within about
a chunk's time (``controller.CHUNK_SECONDS``), with every finished chunk's work kept."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def sigterm_as_interrupt(active: bool = True):
    """Within the block, SIGTERM raises KeyboardInterrupt (only in the main thread, where Python
    delivers signals; elsewhere, and with ``active`` false, nothing changes)."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Interrupts:
    """Within ``with Interrupts(sigterm):`` (main thread), a SIGINT (where Python's own Ctrl-C
    handler is in place) or, with ``sigterm``, a SIGTERM that arrives inside ``held()`` only sets
    ``requested``; outside it, it raises KeyboardInterrupt. Elsewhere nothing changes."""

    def __init__(self, sigterm: bool = True):
        self.sigterm, self.requested, self._holding, self._previous = sigterm, None, False, {}

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)
            if self.sigterm:
                self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        return False

    def _handle(self, signum, frame):
        if self._holding:
            self.requested = signum
            return
        raise KeyboardInterrupt(f"signal {signum}")

    @contextmanager
    def held(self):
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
