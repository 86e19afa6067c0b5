"""Saving and loading: ``ember.save`` / ``ember.load`` for tensors and containers, safetensors state
dicts interoperable with PyTorch, and atomic training checkpoints that resume bit-identically.

Every file is a safetensors file; nothing is ever unpickled, so loading an untrusted file cannot run code.
"""
from ._files import SerializationError, atomic_write
from .checkpoint import load_checkpoint, save_checkpoint
from .safetensors_io import load_file, load_model, save_file, save_model
from .serialization import load, save

__all__ = ["SerializationError", "save", "load", "save_file", "load_file", "save_model", "load_model",
           "save_checkpoint", "load_checkpoint", "atomic_write"]
