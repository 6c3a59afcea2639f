"""SIGTERM handled like Ctrl-C, so that what a Ctrl-C saves or stops is saved or stopped too."""
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
