"""The op table: every supported ONNX operator (default domain) and the rule that computes it.

A rule is ``rule(inputs, attrs) -> output or tuple of outputs``: `inputs` are ember tensors in the
node's input order (None for an absent optional input), `attrs` is an :class:`Attrs` (a dict of the
node's attributes with ``opset``, ``n_outputs`` and ``op_type``). Rules are written with ember ops
only, so an imported model runs eagerly, under ``ember.jit`` and under the function transforms, and is
differentiable. Attribute-versus-input changes across opsets (Reshape, Squeeze, Slice, Pad, Clip, the
reductions…) are handled inside each rule from ``attrs.opset``.

Adding an operator is one entry here: ``OPS["Name"] = rule``.
"""
from __future__ import annotations

from typing import Callable

from .._core.primitives import elementwise as ew
from .._core.primitives import reduce as red
from . import _nn_ops as nn
from . import _rnn_ops as rnn
from . import _tensor_ops as T
from ._common import Attrs

__all__ = ["OPS", "Attrs", "supported_ops"]

Rule = Callable[[list, Attrs], object]

OPS: dict[str, Rule] = {
    # elementwise arithmetic (broadcasting; opsets < 7 also take broadcast/axis attributes)
    "Add": T.binary(ew.add),
    "Sub": T.binary(ew.sub),
    "Mul": T.binary(ew.mul),
    "Div": T.binary(T.div_op),
    "Pow": T.binary(T.pow_op),
    "Mod": T.mod_op,
    "Max": T.variadic(ew.maximum),
    "Min": T.variadic(ew.minimum),
    "Sum": T.variadic(ew.add),
    "Mean": T.mean_op,
    "Equal": T.binary(ew.eq),
    "Greater": T.binary(ew.gt),
    "Less": T.binary(ew.lt),
    "GreaterOrEqual": T.binary(ew.ge),
    "LessOrEqual": T.binary(ew.le),
    "And": T.binary(ew.logical_and),
    "Or": T.binary(ew.logical_or),
    "Xor": T.binary(ew.logical_xor),
    "BitwiseAnd": T.binary(ew.bitwise_and),
    "BitwiseOr": T.binary(ew.bitwise_or),
    "BitwiseXor": T.binary(ew.bitwise_xor),
    "BitwiseNot": T.unary(ew.bitwise_not),
    "Not": T.unary(ew.logical_not),
    "Where": T.where_op,
    "Clip": T.clip_op,
    # elementwise functions
    "Abs": T.unary(ew.abs),
    "Neg": T.unary(ew.neg),
    "Exp": T.unary(ew.exp),
    "Log": T.unary(ew.log),
    "Sqrt": T.unary(ew.sqrt),
    "Reciprocal": T.unary(ew.reciprocal),
    "Floor": T.unary(ew.floor),
    "Ceil": T.unary(ew.ceil),
    "Round": T.unary(ew.round),
    "Sign": T.unary(ew.sign),
    "Erf": T.unary(ew.erf),
    "Sin": T.unary(ew.sin),
    "Cos": T.unary(ew.cos),
    "Tan": T.unary(ew.tan),
    "Asin": T.unary(ew.asin),
    "Acos": T.unary(ew.acos),
    "Atan": T.unary(ew.atan),
    "Sinh": T.unary(ew.sinh),
    "Cosh": T.unary(ew.cosh),
    "Asinh": T.unary(ew.asinh),
    "Acosh": T.unary(ew.acosh),
    "Atanh": T.unary(ew.atanh),
    "IsNaN": T.unary(ew.isnan),
    "IsInf": T._is_inf,
    "Identity": T.identity_op,
    "Cast": T.cast_op,
    "CastLike": T.cast_like_op,
    # activations
    "Relu": T.unary(ew.relu),
    "Sigmoid": T.unary(ew.sigmoid),
    "Tanh": T.unary(ew.tanh),
    "Softplus": T.unary(ew.softplus),
    "Softsign": T._softsign,
    "Elu": T._elu,
    "Selu": T._selu,
    "Celu": T._celu,
    "LeakyRelu": T._leaky_relu,
    "PRelu": T.prelu_op,
    "ThresholdedRelu": T._thresholded_relu,
    "HardSigmoid": T._hard_sigmoid,
    "HardSwish": T._hard_swish,
    "Gelu": T._gelu,
    "Mish": T._mish,
    "Shrink": T._shrink,
    "Softmax": T.softmax_op,
    "LogSoftmax": T.log_softmax_op,
    "Hardmax": T.hardmax_op,
    # matrix products
    "MatMul": T.matmul_op,
    "Gemm": T.gemm_op,
    "Einsum": T.einsum_op,
    # reductions
    **{name: T.reduction(fn, since) for name, (fn, since) in T.REDUCTIONS.items()},
    "ArgMax": T.arg_reduce(True),
    "ArgMin": T.arg_reduce(False),
    "CumSum": T.cumsum_op,
    "TopK": T.topk_op,
    # shapes, layout and indexing
    "Reshape": T.reshape_op,
    "Flatten": T.flatten_op,
    "Transpose": T.transpose_op,
    "Squeeze": T.squeeze_op,
    "Unsqueeze": T.unsqueeze_op,
    "Concat": T.concat_op,
    "Split": T.split_op,
    "Slice": T.slice_op,
    "Gather": T.gather_op,
    "GatherElements": T.gather_elements_op,
    "GatherND": T.gather_nd_op,
    "ScatterElements": T.scatter_elements_op,
    "Expand": T.expand_op,
    "Tile": T.tile_op,
    "Pad": T.pad_op,
    "Shape": T.shape_op,
    "Size": T.size_op,
    "Constant": T.constant_op,
    "ConstantOfShape": T.constant_of_shape_op,
    "Range": T.range_op,
    "DepthToSpace": T.depth_to_space_op,
    "SpaceToDepth": T.space_to_depth_op,
    "Trilu": T.trilu_op,
    "NonZero": T.nonzero_op,
    "OneHot": T.one_hot_op,
    "Dropout": T.dropout_op,
    # convolution and pooling
    "Conv": nn.conv_op,
    "ConvTranspose": nn.conv_transpose_op,
    "MaxPool": nn.max_pool_op,
    "AveragePool": nn.avg_pool_op,
    "LpPool": nn.lp_pool_op,
    "GlobalAveragePool": nn.global_pool(red.mean),
    "GlobalMaxPool": nn.global_pool(red.amax),
    "GlobalLpPool": nn.global_lp_pool_op,
    # normalisation
    "BatchNormalization": nn.batch_norm_op,
    "InstanceNormalization": nn.instance_norm_op,
    "LayerNormalization": nn.layer_norm_op,
    "GroupNormalization": nn.group_norm_op,
    "LRN": nn.lrn_op,
    "MeanVarianceNormalization": nn.mean_variance_norm_op,
    # resizing
    "Resize": nn.resize_op,
    "Upsample": nn.upsample_op,
    # recurrent
    "RNN": rnn.rnn_op,
    "GRU": rnn.gru_op,
    "LSTM": rnn.lstm_op,
}


def supported_ops() -> list[str]:
    """The ONNX operator types (default domain) the importer implements, sorted.

    Example:
        >>> import ember
        >>> "Conv" in ember.onnx.supported_ops()
        True
    """
    return sorted(OPS)
