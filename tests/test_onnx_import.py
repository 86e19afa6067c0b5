"""ember.onnx.load: hand-built models against onnxruntime, fine-tuning, jit and grad, errors, and the
op table's opset variants (attribute-versus-input forms) one node at a time."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import ember
from ember.func import grad

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from helpers import assert_close, check_grad, np_of  # noqa: E402

_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
          np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32,
          np.dtype(np.bool_): TensorProto.BOOL}


class C:
    """A node input given as an initializer (a constant) rather than as a graph input."""

    def __init__(self, value, dtype=np.int64):
        self.value = np.asarray(value, dtype=dtype)


def make_model(nodes, feeds: dict, inits: dict, outputs, opset: int, batch: str | None = None):
    """A model with graph inputs typed like `feeds` (the first dimension named `batch` if given)."""
    shape = lambda v: ((batch,) + v.shape[1:]) if batch else v.shape
    inputs = [helper.make_tensor_value_info(n, _TYPES[v.dtype], shape(v)) for n, v in feeds.items()]
    graph = helper.make_graph(nodes, "g", inputs, [onnx.ValueInfoProto(name=o) for o in outputs],
                              [numpy_helper.from_array(v, n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def run_ort(model, feeds: dict) -> list:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_ember(model, feeds: dict) -> list:
    out = ember.onnx.load(model)(**{k: ember.tensor(v) for k, v in feeds.items()})
    return [np_of(o) for o in (out if isinstance(out, tuple) else (out,))]


def single(op: str, args: list, opset: int, n_out: int = 1, **attrs):
    """A one-node model: arrays in `args` are graph inputs, C(...) initializers, None absent inputs."""
    feeds, inits, names = {}, {}, []
    for i, a in enumerate(args):
        if a is None:
            names.append("")
        elif isinstance(a, C):
            names.append(f"c{i}")
            inits[f"c{i}"] = a.value
        else:
            names.append(f"x{i}")
            feeds[f"x{i}"] = np.asarray(a)
    outs = [f"y{k}" for k in range(n_out)]
    return make_model([helper.make_node(op, names, outs, **attrs)], feeds, inits, outs, opset), feeds


# -- the hand-built MLP ----------------------------------------------------------------------------------
def mlp_model(rng, dtype=np.float32):
    w1 = rng.standard_normal((16, 4)).astype(dtype) * 0.5
    b1 = rng.standard_normal(16).astype(dtype) * 0.1
    w2 = rng.standard_normal((16, 2)).astype(dtype) * 0.5
    b2 = rng.standard_normal(2).astype(dtype) * 0.1
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("MatMul", ["a", "fc2.weight"], ["m"]),
             helper.make_node("Add", ["m", "fc2.bias"], ["y"])]
    x = np.zeros((5, 4), dtype)
    inits = {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": b2}
    return make_model(nodes, {"x": x}, inits, ["y"], 17, batch="N"), inits


def test_mlp_matches_onnxruntime_and_keeps_names(rng):
    model, inits = mlp_model(rng)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    m = ember.onnx.load(model)
    assert_close(m(ember.tensor(x)), run_ort(model, {"x": x})[0], rtol=1e-5, atol=1e-6)
    assert_close(m(x=ember.tensor(x)), run_ort(model, {"x": x})[0], rtol=1e-5, atol=1e-6)
    assert sorted(m.state_dict()) == sorted(inits)
    assert m.input_names == ["x"] and m.output_names == ["y"]
    assert all(isinstance(p, ember.nn.Parameter) for p in m.parameters())


def test_load_accepts_path_bytes_and_file_object(rng, tmp_path):
    model, _ = mlp_model(rng)
    x = ember.tensor(rng.standard_normal((5, 4)).astype(np.float32))
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    expected = np_of(ember.onnx.load(model)(x))
    for source in (str(path), path, model.SerializeToString(), io.BytesIO(model.SerializeToString())):
        assert_close(ember.onnx.load(source)(x), expected, rtol=0, atol=0)


def test_imported_mlp_fine_tunes_with_sgd(rng):
    model, inits = mlp_model(rng)
    m = ember.onnx.load(model)
    x = ember.tensor(rng.standard_normal((32, 4)).astype(np.float32))
    target = ember.tensor(rng.standard_normal((32, 2)).astype(np.float32))
    opt = ember.optim.SGD(m.parameters(), lr=0.05)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = ember.nn.functional.mse_loss(m(x), target)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0]
    state = m.state_dict()
    for name, value in inits.items():
        assert not np.allclose(np_of(state[name]), value), name


def test_integer_initializers_are_buffers():
    model, feeds = single("Add", [np.array([1, 2], np.int64), C([3, 4])], 13)
    m = ember.onnx.load(model)
    assert list(m.parameters()) == [] and [n for n, _ in m.named_buffers()] == ["c1"]
    assert m(ember.tensor(feeds["x0"])).tolist() == [4, 6]


def test_imported_model_runs_under_jit_and_grad(rng):
    model, inits = mlp_model(rng, np.float64)
    m = ember.onnx.load(model)
    x = rng.standard_normal((5, 4))
    jitted = ember.jit(m)
    assert_close(jitted(ember.tensor(x)), np_of(m(ember.tensor(x))), rtol=1e-12, atol=1e-12)
    assert jitted.compile_count == 1
    g = grad(lambda t: m(t).sum())(ember.tensor(x))
    h = x @ inits["fc1.weight"].T + inits["fc1.bias"]
    expected = ((h > 0) * (np.ones((5, 2)) @ inits["fc2.weight"].T)) @ inits["fc1.weight"]
    assert_close(g, expected, rtol=1e-10, atol=1e-12)
    assert_close(ember.jit(grad(lambda t: m(t).sum()))(ember.tensor(x)), expected, rtol=1e-10, atol=1e-12)


def test_conv_model_gradients_match_finite_differences(rng):
    w = rng.standard_normal((3, 2, 3, 3))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 0, 1, 2], strides=[1, 2]),
             helper.make_node("Tanh", ["c"], ["t"]),
             helper.make_node("MaxPool", ["t"], ["p"], kernel_shape=[2, 2], strides=[1, 1]),
             helper.make_node("BatchNormalization", ["p", "s", "b", "mu", "var"], ["y"])]
    inits = {"w": w, "s": rng.random(3) + 0.5, "b": rng.standard_normal(3), "mu": rng.standard_normal(3),
             "var": rng.random(3) + 0.5}
    x = rng.standard_normal((2, 2, 5, 6))
    m = ember.onnx.load(make_model(nodes, {"x": x}, inits, ["y"], 15))
    model32 = make_model(nodes, {"x": x.astype(np.float32)}, {k: v.astype(np.float32) for k, v in inits.items()},
                         ["y"], 15)
    feeds = {"x": x.astype(np.float32)}
    assert_close(run_ember(model32, feeds)[0], run_ort(model32, feeds)[0], rtol=1e-4, atol=1e-5)
    check_grad(lambda t: m(t), [x], second_order=False)
    m(ember.tensor(x)).sum().backward()
    assert m.w.grad is not None and m.w.grad.shape == w.shape


# -- errors --------------------------------------------------------------------------------------------
def test_unsupported_operators_are_all_listed_before_running():
    nodes = [helper.make_node("NonMaxSuppression", ["x", "x"], ["a"]),
             helper.make_node("Relu", ["x"], ["b"]),
             helper.make_node("StringNormalizer", ["b"], ["c"]),
             helper.make_node("NonMaxSuppression", ["x", "x"], ["d"]),
             helper.make_node("FusedConv", ["x"], ["e"], domain="com.microsoft")]
    model = make_model(nodes, {"x": np.zeros(3, np.float32)}, {}, ["a", "c", "d", "e"], 17)
    with pytest.raises(ember.onnx.UnsupportedOperatorError) as info:
        ember.onnx.load(model)
    text = str(info.value)
    assert isinstance(info.value, ember.errors.EmberError)
    for op in ("NonMaxSuppression (x2)", "StringNormalizer", "com.microsoft.FusedConv"):
        assert op in text
    assert "3 unsupported operator type(s)" in text and "Relu" not in text


def test_bad_inputs_raise_ember_errors(rng):
    model, _ = mlp_model(rng)
    m = ember.onnx.load(model)
    with pytest.raises(ember.onnx.OnnxError, match="missing input"):
        m()
    with pytest.raises(ember.onnx.OnnxError, match="unexpected input 'z'"):
        m(z=ember.zeros(5, 4))
    with pytest.raises(ember.errors.DTypeError, match="must have dtype ember.float32, got ember.float64"):
        m(ember.zeros(5, 4, dtype=ember.float64))
    with pytest.raises(ember.errors.ShapeError, match=r"must have shape \('N', 4\), got \(5, 3\)"):
        m(ember.zeros(5, 3))
    with pytest.raises(ember.onnx.OnnxError, match="not a valid ONNX model"):
        ember.onnx.load(b"not a model")
    with pytest.raises(ember.onnx.OnnxError, match="expected a path"):
        ember.onnx.load(3.5)


def test_missing_onnx_package_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ember.onnx.MissingDependencyError, match="pip install onnx"):
        ember.onnx.load(b"")


def test_shape_input_computed_from_a_traced_input_is_refused_under_jit():
    model, _ = single("Reshape", [np.zeros((2, 3), np.float32), np.array([3, 2], np.int64)], 13)
    m = ember.onnx.load(model)
    assert m(ember.zeros(2, 3), ember.tensor([3, 2])).shape == (3, 2)
    with pytest.raises(ember.errors.TraceError, match="onnx Reshape.*'shape'.*must be a constant"):
        ember.jit(m)(ember.zeros(2, 3), ember.tensor([3, 2]))


def test_bad_attribute_names_the_node():
    model, feeds = single("Squeeze", [np.zeros((2, 3), np.float32), C([0])], 13)
    with pytest.raises(ember.onnx.OnnxError, match="onnx Squeeze.*not all have size 1"):
        run_ember(model, feeds)


# -- one node at a time against onnxruntime --------------------------------------------------------------
R = np.random.default_rng(1)
X = R.standard_normal((2, 3, 4)).astype(np.float32)
IMG = R.standard_normal((2, 3, 7, 6)).astype(np.float32)
SEQ = R.standard_normal((5, 2, 3)).astype(np.float32)


def _rnn_case(op, gates, hidden=4, direction="forward", bias=True, lens=None, extra=(), **attrs):
    nd = 2 if direction == "bidirectional" else 1
    w = C(R.standard_normal((nd, gates * hidden, 3)) * 0.5, np.float32)
    r = C(R.standard_normal((nd, gates * hidden, hidden)) * 0.5, np.float32)
    b = C(R.standard_normal((nd, 2 * gates * hidden)) * 0.1, np.float32) if bias else None
    seq = None if lens is None else C(lens, np.int32)
    h0 = R.standard_normal((nd, 2, hidden)).astype(np.float32)
    return (op, [SEQ, w, r, b, seq, h0, *extra], 14, {"direction": direction, "hidden_size": hidden, **attrs},
            2 + (op == "LSTM"))


CASES = {
    # attribute-versus-input variants across opsets
    "Reshape-13-zero": ("Reshape", [X, C([0, -1])], 13, {}, 1),
    "Reshape-14-allowzero": ("Reshape", [X, C([4, 6])], 14, {"allowzero": 1}, 1),
    "Squeeze-11-attr": ("Squeeze", [X[:, :1]], 11, {"axes": [1]}, 1),
    "Squeeze-13-input": ("Squeeze", [X[:, :1], C([-2])], 13, {}, 1),
    "Unsqueeze-11-attr": ("Unsqueeze", [X], 11, {"axes": [0, -1]}, 1),
    "Unsqueeze-13-input": ("Unsqueeze", [X, C([3, 1])], 13, {}, 1),
    "Slice-10-steps": ("Slice", [X, C([3, 0]), C([0, 9]), C([2, 1]), C([-2, 2])], 10, {}, 1),
    "Slice-13-int-max": ("Slice", [X, C([-1]), C([-(2 ** 63)]), C([2]), C([-1])], 13, {}, 1),
    "Pad-11-reflect": ("Pad", [X, C([0, 1, 2, 0, 2, 1])], 11, {"mode": "reflect"}, 1),
    "Pad-13-constant": ("Pad", [X, C([1, 0, 0, 0, 2, 1]), C(2.5, np.float32)], 13, {}, 1),
    "Pad-18-axes-edge": ("Pad", [X, C([1, 2, 3, 0]), None, C([-1, 0])], 18, {"mode": "edge"}, 1),
    "Pad-19-wrap": ("Pad", [X, C([0, 1, 2, 0, 0, 1])], 19, {"mode": "wrap"}, 1),
    "Clip-11-inputs": ("Clip", [X, C(-0.5, np.float32), C(0.3, np.float32)], 11, {}, 1),
    "Clip-13-max-only": ("Clip", [X, None, C(0.3, np.float32)], 13, {}, 1),
    "ReduceSum-11-attr": ("ReduceSum", [X], 11, {"axes": [0, 2], "keepdims": 0}, 1),
    "ReduceSum-13-input": ("ReduceSum", [X, C([-1])], 13, {}, 1),
    "ReduceSum-13-noop": ("ReduceSum", [X, C(np.zeros(0))], 13, {"noop_with_empty_axes": 1}, 1),
    "ReduceMean-13-all": ("ReduceMean", [X], 13, {"keepdims": 0}, 1),
    "ReduceMax-18-input": ("ReduceMax", [X, C([1])], 18, {}, 1),
    "ReduceL2-13": ("ReduceL2", [X], 13, {"axes": [1]}, 1),
    "ReduceLogSumExp-18": ("ReduceLogSumExp", [X, C([0, 1])], 18, {"keepdims": 0}, 1),
    "ReduceProd-13": ("ReduceProd", [X], 13, {"axes": [0, 2]}, 1),
    "Split-11-attr": ("Split", [X], 11, {"axis": 2, "split": [1, 3]}, 2),
    "Split-13-input": ("Split", [X, C([2, 1])], 13, {"axis": 1}, 2),
    "Split-18-num-outputs": ("Split", [X], 18, {"axis": 1, "num_outputs": 2}, 2),
    "Softmax-11-coerced": ("Softmax", [X], 11, {"axis": 1}, 1),
    "Softmax-13-axis": ("Softmax", [X], 13, {"axis": 1}, 1),
    "LogSoftmax-11-default": ("LogSoftmax", [X], 11, {}, 1),
    "Hardmax-13": ("Hardmax", [X], 13, {"axis": 1}, 1),
    "Upsample-9-nearest": ("Upsample", [IMG, C([1, 1, 2, 3], np.float32)], 9, {}, 1),
    "Resize-13-nearest": ("Resize", [IMG, None, C([1, 1, 2, 2], np.float32)], 13,
                          {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, 1),
    "Resize-13-linear": ("Resize", [IMG, None, None, C([2, 3, 9, 11])], 13, {"mode": "linear"}, 1),
    "Resize-13-align": ("Resize", [IMG, None, C([1, 1, 2, 2], np.float32)], 13,
                        {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, 1),
    # convolution and pooling geometry
    "Conv-uneven-pads": ("Conv", [IMG, C(R.standard_normal((4, 3, 3, 2)), np.float32)], 13,
                         {"pads": [0, 1, 2, 1], "strides": [2, 1]}, 1),
    "Conv-same-upper-groups": ("Conv", [IMG, C(R.standard_normal((6, 1, 2, 3)), np.float32),
                                        C(R.standard_normal(6), np.float32)], 13,
                               {"auto_pad": "SAME_UPPER", "group": 3, "strides": [2, 2]}, 1),
    "Conv-same-lower-strided": ("Conv", [IMG, C(R.standard_normal((2, 3, 2, 2)), np.float32)], 13,
                                {"auto_pad": "SAME_LOWER", "strides": [2, 3]}, 1),
    "Conv-1d-dilated": ("Conv", [X, C(R.standard_normal((2, 3, 2)), np.float32)], 13,
                        {"dilations": [2], "pads": [2, 1]}, 1),
    "ConvTranspose-output-shape": ("ConvTranspose", [IMG, C(R.standard_normal((3, 2, 3, 3)), np.float32)],
                                   13, {"strides": [2, 2], "output_shape": [15, 12]}, 1),
    "ConvTranspose-uneven": ("ConvTranspose", [IMG, C(R.standard_normal((3, 4, 2, 3)), np.float32),
                                               C(R.standard_normal(4), np.float32)], 13,
                             {"strides": [2, 3], "pads": [0, 1, 1, 2], "output_padding": [1, 0]}, 1),
    "MaxPool-ceil-indices": ("MaxPool", [IMG], 12, {"kernel_shape": [3, 2], "strides": [2, 2],
                                                   "ceil_mode": 1}, 2),
    "MaxPool-same-upper": ("MaxPool", [IMG], 12, {"kernel_shape": [3, 3], "strides": [2, 2],
                                                 "auto_pad": "SAME_UPPER"}, 1),
    "MaxPool-uneven-pads": ("MaxPool", [IMG], 12, {"kernel_shape": [2, 3], "pads": [1, 0, 0, 2]}, 1),
    "AveragePool-exclude-pad": ("AveragePool", [IMG], 19, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, 1),
    "AveragePool-uneven-include": ("AveragePool", [IMG], 19, {"kernel_shape": [2, 3], "pads": [1, 0, 0, 2],
                                                              "count_include_pad": 1}, 1),
    "AveragePool-uneven-exclude": ("AveragePool", [IMG], 19, {"kernel_shape": [2, 3], "pads": [1, 0, 0, 2],
                                                              "strides": [2, 1]}, 1),
    "GlobalAveragePool": ("GlobalAveragePool", [IMG], 13, {}, 1),
    "GlobalMaxPool": ("GlobalMaxPool", [IMG], 13, {}, 1),
    "LpPool": ("LpPool", [IMG], 18, {"kernel_shape": [2, 2], "p": 2}, 1),
    # normalisation
    "BatchNormalization-15-training": ("BatchNormalization", [IMG, C([1, 2, 3], np.float32),
                                                              C([0, 1, 0], np.float32), C([0.1, 0, 0], np.float32),
                                                              C([1, 2, 0.5], np.float32)], 15,
                                       {"training_mode": 1, "momentum": 0.8}, 3),
    "InstanceNormalization": ("InstanceNormalization", [IMG, C([1, 2, 3], np.float32),
                                                        C([0, 1, 0], np.float32)], 13, {}, 1),
    "LayerNormalization": ("LayerNormalization", [X, C(R.standard_normal(4), np.float32),
                                                  C(R.standard_normal(4), np.float32)], 17, {}, 1),
    "LayerNormalization-axis": ("LayerNormalization", [X, C(R.standard_normal((3, 4)), np.float32)], 17,
                                {"axis": 1, "epsilon": 1e-3}, 1),
    "GroupNormalization-21": ("GroupNormalization", [R.standard_normal((2, 4, 3)).astype(np.float32),
                                                     C([1, 2, 3, 4], np.float32), C([0, 1, 0, 1], np.float32)],
                              21, {"num_groups": 2}, 1),
    "LRN": ("LRN", [IMG], 13, {"size": 3, "alpha": 0.01, "beta": 0.6, "bias": 2.0}, 1),
    # recurrent
    "RNN-forward": _rnn_case("RNN", 1),
    "RNN-reverse-relu-lens": _rnn_case("RNN", 1, direction="reverse", lens=[5, 3], activations=["Relu"]),
    "GRU-bidirectional": _rnn_case("GRU", 3, direction="bidirectional"),
    "GRU-linear-before-reset-lens": _rnn_case("GRU", 3, lens=[2, 5], linear_before_reset=1),
    "LSTM-bidirectional-lens": _rnn_case("LSTM", 4, direction="bidirectional", lens=[4, 5]),
    "LSTM-peepholes-no-bias": _rnn_case("LSTM", 4, bias=False, extra=[
        R.standard_normal((1, 2, 4)).astype(np.float32), C(R.standard_normal((1, 12)), np.float32)]),
    "LSTM-clip": _rnn_case("LSTM", 4, clip=0.5),
    # indexing, shapes and arithmetic
    "Gather-negative": ("Gather", [X, C([[-1, 0], [1, -3]])], 13, {"axis": 1}, 1),
    "GatherElements": ("GatherElements", [X, C(R.integers(-4, 4, (2, 3, 2)))], 13, {"axis": 2}, 1),
    "GatherND": ("GatherND", [X, C([[0, 2], [1, -1]])], 13, {}, 1),
    "ScatterElements-add": ("ScatterElements", [X, C([[[0, 1, 2, 0]]]), C(np.ones((1, 1, 4)), np.float32)],
                            18, {"axis": 2, "reduction": "add"}, 1),
    "Expand": ("Expand", [X[:1, :, :1], C([3, 1, 1, 5])], 13, {}, 1),
    "Tile": ("Tile", [X, C([1, 2, 3])], 13, {}, 1),
    "Transpose-default": ("Transpose", [X], 13, {}, 1),
    "Flatten-negative": ("Flatten", [X], 13, {"axis": -1}, 1),
    "Concat-negative": ("Concat", [X, X[:, :, :2]], 13, {"axis": -1}, 1),
    "Shape-start-end": ("Shape", [X], 15, {"start": 1, "end": -1}, 1),
    "ConstantOfShape": ("ConstantOfShape", [C([2, 3])], 13,
                        {"value": numpy_helper.from_array(np.array([1.5], np.float32))}, 1),
    "Range": ("Range", [C(1.0, np.float32), C(4.0, np.float32), C(0.5, np.float32)], 13, {}, 1),
    "Cast-int": ("Cast", [X * 3], 13, {"to": TensorProto.INT64}, 1),
    "Where": ("Where", [X > 0, X, C(0.5, np.float32)], 13, {}, 1),
    "TopK": ("TopK", [X, C([2])], 13, {"axis": 1, "largest": 0}, 2),
    "ArgMax-last": ("ArgMax", [np.round(X)], 13, {"axis": 2, "select_last_index": 1}, 1),
    "ArgMin-no-keepdims": ("ArgMin", [X], 13, {"axis": 1, "keepdims": 0}, 1),
    "CumSum-exclusive-reverse": ("CumSum", [X, C(1)], 14, {"exclusive": 1, "reverse": 1}, 1),
    "Einsum": ("Einsum", [X, R.standard_normal((4, 5)).astype(np.float32)], 13, {"equation": "bij,jk->bik"}, 1),
    "Gemm-transA-alpha-beta": ("Gemm", [X[0].T.copy(), R.standard_normal((4, 2)).astype(np.float32),
                                        C([1.0, 2.0], np.float32)], 13,
                               {"transA": 1, "alpha": 0.5, "beta": 2.0}, 1),
    "MatMul-batched": ("MatMul", [X, R.standard_normal((4, 2)).astype(np.float32)], 13, {}, 1),
    "Div-int": ("Div", [np.array([7, -7, 5], np.int64), np.array([2, 2, -3], np.int64)], 13, {}, 1),
    "Mod-int": ("Mod", [np.array([7, -7, 5], np.int64), np.array([2, 2, -3], np.int64)], 13, {}, 1),
    "Mod-fmod": ("Mod", [X, C(0.7, np.float32)], 13, {"fmod": 1}, 1),
    "Pow-int-exponent": ("Pow", [X, C(3)], 15, {}, 1),
    "Mean-variadic": ("Mean", [X, X[0], C(np.ones(4), np.float32)], 13, {}, 1),
    "Max-variadic": ("Max", [X, X[0] * 2], 13, {}, 1),
    "DepthToSpace-DCR": ("DepthToSpace", [R.standard_normal((1, 8, 2, 3)).astype(np.float32)], 13,
                         {"blocksize": 2}, 1),
    "DepthToSpace-CRD": ("DepthToSpace", [R.standard_normal((1, 8, 2, 3)).astype(np.float32)], 13,
                         {"blocksize": 2, "mode": "CRD"}, 1),
    "SpaceToDepth": ("SpaceToDepth", [IMG[:, :, :6]], 13, {"blocksize": 2}, 1),
    "Trilu-lower": ("Trilu", [X, C(1)], 14, {"upper": 0}, 1),
    "OneHot": ("OneHot", [C([[1, -1], [0, 2]]), C(3), C([0.0, 5.0], np.float32)], 11, {"axis": 1}, 1),
    "NonZero": ("NonZero", [X > 0.5], 13, {}, 1),
    "IsInf-positive": ("IsInf", [np.array([1.0, np.inf, -np.inf], np.float32)], 10, {"detect_negative": 0}, 1),
    "PRelu-broadcast": ("PRelu", [X, C(R.standard_normal(4), np.float32)], 16, {}, 1),
    "Selu": ("Selu", [X], 6, {"alpha": 2.0, "gamma": 3.0}, 1),
    "Celu": ("Celu", [X], 12, {"alpha": 0.5}, 1),
    "HardSigmoid": ("HardSigmoid", [X], 6, {"alpha": 0.3}, 1),
    "HardSwish": ("HardSwish", [X * 4], 14, {}, 1),
    "ThresholdedRelu": ("ThresholdedRelu", [X], 10, {"alpha": 0.2}, 1),
    "Shrink": ("Shrink", [X], 9, {"lambd": 0.3, "bias": 0.1}, 1),
    "Gelu-tanh": ("Gelu", [X], 20, {"approximate": "tanh"}, 1),
    "Mish": ("Mish", [X], 18, {}, 1),
    "Erf": ("Erf", [X], 13, {}, 1),
    "Round": ("Round", [np.array([0.5, 1.5, -2.5, 2.4], np.float32)], 11, {}, 1),
    "Dropout-inference-mask": ("Dropout", [X], 13, {}, 2),
}


@pytest.mark.parametrize("name", list(CASES))
def test_op_matches_onnxruntime(name):
    op, args, opset, attrs, n_out = CASES[name]
    model, feeds = single(op, args, opset, n_out, **attrs)
    expected = run_ort(model, feeds)
    got = run_ember(model, feeds)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape, (g.dtype, e.dtype, g.shape, e.shape)
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


SIMPLE_UNARY = ["Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Sign", "Sin", "Cos", "Tan",
                "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Sigmoid", "Softplus",
                "Softsign", "Elu", "LeakyRelu", "IsNaN", "Identity", "Not", "BitwiseNot", "Size",
                "GlobalLpPool", "MeanVarianceNormalization"]


def _unary_input(op: str) -> np.ndarray:
    if op in ("Sqrt", "Reciprocal", "Log"):
        return np.abs(X) + 0.1
    if op in ("Asin", "Acos", "Atanh"):
        return np.tanh(X) * 0.9
    if op == "Acosh":
        return np.abs(X) + 1.1
    if op == "Not":
        return X > 0
    if op == "BitwiseNot":
        return np.round(X * 10).astype(np.int32)
    return IMG if op in ("GlobalLpPool", "MeanVarianceNormalization") else X


@pytest.mark.parametrize("op", SIMPLE_UNARY)
def test_unary_op_matches_onnxruntime(op):
    model, feeds = single(op, [_unary_input(op)], 18)
    np.testing.assert_allclose(run_ember(model, feeds)[0], run_ort(model, feeds)[0], rtol=1e-5, atol=1e-6)


BINARY = ["Sub", "Mul", "Min", "Sum", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or",
          "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "CastLike"]


@pytest.mark.parametrize("op", BINARY)
def test_binary_op_broadcasts_as_onnxruntime(op):
    a, b = X, X[0, :, :1] * 0 + np.round(X[0, :, :1])
    if op in ("And", "Or", "Xor"):
        a, b = a > 0, b > 0
    elif op.startswith("Bitwise"):
        a, b = np.round(a * 10).astype(np.int64), np.round(b * 10).astype(np.int64)
    elif op == "CastLike":
        b = np.array([1], np.int64)
    model, feeds = single(op, [a, b], 18)
    np.testing.assert_array_equal(run_ember(model, feeds)[0], run_ort(model, feeds)[0])


MORE_REDUCTIONS = ["ReduceMin", "ReduceL1", "ReduceSumSquare", "ReduceLogSum"]


@pytest.mark.parametrize("op", MORE_REDUCTIONS)
def test_more_reductions_match_onnxruntime(op):
    model, feeds = single(op, [np.abs(X) + 0.1], 13, axes=[1, 2])
    np.testing.assert_allclose(run_ember(model, feeds)[0], run_ort(model, feeds)[0], rtol=1e-5, atol=1e-6)


def test_every_op_in_the_table_has_a_test_here():
    model_ops = {"Gemm", "Relu", "MatMul", "Add", "Conv", "Tanh", "MaxPool", "BatchNormalization", "Reshape",
                 "Constant"}  # the models above; Constant nodes are in the conformance suite
    tested = {c[0] for c in CASES.values()} | set(SIMPLE_UNARY) | set(BINARY) | set(MORE_REDUCTIONS) | model_ops
    assert sorted(set(ember.onnx.supported_ops()) - tested) == []
