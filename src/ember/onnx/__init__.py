"""ONNX import and export: ``ember.onnx.load(path)`` turns an ONNX model into an ember Module, and
``ember.onnx.export(model, args, path)`` writes a traced model as ONNX.

Parsing needs the optional ``onnx`` package (``pip install ember[onnx]``); it is imported only when a
model is loaded. Supported operators are listed by :func:`supported_ops`; the op table is
``ember.onnx.ops.OPS``.
"""
from ._common import MissingDependencyError, OnnxError, UnsupportedOperatorError
from .export import UnsupportedPrimitiveError, export
from .importer import OnnxModule, load
from .ops import supported_ops

__all__ = ["load", "export", "UnsupportedPrimitiveError", "OnnxModule", "supported_ops", "OnnxError",
           "UnsupportedOperatorError", "MissingDependencyError"]
