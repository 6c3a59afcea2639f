"""The module paths of the flat layout (meanfield <= 0.1: ``meanfield.controller`` ...), kept for one
release: ``import meanfield.controller``, ``from meanfield import controller`` and
``python -m meanfield.cli`` reach the module's new home, with a DeprecationWarning naming it.
Nothing in meanfield itself uses them (tests/test_repository.py checks)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "scaling": "model.scaling", "activations": "model.activations", "energy": "model.energy",
    "integrators": "model.integrators", "init": "model.init", "data": "model.data", "deep": "model.deep",
    "parameterizations": "model.parameterizations", "population": "model.population", "ntk": "model.ntk",
    "quadrature": "model.quadrature", "measures": "model.measures", "langevin": "model.langevin",
    "files": "store.files", "results": "store.results", "runfolder": "store.runfolder",
    "checkpoint": "store.checkpoint",
    "controller": "engine.controller", "stepping": "engine.drifts", "deep_run": "engine.deep_net",
    "adaptive": "engine.adaptive", "observables": "engine.observables", "threads": "engine.threads",
    "memory": "engine.memory", "progress": "engine.progress", "interrupts": "engine.interrupts",
    "problem": "engine.problem",
    "distances": "analysis.distances", "fits": "analysis.fits", "claims": "analysis.claims",
    "plotting": "analysis.plotting",
    "limits": "theory.limits", "reduced": "theory.reduced", "landscape": "theory.landscape",
    "cli": "tools.cli", "show": "tools.show", "sweep": "tools.sweep", "figures": "tools.figures",
    "bench": "tools.bench", "peers": "tools.peers",
}
# meanfield.model was the two-layer model's module; it is now the package of the mathematics,
# whose ``model.twolayer`` holds those names (reached through ``model.__getattr__``).
OLD_MODEL = "model.twolayer"


def new_home(old: str) -> str:
    """The new dotted path (under meanfield) of an old module name, warning that it moved."""
    new = MOVED[old]
    warnings.warn(f"meanfield.{old} moved to meanfield.{new}; the old path works until the next release",
                  DeprecationWarning, stacklevel=3)
    return new


class _Loader(importlib.abc.Loader):
    """Gives the moved module itself (one module object, not a copy), and its code to ``-m``."""

    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        return importlib.import_module(self.new)

    def exec_module(self, module):
        sys.modules[self.new] = module

    def get_code(self, fullname):
        """``python -m meanfield.OLD``: run the new module as the main one."""
        return compile(f"import runpy; runpy.run_module({self.new!r}, run_name='__main__', alter_sys=True)",
                       f"<meanfield.{fullname}>", "exec")


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.rpartition(".")
        if package != "meanfield" or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _Loader(f"meanfield.{new_home(old)}"))


def install():
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
