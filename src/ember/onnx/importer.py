"""Reading an ONNX model into an :class:`OnnxModule` whose forward runs the graph with ember ops.

Loading parses the protobuf with the optional ``onnx`` package, checks every operator against the op
table (all unsupported ones are reported at once, before anything runs), turns float initializers into
Parameters (so the model can be fine-tuned) and other initializers into buffers, and evaluates Constant
nodes once. Running the module walks the nodes in graph order (ONNX requires topological order).
"""
from __future__ import annotations

import keyword
import os
import re
from collections import Counter
from typing import Any

import numpy as np

from .._core import creation
from .._core.errors import DTypeError, EmberError, ShapeError
from .._core.tensor import Tensor
from ..nn.module import Module
from ..nn.parameter import Parameter
from ._common import DTYPES, Attrs, MissingDependencyError, OnnxError, UnsupportedOperatorError
from .ops import OPS

_DEFAULT_DOMAINS = ("", "ai.onnx")


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("ember.onnx", "reading ONNX models needs the 'onnx' package; install it "
                                     "with `pip install onnx` (or `pip install ember[onnx]`)") from None
    return onnx


def _parse(model: Any, onnx) -> Any:
    """A ModelProto from a path, bytes, a binary file object or a ModelProto."""
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        if isinstance(model, (bytes, bytearray, memoryview)):
            return onnx.load_model_from_string(bytes(model))
        if isinstance(model, (str, os.PathLike)) or hasattr(model, "read"):
            return onnx.load(model)
    except OSError as exc:
        raise OnnxError("ember.onnx.load", f"cannot read the model: {exc}") from exc
    except Exception as exc:  # protobuf's DecodeError and friends
        raise OnnxError("ember.onnx.load", f"not a valid ONNX model ({type(exc).__name__}: {exc})") from exc
    raise OnnxError("ember.onnx.load", f"expected a path, bytes, a file object or an onnx.ModelProto, got "
                    f"{type(model).__name__}")


def _opset(proto) -> int:
    versions = [o.version for o in proto.opset_import if o.domain in _DEFAULT_DOMAINS]
    return versions[0] if versions else 1


def _op_label(node) -> str:
    return node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"


def check_supported(graph) -> None:
    """Raise UnsupportedOperatorError naming every operator of `graph` that the op table lacks."""
    missing = Counter(_op_label(n) for n in graph.node
                      if n.domain not in _DEFAULT_DOMAINS or n.op_type not in OPS)
    if missing:
        listed = ", ".join(f"{op} (x{count})" if count > 1 else op for op, count in sorted(missing.items()))
        raise UnsupportedOperatorError("ember.onnx.load", f"the model uses {len(missing)} unsupported "
                                       f"operator type(s): {listed}")


def _attribute(attr, onnx) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, list):
        if value and isinstance(value[0], bytes):
            return [v.decode("utf-8") for v in value]
        if value and isinstance(value[0], onnx.TensorProto):
            return [onnx.numpy_helper.to_array(v) for v in value]
    return value


def _array(init, onnx) -> np.ndarray:
    if init.data_type not in DTYPES:
        raise UnsupportedOperatorError("ember.onnx.load", f"initializer {init.name!r} has element type code "
                                       f"{init.data_type}, which ember does not support")
    return onnx.numpy_helper.to_array(init)


_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*$")


class _Namespace(Module):
    """Holds the parameters whose ONNX names share a dotted prefix (``encoder.layer0.weight``)."""

    def forward(self, *args, **kwargs):
        raise OnnxError("ember.onnx", "a parameter namespace of an imported model is not callable")


class _Node:
    __slots__ = ("op_type", "inputs", "outputs", "attrs", "rule")

    def __init__(self, node, attrs: Attrs):
        self.op_type = node.op_type
        self.inputs = tuple(node.input)
        self.outputs = tuple(node.output)
        self.attrs = attrs
        self.rule = OPS[node.op_type]


class OnnxModule(Module):
    """An imported ONNX graph as an ember Module (build it with :func:`ember.onnx.load`).

    Float initializers are Parameters and other initializers buffers; ``onnx_names`` maps each
    initializer's ONNX name to its ``state_dict`` key (dotted ONNX names such as ``fc1.weight`` keep
    their name). ``forward`` takes the graph inputs positionally in graph order or by name, and returns
    the one output, or a tuple of outputs in graph order.

    Attributes:
        input_names: the graph inputs that ``forward`` expects, in order.
        output_names: the graph outputs, in order.
        opset: the default-domain operator set version of the model.
        onnx_names: ONNX initializer name -> state_dict key.
    """

    def __init__(self, proto, onnx) -> None:
        super().__init__()
        graph = proto.graph
        self.opset = _opset(proto)
        init_names = {i.name for i in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in init_names]
        self.output_names = [o.name for o in graph.output]
        self._input_types = {i.name: i.type.tensor_type for i in graph.input if i.name not in init_names}
        self.onnx_names: dict[str, str] = {}
        self._slots: dict[str, tuple[Module, str]] = {}
        for init in graph.initializer:
            self._add_initializer(init.name, _array(init, onnx))
        self._constants: dict[str, Tensor] = {}
        self._nodes: list[_Node] = []
        for node in graph.node:
            attrs = Attrs({a.name: _attribute(a, onnx) for a in node.attribute}, node.op_type, node.name,
                          self.opset, len(node.output))
            if node.op_type == "Constant":  # evaluated once; its value is not a trainable parameter
                self._constants[node.output[0]] = OPS["Constant"]([], attrs)
            else:
                self._nodes.append(_Node(node, attrs))

    # -- initializers ------------------------------------------------------------------------------
    def _add_initializer(self, name: str, array: np.ndarray) -> None:
        value = creation.tensor(np.array(array, order="C"))  # keeps 0-d scalars 0-d
        owner, attr = self._home(name)
        if value.dtype.is_floating_point:
            owner.register_parameter(attr, Parameter(value))
        else:
            owner.register_buffer(attr, value)
        self._slots[name] = (owner, attr)
        self.onnx_names[name] = self._key(owner, attr)

    def _home(self, name: str) -> tuple[Module, str]:
        """The module and attribute name that hold initializer `name`."""
        parts = name.split(".")
        if all(_IDENT.match(p) and not keyword.iskeyword(p) for p in parts):
            owner: Module = self
            for p in parts[:-1]:
                child = owner._modules.get(p)
                if child is None and self._free(owner, p):
                    child = _Namespace()
                    owner.register_module(p, child)
                if not isinstance(child, _Namespace):
                    break
                owner = child
            else:
                if self._free(owner, parts[-1]):
                    return owner, parts[-1]
        return self, self._flat_name(name)

    def _free(self, owner: Module, attr: str) -> bool:
        taken = attr in owner._parameters or attr in owner._buffers or attr in owner._modules
        return not taken and not hasattr(type(owner), attr) and attr not in owner.__dict__

    def _flat_name(self, name: str) -> str:
        base = re.sub(r"\W", "_", name)
        base = base if _IDENT.match(base) and not keyword.iskeyword(base) else f"_{base}"
        attr, k = base, 1
        while not self._free(self, attr):
            k += 1
            attr = f"{base}_{k}"
        return attr

    def _key(self, owner: Module, attr: str) -> str:
        if owner is self:
            return attr
        prefix = next(n for n, m in self.named_modules() if m is owner)
        return f"{prefix}.{attr}"

    # -- running -----------------------------------------------------------------------------------
    def _bind_inputs(self, args: tuple, kwargs: dict) -> dict[str, Tensor]:
        if len(args) > len(self.input_names):
            raise OnnxError("ember.onnx", f"the model takes {len(self.input_names)} input(s) "
                            f"{self.input_names}, got {len(args)} positional arguments")
        bound = dict(zip(self.input_names, args))
        for name, value in kwargs.items():
            if name not in self._input_types:
                raise OnnxError("ember.onnx", f"unexpected input {name!r}; the model's inputs are "
                                f"{self.input_names}")
            if name in bound:
                raise OnnxError("ember.onnx", f"input {name!r} was given both positionally and by name")
            bound[name] = value
        missing = [n for n in self.input_names if n not in bound]
        if missing:
            raise OnnxError("ember.onnx", f"missing input(s) {missing}; the model's inputs are "
                            f"{self.input_names}")
        return {n: self._checked(n, v) for n, v in bound.items()}

    def _checked(self, name: str, value: Any) -> Tensor:
        if not isinstance(value, Tensor):
            value = creation.tensor(np.asarray(value))
        ttype = self._input_types[name]
        want = DTYPES.get(ttype.elem_type)
        if want is not None and value.dtype != want:
            raise DTypeError("ember.onnx", f"input {name!r} must have dtype {want}, got {value.dtype}",
                             (value,))
        if ttype.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
            if len(dims) != value.ndim or any(d is not None and d != s for d, s in zip(dims, value.shape)):
                shown = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                              for d in ttype.shape.dim)
                raise ShapeError("ember.onnx", f"input {name!r} must have shape {shown}, got "
                                 f"{tuple(value.shape)}", (value,))
        return value

    def forward(self, *args: Any, **kwargs: Any):
        """Run the graph on its inputs (positional in graph order, or by name); one output or a tuple."""
        env: dict[str, Any] = dict(self._constants)
        for name, (owner, attr) in self._slots.items():
            env[name] = getattr(owner, attr)
        env.update(self._bind_inputs(args, kwargs))
        for node in self._nodes:
            self._run_node(node, env)
        outs = tuple(env[n] for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    @staticmethod
    def _run_node(node: _Node, env: dict) -> None:
        try:
            inputs = [env[n] if n else None for n in node.inputs]
        except KeyError as exc:
            raise OnnxError(node.attrs.where, f"input {exc.args[0]!r} is not produced by any earlier node, "
                            "initializer or graph input (the graph must be in topological order)") from None
        try:
            result = node.rule(inputs, node.attrs)
        except EmberError as exc:
            if hasattr(exc, "add_note") and not isinstance(exc, OnnxError):
                exc.add_note(f"while running {node.attrs.where}")
            raise
        results = result if isinstance(result, tuple) else (result,)
        for i, name in enumerate(node.outputs):
            if not name:
                continue
            if i >= len(results):
                raise UnsupportedOperatorError(node.attrs.where, f"output {i} ({name!r}) is not produced")
            env[name] = results[i]

    def extra_repr(self) -> str:
        return (f"inputs={self.input_names}, outputs={self.output_names}, nodes={len(self._nodes)}, "
                f"opset={self.opset}")


def load(model: Any) -> OnnxModule:
    """Import an ONNX model as an ember Module.

    Args:
        model: a path to a ``.onnx`` file, the file's bytes, a binary file object, or an
            ``onnx.ModelProto``. Parsing needs the optional ``onnx`` package.

    Returns:
        An :class:`OnnxModule`: call it with the graph inputs (positionally or by name) to get the
        output (or a tuple of outputs). Float initializers are Parameters, so gradients reach them and
        the model can be fine-tuned; it also runs under ``ember.jit`` and ``ember.func`` transforms.

    Raises:
        UnsupportedOperatorError: the model uses operators that are not implemented; all of them are
            listed in one message, before anything runs.
        MissingDependencyError: the ``onnx`` package is not installed.

    Example:
        >>> import ember, onnx
        >>> from onnx import TensorProto, helper
        >>> graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
        ...                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        ...                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
        >>> m = ember.onnx.load(helper.make_model(graph))
        >>> m(ember.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    onnx = _require_onnx()
    proto = _parse(model, onnx)
    if proto.graph.sparse_initializer:
        raise UnsupportedOperatorError("ember.onnx.load", "sparse initializers are not supported")
    check_supported(proto.graph)
    return OnnxModule(proto, onnx)
