"""Side-by-side speed benchmark: the generated training loops against the source projects' loops.

Run `python -m benchmarks.run` (or `fmnist-dsl bench`); each measurement runs in its own process (benchmarks.worker).
"""
