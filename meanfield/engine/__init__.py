"""How a run moves: the controller (one loop for every system), the systems, the drift strategies,
error-controlled steps, observables, threads, memory plans, progress and interrupts."""
