"""What the command line drives: the ``meanfield`` command, ``show``, sweeps, the figure pipeline,
benchmarks and the expert peers they time."""
