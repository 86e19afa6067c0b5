"""Ember's foundation: dtypes, tensors, primitives, dispatch, autograd, random numbers."""
