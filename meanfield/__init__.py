"""meanfield: two-layer neural networks as systems of interacting particles.

Training is a Wasserstein gradient flow of the neurons' empirical measure; one switch
(``network.scaling`` = "mean_field" | "lazy", and the output scale ``alpha``) moves between
feature learning and kernel (NTK) training. See docs/conventions.md.

The package's folders are its layers, each importing only from those below it: ``model`` (the
mathematics), ``store`` (files a run leaves), ``engine`` (how a run moves), ``analysis`` (numbers
from runs), ``theory`` (limits and landscapes), ``tools`` (the command line); ``config``,
``errors`` and ``_kernels`` (all Numba code) sit at the root.

    import meanfield as mf
    cfg = mf.Config(network={"m": 200, "d": 2}, flow={"dt": 0.05, "t_end": 10.0})
    res = mf.simulate(cfg)
    res.t, res.observables["train_risk"], res.snapshots, res.status, res.stats
"""
from . import _aliases
from .config import Config, DataConfig, FlowConfig, InitConfig, NetworkConfig, RecordConfig
from .engine.controller import run_data, simulate
from .errors import (
    ConfigError,
    CorruptedResultError,
    DataError,
    DistanceError,
    DivergenceError,
    MeanfieldError,
    OutputError,
)
from .model.data import Dataset, make_data
from .model.init import initial_particles
from .model.scaling import (
    dt_from_learning_rate,
    learning_rate_from_dt,
    output_scale,
    time_factor,
    weight_decay_from_lam,
)
from .store.results import Result

_aliases.install()


def __getattr__(name):
    """``from meanfield import controller`` and the like, for one release (``_aliases``)."""
    if name in _aliases.MOVED:
        import importlib

        module = globals()[name] = importlib.import_module(f"meanfield.{_aliases.new_home(name)}")    # warned once
        return module
    raise AttributeError(f"module 'meanfield' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "Config", "NetworkConfig", "InitConfig", "DataConfig", "FlowConfig", "RecordConfig",
    "Dataset", "make_data", "run_data", "initial_particles", "simulate", "Result",
    "MeanfieldError", "ConfigError", "DataError", "DivergenceError", "DistanceError",
    "CorruptedResultError", "OutputError",
    "output_scale", "time_factor", "learning_rate_from_dt", "dt_from_learning_rate",
    "weight_decay_from_lam",
]
