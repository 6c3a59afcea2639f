import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def fitted_slope(x, y) -> float:
    """Least-squares slope of log(y) against log(x)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def interruptible(args, **kwargs):
    """subprocess.Popen for a process a test will interrupt: SIGINT at its default in the child,
    even when the test run was started in the background (SIGINT ignored, and inherited)."""
    import signal
    import subprocess

    return subprocess.Popen(args, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)
