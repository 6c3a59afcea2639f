"""Numbers from runs: Wasserstein distances (the only POT user), fits with intervals over seeds,
the claims a figure makes, and plotting."""
