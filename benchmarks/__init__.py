"""Ember's benchmarks: workloads measured side by side with their peers (NumPy, PyTorch)."""
