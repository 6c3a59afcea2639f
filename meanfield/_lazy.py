"""Deferred imports: ``import meanfield`` loads neither Numba nor the compiled kernels; they
load on the first attribute access (the first run)."""
from __future__ import annotations

import importlib.util
import sys


def module(name: str):
    """``name`` as a module object that is executed on first attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    lazy = importlib.util.module_from_spec(spec)
    sys.modules[name] = lazy
    loader.exec_module(lazy)
    return lazy
