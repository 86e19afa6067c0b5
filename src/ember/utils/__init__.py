"""Utilities: gradient checkpointing."""
from . import checkpoint

__all__ = ["checkpoint"]
