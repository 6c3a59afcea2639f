"""Telling the user how far a run or a sweep has got, on stderr.

``mode``: None (automatic: a tqdm bar on a terminal, shown once the work has lasted
``BAR_DELAY`` seconds; nothing otherwise), True (a bar at once), False (nothing) or "lines"
(for logs under a scheduler, nohup or CI: a plain, flushed line at most every ``LINE_SECONDS``,
with the time elapsed and an estimate of the time left).
"""
from __future__ import annotations

import sys
import time

BAR_DELAY = 3.0
LINE_SECONDS = 30.0
MODES = (None, True, False, "lines")


def check(mode):
    if not any(mode is m or (isinstance(m, str) and mode == m) for m in MODES):
        from ..errors import ConfigError
        raise ConfigError.invalid("progress", mode, "None, True, False or 'lines'")


def cli_mode(flag):
    """The mode the command line uses: the user's --progress / --no-progress, else a bar on a
    terminal and plain lines elsewhere."""
    if flag is not None:
        return flag
    return None if sys.stderr.isatty() else "lines"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Reporter:
    """Progress through ``total`` units (steps, points), starting from ``initial``."""

    def __init__(self, mode, total: int, initial: int = 0, unit: str = "step", desc: str = "meanfield",
                 every: float = LINE_SECONDS):
        check(mode)
        self.total, self.done, self.unit, self.desc, self.every = total, initial, unit, desc, every
        self.start_done, self.tic = initial, time.perf_counter()
        self.last_line = self.tic
        self.bar = None
        self.lines = mode == "lines"
        if mode is True or (mode is None and sys.stderr.isatty()):
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, leave=False,
                            delay=0 if mode is True else BAR_DELAY)

    def update(self, count: int = 1):
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        elif self.lines and time.perf_counter() - self.last_line >= self.every:
            self.line()

    def line(self):
        """Print one plain progress line now."""
        now = time.perf_counter()
        self.last_line = now
        elapsed, moved = now - self.tic, self.done - self.start_done
        left = (f", about {_clock(elapsed * (self.total - self.done) / moved)} left" if moved > 0 else "")
        print(f"{self.desc}: {self.unit} {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f} %), "
              f"{_clock(elapsed)} elapsed{left}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
