"""What theory says about a run: the infinite-width limits (computed, and reduced by symmetry)
and the landscape's critical points and certificates."""
