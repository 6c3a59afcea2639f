"""The mathematics, in NumPy: the two-layer and deep models, their scalings, activations and losses,
energy terms, integrators (tableaus), initial laws, data, population risk, tangent kernels,
quadratures, measures and Langevin quantities. The readable oracle of the compiled engine."""


def __getattr__(name):
    """The names of the former module ``meanfield.model`` (now ``model.twolayer``), for one release."""
    import importlib
    import warnings
    from pathlib import Path

    if name.startswith("_") or (Path(__file__).parent / f"{name}.py").exists():      # a submodule: import it
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    twolayer = importlib.import_module(f"{__name__}.twolayer")
    if not hasattr(twolayer, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"meanfield.model.{name} moved to meanfield.model.twolayer.{name}; the old path works until "
                  "the next release", DeprecationWarning, stacklevel=2)
    value = globals()[name] = getattr(twolayer, name)          # warned once
    return value
