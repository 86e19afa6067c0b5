"""Ember's benchmarks: workloads measured side by side with their peers (NumPy, PyTorch).

Threading environment: PyTorch's libgomp, loaded with ``import torch``, is the one OpenMP runtime of the
process (Ember's generated kernels link against the same library name and share it), so its settings
are fixed here, before either framework loads, to what each would use alone: NumPy's OpenBLAS (Ember's
matrix products) gets the thread timeout Ember sets when imported first, and OpenMP threads spin 10,000
times before sleeping (Ember's setting; PyTorch's GPT step measured the same as with libgomp's defaults,
307-345 ms vs 317-318 ms, in separate processes). See docs/guide/environment.md.
"""
import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import torch  # noqa: E402,F401

import ember  # noqa: E402,F401
