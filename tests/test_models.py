"""ember.models: shapes, gradients, parameter counts and state-dict layouts of the model zoo.

Reference parameter counts are torchvision's / Hugging Face's published numbers (torchvision is not
installed here, so they are written down). Big models are only built, never run, and with the weight
initialisers stubbed out so that building them allocates nothing.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember import models

from helpers import assert_close, np_of, torch


@pytest.fixture
def no_init(monkeypatch):
    """Make every ``ember.nn.init`` initialiser a no-op, so huge models build without drawing numbers."""
    for name, fn in list(vars(nn.init).items()):
        if name.endswith("_") and not name.startswith("_") and callable(fn):
            monkeypatch.setattr(nn.init, name, lambda t, *args, **kwargs: t)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _shapes(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check_trains(model: nn.Module, *inputs) -> ember.Tensor:
    """Forward, backward of the sum; every parameter gets a finite gradient."""
    out = model(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    out.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert np.isfinite(p.grad.numpy()).all(), name
    return out


def _tokens(shape, high, seed=0):
    return ember.tensor(np.random.default_rng(seed).integers(0, high, size=shape), dtype=ember.int64)


# -- reference parameter counts ------------------------------------------------------------------------
@pytest.mark.parametrize("factory, expected", [
    (models.resnet18, 11_689_512), (models.resnet34, 21_797_672), (models.resnet50, 25_557_032),
    (models.vgg11, 132_863_336), (models.vgg11_bn, 132_868_840), (models.vgg16, 138_357_544),
    (models.vgg16_bn, 138_365_992), (models.mobilenet_v2, 3_504_872),
])
def test_parameter_counts_match_torchvision(no_init, factory, expected):
    assert _count(factory()) == expected


def test_parameter_counts_of_lenet_gpt2_and_bert(no_init):
    assert _count(models.lenet5()) == 61_706
    assert _count(models.gpt()) == 124_439_808  # GPT-2 small, lm_head tied to wte
    assert _count(models.bert()) == 109_482_240  # bert-base-uncased BertModel
    minilm = models.bert(hidden_size=384, num_hidden_layers=6, intermediate_size=1536)
    assert _count(minilm) == 22_713_216  # sentence-transformers/all-MiniLM-L6-v2


# -- ResNet --------------------------------------------------------------------------------------------
def test_resnet18_state_dict_layout_matches_torchvision(no_init):
    shapes = _shapes(models.resnet18())
    assert len(shapes) == 122
    assert list(shapes)[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                                "bn1.num_batches_tracked"]
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer1.0.conv1.weight"] == (64, 64, 3, 3)
    assert shapes["layer1.1.bn2.running_var"] == (64,)
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert shapes["layer2.0.downsample.1.bias"] == (128,)
    assert shapes["layer4.1.conv2.weight"] == (512, 512, 3, 3)
    assert shapes["fc.weight"] == (1000, 512) and list(shapes)[-1] == "fc.bias"
    assert "layer1.0.downsample.0.weight" not in shapes


def test_resnet50_state_dict_layout_matches_torchvision(no_init):
    shapes = _shapes(models.resnet50())
    assert len(shapes) == 320
    assert shapes["layer1.0.conv1.weight"] == (64, 64, 1, 1)
    assert shapes["layer1.0.conv3.weight"] == (256, 64, 1, 1)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert shapes["layer2.0.conv2.weight"] == (128, 128, 3, 3)
    assert shapes["layer3.5.bn3.weight"] == (1024,)
    assert shapes["fc.weight"] == (1000, 2048)


def test_resnet_stems():
    imagenet = models.resnet18(num_classes=3, width=4)
    cifar = models.resnet18(num_classes=3, width=4, cifar_stem=True)
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)
    assert list(cifar.state_dict()) == list(imagenet.state_dict())
    x = ember.randn(2, 3, 32, 32)
    stem = imagenet.maxpool(imagenet.relu(imagenet.bn1(imagenet.conv1(x))))
    assert tuple(stem.shape) == (2, 4, 8, 8)
    assert tuple(cifar.layer1(cifar.maxpool(cifar.relu(cifar.bn1(cifar.conv1(x))))).shape) == (2, 4, 32, 32)


@pytest.mark.parametrize("factory", [models.resnet18, models.resnet50])
def test_resnet_small_width_trains(factory):
    model = factory(num_classes=5, cifar_stem=True, width=4)
    out = _check_trains(model, ember.randn(2, 3, 16, 16))
    assert tuple(out.shape) == (2, 5)
    model.eval()
    assert tuple(model(ember.randn(1, 3, 16, 16)).shape) == (1, 5)


def test_resnet_zero_init_residual_starts_blocks_as_identity():
    model = models.resnet18(width=4, zero_init_residual=True)
    assert float(model.layer1[0].bn2.weight.abs().sum()) == 0.0
    model = models.resnet50(width=4, zero_init_residual=True)
    assert float(model.layer3[2].bn3.weight.abs().sum()) == 0.0
    assert float(model.layer3[2].bn2.weight.sum()) == model.layer3[2].bn2.num_features


# -- VGG -----------------------------------------------------------------------------------------------
def test_vgg_state_dict_layouts_match_torchvision(no_init):
    shapes = _shapes(models.vgg16())
    assert len(shapes) == 32
    assert shapes["features.0.weight"] == (64, 3, 3, 3)
    assert shapes["features.2.weight"] == (64, 64, 3, 3)
    assert shapes["features.28.weight"] == (512, 512, 3, 3)
    assert shapes["classifier.0.weight"] == (4096, 25088)
    assert shapes["classifier.3.weight"] == (4096, 4096)
    assert shapes["classifier.6.weight"] == (1000, 4096)
    bn = _shapes(models.vgg11_bn())
    assert bn["features.1.running_var"] == (64,)
    assert bn["features.4.weight"] == (128, 64, 3, 3)
    assert bn["features.26.weight"] == (512,) and "features.25.weight" in bn


@pytest.mark.parametrize("batch_norm", [False, True])
def test_small_vgg_trains(batch_norm):
    features = models.make_vgg_features([4, "M", 8, "M"], batch_norm=batch_norm)
    model = models.VGG(features, num_classes=3, hidden=8, pool_size=2, trunk_channels=8)
    out = _check_trains(model, ember.randn(2, 3, 8, 8))
    assert tuple(out.shape) == (2, 3)


# -- MobileNetV2 ---------------------------------------------------------------------------------------
def test_mobilenet_v2_state_dict_layout_matches_torchvision(no_init):
    model = models.mobilenet_v2()
    assert [b.use_res_connect for b in model.features[1:18]].count(True) == 10
    shapes = _shapes(model)
    assert len(shapes) == 314
    assert shapes["features.0.0.weight"] == (32, 3, 3, 3)
    assert shapes["features.0.1.num_batches_tracked"] == ()
    assert shapes["features.1.conv.0.0.weight"] == (32, 1, 3, 3)
    assert shapes["features.1.conv.1.weight"] == (16, 32, 1, 1)
    assert shapes["features.1.conv.2.running_mean"] == (16,)
    assert shapes["features.2.conv.0.0.weight"] == (96, 16, 1, 1)
    assert shapes["features.2.conv.1.0.weight"] == (96, 1, 3, 3)
    assert shapes["features.2.conv.2.weight"] == (24, 96, 1, 1)
    assert shapes["features.2.conv.3.weight"] == (24,)
    assert shapes["features.17.conv.2.weight"] == (320, 960, 1, 1)
    assert shapes["features.18.0.weight"] == (1280, 320, 1, 1)
    assert shapes["classifier.1.weight"] == (1000, 1280)


def test_mobilenet_v2_width_mult_and_residuals():
    model = models.mobilenet_v2(num_classes=6, width_mult=0.25)
    assert model.features[0][0].out_channels == 8 and model.last_channel == 1280
    # at this width the first block keeps 8 channels, so it is residual too (10 at full width)
    assert [b.use_res_connect for b in model.features[1:18]].count(True) == 11
    out = _check_trains(model, ember.randn(2, 3, 32, 32))
    assert tuple(out.shape) == (2, 6)
    assert models.make_divisible(1280 * 1.4) == 1792 and models.make_divisible(32 * 0.35) == 16


# -- LeNet-5 and MLP -----------------------------------------------------------------------------------
def test_lenet5_on_32_and_on_padded_28_inputs():
    classic = models.lenet5()
    assert tuple(_check_trains(classic, ember.randn(2, 1, 32, 32)).shape) == (2, 10)
    mnist = models.lenet5(num_classes=7, padding=2, activation="relu", pool="max")
    assert tuple(_check_trains(mnist, ember.randn(2, 1, 28, 28)).shape) == (2, 7)
    assert _shapes(classic)["features.0.weight"] == (6, 1, 5, 5)
    assert _shapes(classic)["features.3.weight"] == (16, 6, 5, 5)
    assert _shapes(classic)["classifier.0.weight"] == (120, 400)
    assert _shapes(classic)["classifier.4.weight"] == (10, 84)


def test_mlp_layout_activation_and_dropout():
    model = models.mlp([4, 8, 6, 2], activation="gelu", dropout=0.5)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "GELU", "Dropout", "Linear", "GELU", "Dropout", "Linear"]
    assert list(model.state_dict())[:2] == ["0.weight", "0.bias"]
    assert tuple(_check_trains(model, ember.randn(3, 4)).shape) == (3, 2)
    assert [type(m).__name__ for m in models.mlp([2, 3], activation=nn.Tanh)] == ["Linear"]
    assert type(models.mlp([2, 3, 1], activation=nn.Tanh)[1]) is nn.Tanh


def test_mlp_rejects_bad_sizes_and_activations():
    with pytest.raises(ember.errors.EmberError, match="MLP.*sizes"):
        models.mlp([4])
    with pytest.raises(ember.errors.EmberError, match="unknown activation 'swishy'"):
        models.mlp([4, 4, 2], activation="swishy")


# -- LSTM language model -------------------------------------------------------------------------------
def test_lstm_lm_shapes_state_and_gradients():
    lm = models.lstm_lm(vocab_size=13, embed_dim=6, hidden_size=5, num_layers=2, dropout=0.1)
    tokens = _tokens((4, 3), 13)
    logits = _check_trains(lm, tokens)
    assert tuple(logits.shape) == (4, 3, 13)
    _, (h, c) = lm(tokens, lm.init_hidden(3))
    assert tuple(h.shape) == tuple(c.shape) == (2, 3, 5)
    assert list(lm.state_dict())[:2] == ["encoder.weight", "rnn.weight_ih_l0"]
    assert list(lm.state_dict())[-2:] == ["decoder.weight", "decoder.bias"]


def test_lstm_lm_tied_weights_share_one_matrix():
    lm = models.lstm_lm(vocab_size=11, embed_dim=4, hidden_size=4, num_layers=1, tie_weights=True,
                        batch_first=True)
    assert lm.decoder.weight is lm.encoder.weight
    assert _count(lm) == _count(models.lstm_lm(11, 4, 4, num_layers=1)) - 11 * 4
    assert "decoder.weight" in lm.state_dict()
    logits = _check_trains(lm, _tokens((2, 5), 11))
    assert tuple(logits.shape) == (2, 5, 11)
    with pytest.raises(ember.errors.EmberError, match="hidden_size == embed_dim"):
        models.lstm_lm(11, 4, 5, tie_weights=True)


# -- GPT -----------------------------------------------------------------------------------------------
TINY_GPT = dict(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=8)


def test_gpt_state_dict_names_follow_gpt2(no_init):
    model = models.gpt(**TINY_GPT)
    shapes = _shapes(model)
    assert list(shapes)[:4] == ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                                "transformer.h.0.ln_1.bias"]
    assert shapes["transformer.h.1.attn.c_attn.weight"] == (24, 8)
    assert shapes["transformer.h.1.attn.c_proj.bias"] == (8,)
    assert shapes["transformer.h.0.mlp.c_fc.weight"] == (32, 8)
    assert shapes["transformer.h.0.mlp.c_proj.weight"] == (8, 32)
    assert shapes["transformer.ln_f.weight"] == (8,)
    assert list(shapes)[-1] == "lm_head.weight" and shapes["lm_head.weight"] == (17, 8)
    assert model.lm_head.weight is model.transformer.wte.weight
    no_bias = models.gpt(**TINY_GPT, bias=False, tie_weights=False)
    assert not any(k.endswith("bias") for k in no_bias.state_dict())
    assert no_bias.lm_head.weight is not no_bias.transformer.wte.weight


def test_gpt_forward_backward_and_initialisation():
    ember.manual_seed(0)
    model = models.gpt(**TINY_GPT, dropout=0.1)
    logits = _check_trains(model, _tokens((2, 6), 17))
    assert tuple(logits.shape) == (2, 6, 17)
    std = float(model.transformer.h[0].attn.c_proj.weight.std())
    assert abs(std - 0.02 / math.sqrt(4)) < 0.006
    assert float(model.transformer.h[0].attn.c_attn.bias.abs().sum()) == 0.0


def test_gpt_causal_mask_output_at_t_ignores_later_tokens():
    model = models.gpt(**TINY_GPT).eval()
    a = _tokens((2, 8), 17, seed=1)
    b = a.numpy().copy()
    b[:, 5:] = (b[:, 5:] + 3) % 17
    out_a, out_b = np_of(model(a)), np_of(model(ember.tensor(b)))
    np.testing.assert_allclose(out_a[:, :5], out_b[:, :5], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out_a[:, 5:], out_b[:, 5:])


def test_gpt_rejects_sequences_longer_than_the_block():
    model = models.gpt(**TINY_GPT)
    with pytest.raises(ember.errors.ShapeError, match="block_size is 8"):
        model(_tokens((1, 9), 17))


def test_gpt_generate_is_deterministic_under_a_seed():
    model = models.gpt(**TINY_GPT).eval()
    context = _tokens((2, 3), 17)
    ember.manual_seed(123)
    first = model.generate(context, 10, temperature=0.9, top_k=5)
    ember.manual_seed(123)
    second = model.generate(context, 10, temperature=0.9, top_k=5)
    assert tuple(first.shape) == (2, 13) and first.dtype == ember.int64
    assert first.tolist() == second.tolist()
    assert first[:, :3].tolist() == context.tolist()
    gen = ember.Generator().manual_seed(7)
    third = model.generate(context, 10, generator=gen)
    assert third.tolist() == model.generate(context, 10, generator=ember.Generator().manual_seed(7)).tolist()


def test_gpt_generate_top_k_one_is_greedy():
    model = models.gpt(**TINY_GPT).eval()
    context = _tokens((2, 2), 17)
    greedy = model.generate(context, 9, temperature=0)  # runs past block_size: the context is cropped
    assert tuple(greedy.shape) == (2, 11)
    assert model.generate(context, 9, top_k=1).tolist() == greedy.tolist()
    step = model(greedy[:, :5])[:, -1].argmax(-1)
    assert step.tolist() == greedy[:, 5].tolist()


class _TorchGPT(torch.nn.Module if torch else object):
    """A minimal PyTorch GPT with the same parameter names (reference for the forward and gradients)."""

    def __init__(self, cfg):
        super().__init__()
        tnn = torch.nn
        e = cfg["n_embd"]
        blocks = []
        for _ in range(cfg["n_layer"]):
            attn = tnn.ModuleDict(dict(c_attn=tnn.Linear(e, 3 * e), c_proj=tnn.Linear(e, e)))
            mlp = tnn.ModuleDict(dict(c_fc=tnn.Linear(e, 4 * e), c_proj=tnn.Linear(4 * e, e)))
            blocks.append(tnn.ModuleDict(dict(ln_1=tnn.LayerNorm(e), attn=attn, ln_2=tnn.LayerNorm(e), mlp=mlp)))
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(cfg["vocab_size"], e), wpe=tnn.Embedding(cfg["block_size"], e),
            h=tnn.ModuleList(blocks), ln_f=tnn.LayerNorm(e)))
        self.lm_head = tnn.Linear(e, cfg["vocab_size"], bias=False)
        self.n_head = cfg["n_head"]

    def _attn(self, attn, x):
        n, t, c = x.shape
        q, k, v = attn["c_attn"](x).split(c, dim=2)
        q, k, v = (z.view(n, t, self.n_head, -1).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, c)
        return attn["c_proj"](y)

    def forward(self, idx):
        x = self.transformer["wte"](idx) + self.transformer["wpe"](torch.arange(idx.shape[1]))
        for b in self.transformer["h"]:
            x = x + self._attn(b["attn"], b["ln_1"](x))
            x = x + b["mlp"]["c_proj"](torch.nn.functional.gelu(b["mlp"]["c_fc"](b["ln_2"](x))))
        return self.lm_head(self.transformer["ln_f"](x))


def _to_torch(model: nn.Module, ref):
    ref.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in model.state_dict().items()},
                        strict=False)
    return ref.double()


def _compare_grads(model: nn.Module, ref, rtol=1e-9):
    ref_params = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        assert_close(p.grad, ref_params[name].grad.numpy(), rtol=rtol, atol=1e-11, msg=name)


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_gpt_matches_a_pytorch_reference_in_float64():
    model = models.gpt(**TINY_GPT, tie_weights=False).double().eval()
    ref = _to_torch(model, _TorchGPT(TINY_GPT))
    tokens = np.random.default_rng(3).integers(0, 17, size=(2, 7))
    cot = np.random.default_rng(4).standard_normal((2, 7, 17))
    out = model(ember.tensor(tokens))
    expected = ref(torch.from_numpy(tokens))
    assert_close(out, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    (out * ember.tensor(cot)).sum().backward()
    (expected * torch.from_numpy(cot)).sum().backward()
    _compare_grads(model, ref)


# -- BERT ----------------------------------------------------------------------------------------------
TINY_BERT = dict(vocab_size=23, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
                 max_position_embeddings=10, type_vocab_size=2)


def test_bert_state_dict_names_follow_hugging_face(no_init):
    shapes = _shapes(models.bert(**TINY_BERT))
    expected = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
                "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.query.bias",
                "encoder.layer.0.attention.self.key.weight", "encoder.layer.0.attention.self.key.bias",
                "encoder.layer.0.attention.self.value.weight", "encoder.layer.0.attention.self.value.bias",
                "encoder.layer.0.attention.output.dense.weight", "encoder.layer.0.attention.output.dense.bias",
                "encoder.layer.0.attention.output.LayerNorm.weight",
                "encoder.layer.0.attention.output.LayerNorm.bias",
                "encoder.layer.0.intermediate.dense.weight", "encoder.layer.0.intermediate.dense.bias",
                "encoder.layer.0.output.dense.weight", "encoder.layer.0.output.dense.bias",
                "encoder.layer.0.output.LayerNorm.weight", "encoder.layer.0.output.LayerNorm.bias"]
    assert list(shapes)[:len(expected)] == expected
    assert list(shapes)[-2:] == ["pooler.dense.weight", "pooler.dense.bias"]
    assert len(shapes) == 5 + 2 * 16 + 2  # position_ids is not persistent
    assert shapes["encoder.layer.1.intermediate.dense.weight"] == (12, 8)
    assert shapes["embeddings.token_type_embeddings.weight"] == (2, 8)
    no_pool = models.bert(**TINY_BERT, add_pooling_layer=False)
    assert not any(k.startswith("pooler") for k in no_pool.state_dict())


def test_bert_forward_backward_and_padding_row():
    model = models.bert(**TINY_BERT)
    assert float(model.embeddings.word_embeddings.weight[0].abs().sum()) == 0.0
    assert isinstance(model.encoder.layer[0].intermediate.intermediate_act_fn, nn.GELU)
    assert model.encoder.layer[0].intermediate.intermediate_act_fn.approximate == "none"
    out = model(_tokens((2, 6), 23), attention_mask=ember.ones(2, 6, dtype=ember.int64),
                token_type_ids=_tokens((2, 6), 2))
    assert tuple(out.last_hidden_state.shape) == (2, 6, 8) and tuple(out.pooler_output.shape) == (2, 8)
    (out.last_hidden_state.sum() + out.pooler_output.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_bert_attention_mask_masks_padding():
    model = models.bert(**TINY_BERT).eval()
    tokens = _tokens((2, 7), 23, seed=5).numpy()
    mask = np.ones((2, 7), dtype=np.int64)
    mask[0, 4:] = 0
    mask[1, 6:] = 0
    other = tokens.copy()
    other[0, 4:] = (other[0, 4:] + 5) % 23  # change only padded positions
    other[1, 6] = (other[1, 6] + 1) % 23
    a = model(ember.tensor(tokens), attention_mask=ember.tensor(mask))
    b = model(ember.tensor(other), attention_mask=ember.tensor(mask))
    assert_close(b.last_hidden_state[0, :4], np_of(a.last_hidden_state[0, :4]), rtol=1e-5, atol=1e-6)
    assert_close(b.last_hidden_state[1, :6], np_of(a.last_hidden_state[1, :6]), rtol=1e-5, atol=1e-6)
    assert_close(b.pooler_output, np_of(a.pooler_output), rtol=1e-5, atol=1e-6)
    unmasked = model(ember.tensor(other))
    assert not np.allclose(np_of(unmasked.last_hidden_state[0, :4]), np_of(a.last_hidden_state[0, :4]))


def test_bert_bad_inputs():
    model = models.bert(**TINY_BERT)
    with pytest.raises(ember.errors.ShapeError, match="attention_mask of shape \\(2, 3\\)"):
        model(_tokens((2, 4), 23), attention_mask=ember.ones(2, 3))
    with pytest.raises(ember.errors.ShapeError, match="exceeds max_position_embeddings 10"):
        model(_tokens((1, 11), 23))


class _TorchBert(torch.nn.Module if torch else object):
    """A minimal PyTorch BERT encoder with Hugging Face's names (reference for the forward and gradients)."""

    def __init__(self, cfg):
        super().__init__()
        tnn, h, inter = torch.nn, cfg["hidden_size"], cfg["intermediate_size"]

        def dense_norm(n_in):
            return tnn.ModuleDict(dict(dense=tnn.Linear(n_in, h), LayerNorm=tnn.LayerNorm(h, eps=1e-12)))

        layers = [tnn.ModuleDict(dict(
            attention=tnn.ModuleDict(dict(self=tnn.ModuleDict(dict(query=tnn.Linear(h, h), key=tnn.Linear(h, h),
                                                                    value=tnn.Linear(h, h))),
                                          output=dense_norm(h))),
            intermediate=tnn.ModuleDict(dict(dense=tnn.Linear(h, inter))), output=dense_norm(inter)))
            for _ in range(cfg["num_hidden_layers"])]
        self.embeddings = tnn.ModuleDict(dict(
            word_embeddings=tnn.Embedding(cfg["vocab_size"], h),
            position_embeddings=tnn.Embedding(cfg["max_position_embeddings"], h),
            token_type_embeddings=tnn.Embedding(cfg["type_vocab_size"], h), LayerNorm=tnn.LayerNorm(h, eps=1e-12)))
        self.encoder = tnn.ModuleDict(dict(layer=tnn.ModuleList(layers)))
        self.pooler = tnn.ModuleDict(dict(dense=tnn.Linear(h, h)))
        self.heads = cfg["num_attention_heads"]

    def _self_attention(self, att, x, additive):
        n, length, h = x.shape

        def split(z):
            return z.view(n, length, self.heads, -1).transpose(1, 2)

        q, k, v = split(att["query"](x)), split(att["key"](x)), split(att["value"](x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + additive
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, h)

    def forward(self, ids, mask, types):
        e = self.embeddings
        x = e["word_embeddings"](ids) + e["token_type_embeddings"](types)
        x = e["LayerNorm"](x + e["position_embeddings"](torch.arange(ids.shape[1])))
        additive = (1.0 - mask[:, None, None, :].double()) * torch.finfo(torch.float64).min
        for layer in self.encoder["layer"]:
            att = layer["attention"]
            out = att["output"]
            x = out["LayerNorm"](out["dense"](self._self_attention(att["self"], x, additive)) + x)
            y = torch.nn.functional.gelu(layer["intermediate"]["dense"](x))
            x = layer["output"]["LayerNorm"](layer["output"]["dense"](y) + x)
        return x, torch.tanh(self.pooler["dense"](x[:, 0]))


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_bert_matches_a_pytorch_reference_in_float64():
    model = models.bert(**TINY_BERT).double().eval()
    ref = _to_torch(model, _TorchBert(TINY_BERT))
    rng = np.random.default_rng(6)
    ids, types = rng.integers(0, 23, size=(2, 6)), rng.integers(0, 2, size=(2, 6))
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    cot = rng.standard_normal((2, 6, 8))
    out = model(ember.tensor(ids), attention_mask=ember.tensor(mask), token_type_ids=ember.tensor(types))
    hidden, pooled = ref(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types))
    assert_close(out.last_hidden_state, hidden.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert_close(out.pooler_output, pooled.detach().numpy(), rtol=1e-10, atol=1e-12)
    ((out.last_hidden_state * ember.tensor(cot)).sum() + out.pooler_output.sum()).backward()
    ((hidden * torch.from_numpy(cot)).sum() + pooled.sum()).backward()
    _compare_grads(model, ref)


# -- configs and models together -----------------------------------------------------------------------
def test_models_rebuilt_from_a_registered_factory_give_the_same_outputs():
    nn.register_layer("test_resnet18", models.resnet18)
    cfg = {"type": "test_resnet18", "num_classes": 3, "cifar_stem": True, "width": 4}
    model = nn.from_config(cfg).double().eval()
    rebuilt = nn.from_config(nn.to_config(model)).double().eval()
    rebuilt.load_state_dict(model.state_dict())
    x = ember.randn(1, 3, 8, 8, dtype=ember.float64)
    assert_close(rebuilt(x), np_of(model(x)), rtol=1e-12, atol=1e-12)


def test_bert_factory_also_names_its_module_classes():
    import ember.models

    assert ember.models.bert.SentenceEncoder.__name__ == "SentenceEncoder"
    assert ember.models.bert.BertConfig().hidden_size > 0
