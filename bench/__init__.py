"""Benchmarks of omnijourney: each module prints its figures and the machine it ran on."""
