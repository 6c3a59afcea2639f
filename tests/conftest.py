import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def floating_point_errors_raise():
    """Every test runs with overflow, division by zero and invalid operations raising: the library
    expects none (where they can happen it handles them, under np.errstate); underflow to zero
    is correct rounding and stays silent. Every figure a test opens is closed after it."""
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        yield
    import sys
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


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


def assert_same_run(a, b):
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_array_equal(a.snapshots, b.snapshots)
    np.testing.assert_array_equal(a.theta, b.theta)
    for name in a.observables:
        np.testing.assert_array_equal(a.observables[name], b.observables[name])


def interrupt_at_record(monkeypatch, count):
    """Make the controller raise KeyboardInterrupt as it takes its ``count``-th record after t = 0
    (a checkpoint then keeps the previous record's state); returns a function that undoes it."""
    from meanfield.engine import controller

    original, calls = controller._record, []

    def record(*args, **kwargs):
        calls.append(1)
        if len(calls) == count:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(controller, "_record", record)
    return lambda: monkeypatch.setattr(controller, "_record", original)


def resumed_after_interrupt(monkeypatch, count, run, folder):
    """``run(checkpoint=folder)`` interrupted (KeyboardInterrupt) as it takes its ``count``-th
    record after t = 0, then run again: the result resumed from the checkpoint."""
    undo = interrupt_at_record(monkeypatch, count)
    with pytest.raises(KeyboardInterrupt):
        run(checkpoint=folder)
    undo()
    return run(checkpoint=folder)
