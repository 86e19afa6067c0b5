"""ONNX export: every zoo model exports, passes the checker and runs in onnxruntime with Ember's outputs;
dynamic axes; clear errors; export → import round trips and the imported model trains."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import models
from ember._core import pytree
from ember.models.bert import BertConfig
from ember.onnx.export import UnsupportedPrimitiveError, export

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _run(proto, feeds: dict) -> list:
    sess = ort.InferenceSession(proto.SerializeToString())
    return sess.run(None, {k: np.asarray(v.numpy()) for k, v in feeds.items()})


def _bert():
    return models.bert(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=16))


ZOO = [
    ("mlp", lambda: models.mlp([8, 16, 4]), lambda: (ember.randn(2, 8),)),
    ("lenet5", models.lenet5, lambda: (ember.randn(2, 1, 32, 32),)),
    ("resnet18", lambda: models.resnet18(num_classes=10, cifar_stem=True), lambda: (ember.randn(1, 3, 16, 16),)),
    ("resnet50", lambda: models.resnet50(num_classes=10), lambda: (ember.randn(1, 3, 32, 32),)),
    ("vgg11", lambda: models.vgg11(num_classes=10, hidden=16), lambda: (ember.randn(1, 3, 32, 32),)),
    ("mobilenet_v2", lambda: models.mobilenet_v2(num_classes=10, width_mult=0.25),
     lambda: (ember.randn(1, 3, 32, 32),)),
    ("lstm_lm", lambda: models.lstm_lm(vocab_size=20, embed_dim=8, hidden_size=8),
     lambda: (ember.randint(0, 20, (5, 2)),)),
    ("gpt", lambda: models.gpt(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=16),
     lambda: (ember.randint(0, 32, (2, 8)),)),
    ("bert", _bert, lambda: (ember.randint(0, 30, (2, 6)), ember.ones(2, 6, dtype=ember.int64))),
]


@pytest.mark.parametrize("name,build,inputs", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_models_export_and_match_onnxruntime(name, build, inputs):
    ember.manual_seed(0)
    model = build().eval()
    args = inputs()
    proto = export(model, args)  # runs onnx.checker with full_check
    want, _ = pytree.flatten(model(*args))
    got = _run(proto, {f"input_{i}": a for i, a in enumerate(args)})
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = w.detach().numpy()
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(w).max())))


def test_parameters_become_named_initializers():
    model = models.mlp([4, 3, 2]).eval()
    proto = export(model, (ember.randn(1, 4),))
    names = {i.name for i in proto.graph.initializer}
    assert set(dict(model.named_parameters())) <= names


def test_dynamic_axes_accept_other_batch_and_sequence_sizes():
    ember.manual_seed(0)
    bert = _bert().eval()
    args = (ember.randint(0, 30, (2, 6)), ember.ones(2, 6, dtype=ember.int64))
    axes = {"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}}
    proto = export(bert, args, input_names=["ids", "mask"], output_names=["hidden", "pooled"], dynamic_axes=axes)
    assert [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim] == ["batch", "seq"]
    assert [d.dim_param for d in proto.graph.output[0].type.tensor_type.shape.dim][:2] == ["batch", "seq"]
    for shape in [(3, 5), (1, 9)]:
        ids, mask = ember.randint(0, 30, shape), ember.ones(*shape, dtype=ember.int64)
        got = _run(proto, {"ids": ids, "mask": mask})[0]
        np.testing.assert_allclose(got, bert(ids, mask)[0].detach().numpy(), rtol=1e-5, atol=1e-5)


def test_dynamic_sequence_length_for_gpt():
    ember.manual_seed(0)
    gpt = models.gpt(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=16).eval()
    proto = export(gpt, (ember.randint(0, 32, (2, 8)),), input_names=["idx"],
                   dynamic_axes={"idx": {0: "batch", 1: "seq"}})
    x = ember.randint(0, 32, (3, 5))
    np.testing.assert_allclose(_run(proto, {"idx": x})[0], gpt(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_a_primitive_without_lowering_is_named():
    with pytest.raises(UnsupportedPrimitiveError, match="cumprod"):
        export(lambda x: x.cumprod(0), (ember.randn(3),))


def test_opsets_before_17_are_refused():
    with pytest.raises(ember.onnx.OnnxError, match="17 or newer"):
        export(lambda x: x * 2, (ember.randn(3),), opset_version=13)


def test_export_writes_a_file_that_ember_imports_and_fine_tunes(tmp_path):
    ember.manual_seed(0)
    model = models.mlp([4, 16, 1]).eval()
    path = tmp_path / "mlp.onnx"
    export(model, (ember.randn(8, 4),), str(path), input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    imported = ember.onnx.load(str(path))
    x = ember.randn(32, 4)
    np.testing.assert_allclose(imported(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-6, atol=1e-6)
    y = (x.sum(1, keepdim=True) * 0.5).detach()
    opt = ember.optim.SGD(imported.parameters(), lr=0.05)
    losses = []
    for _ in range(10):
        loss = ember.nn.functional.mse_loss(imported(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_size_dependent_literals_follow_dynamic_axes():
    # the mean's 1/N follows the batch size: it is computed from the input's shape at run time
    proto = export(lambda x: x.mean(0), (ember.randn(4, 3),), input_names=["x"], dynamic_axes={"x": {0: "b"}})
    for b in (7, 2):
        x = ember.randn(b, 3)
        np.testing.assert_allclose(_run(proto, {"x": x})[0], x.mean(0).numpy(), rtol=1e-6)


def test_gather_and_cross_entropy_export_through_gathernd():
    import ember.nn.functional as F

    x, y = ember.randn(5, 4), ember.tensor([0, 3, 1, 2, 2])
    proto = export(lambda a, b: F.cross_entropy(a, b), (x, y))
    np.testing.assert_allclose(_run(proto, {"input_0": x, "input_1": y})[0], F.cross_entropy(x, y).numpy(),
                               rtol=1e-6)
