"""ember.nn.from_config / to_config: building layer stacks from plain data and writing them back."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import ember
import ember.nn as nn

from helpers import assert_close

CNN = {"type": "Sequential", "layers": [
    {"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "BatchNorm2d", "num_features": 4},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "Flatten"},
    {"type": "Linear", "in_features": 4 * 4 * 4, "out_features": 3},
]}

NAMED = {"type": "Sequential", "layers": {
    "embed": {"type": "Linear", "in_features": 5, "out_features": 6, "bias": False},
    "block": {"type": "Sequential", "layers": [
        {"type": "LayerNorm", "normalized_shape": 6},
        {"type": "GELU", "approximate": "tanh"},
        {"type": "Dropout", "p": 0.25}]},
    "head": {"type": "Linear", "in_features": 6, "out_features": 2},
}}


def _same_outputs(a: nn.Module, b: nn.Module, x: ember.Tensor) -> None:
    a.eval()
    b.eval()
    assert_close(b(x), a(x).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_from_config_builds_a_sequential_cnn_that_runs():
    model = nn.from_config(CNN)
    assert isinstance(model, nn.Sequential) and len(model) == 6
    assert isinstance(model[0], nn.Conv2d) and model[0].padding == (1, 1)
    assert tuple(model(ember.randn(2, 1, 8, 8)).shape) == (2, 3)


def test_named_children_and_nested_sequentials_keep_their_names():
    model = nn.from_config(NAMED)
    assert list(model.state_dict()) == ["embed.weight", "block.0.weight", "block.0.bias", "head.weight",
                                        "head.bias"]
    assert model.embed.bias is None and model.block[1].approximate == "tanh"
    assert tuple(model(ember.randn(3, 5)).shape) == (3, 2)


@pytest.mark.parametrize("cfg", [CNN, NAMED], ids=["list", "named"])
def test_to_config_of_from_config_is_the_config(cfg):
    original = copy.deepcopy(cfg)
    assert nn.to_config(nn.from_config(cfg)) == original
    assert cfg == original  # the input is not mutated


@pytest.mark.parametrize("cfg", [CNN, NAMED], ids=["list", "named"])
def test_rebuilt_model_with_loaded_state_gives_the_same_outputs(cfg):
    model = nn.from_config(cfg).double()
    x = ember.randn(2, 1, 8, 8, dtype=ember.float64) if cfg is CNN else ember.randn(2, 5, dtype=ember.float64)
    model.train()
    model(x)  # move the batch-norm running statistics away from their initial values
    rebuilt = nn.from_config(nn.to_config(model)).double()
    rebuilt.load_state_dict(model.state_dict())
    _same_outputs(model, rebuilt, x)


def test_to_config_introspects_layers_built_directly():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, bias=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(36, 5), nn.LSTM(5, 7, num_layers=2, batch_first=True), nn.GELU("tanh"),
                          nn.Dropout(0.1), nn.LayerNorm(7, eps=1e-6), nn.Embedding(10, 3, padding_idx=0))
    cfg = nn.to_config(model)
    assert cfg["layers"][0] == {"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": [3, 3],
                                "stride": [2, 2], "bias": False}
    assert cfg["layers"][1] == {"type": "ReLU"}
    assert cfg["layers"][3] == {"type": "Linear", "in_features": 36, "out_features": 5}
    assert cfg["layers"][4] == {"type": "LSTM", "input_size": 5, "hidden_size": 7, "num_layers": 2,
                                "batch_first": True}
    assert cfg["layers"][5] == {"type": "GELU", "approximate": "tanh"}
    assert cfg["layers"][6] == {"type": "Dropout", "p": 0.1}
    assert cfg["layers"][8] == {"type": "Embedding", "num_embeddings": 10, "embedding_dim": 3, "padding_idx": 0}
    json.dumps(cfg)  # plain JSON types only
    rebuilt = nn.from_config(cfg)
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_introspected_cnn_rebuilds_with_the_same_outputs():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(12, 4)).double()
    rebuilt = nn.from_config(nn.to_config(model)).double()
    rebuilt.load_state_dict(model.state_dict())
    _same_outputs(model, rebuilt, ember.randn(2, 2, 4, 4, dtype=ember.float64))


def test_json_and_yaml_files_round_trip(tmp_path):
    json_path = tmp_path / "net.json"
    json_path.write_text(json.dumps(CNN))
    assert nn.to_config(nn.from_config(json_path)) == CNN
    assert nn.to_config(nn.from_config(str(json_path))) == CNN
    pytest.importorskip("yaml")
    yaml_path = tmp_path / "net.yaml"
    nn.to_config(nn.from_config(NAMED), yaml_path)
    assert nn.to_config(nn.from_config(yaml_path)) == NAMED
    written = tmp_path / "out.yml"
    nn.to_config(nn.from_config(CNN), written)
    assert nn.to_config(nn.from_config(written)) == CNN


def test_json_string_is_accepted():
    model = nn.from_config(json.dumps({"type": "Linear", "in_features": 2, "out_features": 3}))
    assert isinstance(model, nn.Linear) and model.out_features == 3


def test_missing_pyyaml_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    path = tmp_path / "net.yml"
    path.write_text("type: ReLU\n")
    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.raises(nn.ConfigError, match="needs PyYAML"):
        nn.from_config(path)


def test_register_layer_makes_user_classes_buildable_and_writable():
    class Scale(nn.Module):
        def __init__(self, factor: float = 2.0, learn: bool = False):
            super().__init__()
            self.factor, self.learn = factor, learn

        def forward(self, x):
            return x * self.factor

    nn.register_layer("TestScale", Scale)
    cfg = {"type": "Sequential", "layers": [{"type": "TestScale", "factor": 3.0}, {"type": "ReLU"}]}
    model = nn.from_config(cfg)
    assert model(ember.tensor([1.0, -1.0])).tolist() == [3.0, 0.0]
    assert "TestScale" in nn.known_layers()
    assert nn.to_config(model) == cfg
    assert nn.to_config(nn.Sequential(Scale(5.0))) == {"type": "Sequential", "layers": [
        {"type": "TestScale", "factor": 5.0}]}


def test_registered_factory_functions_build_models():
    nn.register_layer("test_mlp", lambda sizes: ember.models.mlp(sizes))
    model = nn.from_config({"type": "test_mlp", "sizes": [3, 4, 2]})
    assert tuple(model(ember.ones(1, 3)).shape) == (1, 2)
    assert nn.to_config(model) == {"type": "test_mlp", "sizes": [3, 4, 2]}


def test_unknown_layer_type_lists_the_known_ones():
    with pytest.raises(nn.ConfigError) as err:
        nn.from_config({"type": "Sequential", "layers": [{"type": "ReLU"}, {"type": "Conv2D"}]})
    msg = str(err.value)
    assert "from_config" in msg and "layers[1]" in msg and "'Conv2D'" in msg
    assert "Conv2d" in msg and "Linear" in msg and "register_layer" in msg


def test_bad_argument_names_the_layer_index_and_the_argument():
    cfg = {"type": "Sequential", "layers": [{"type": "ReLU"}, {"type": "Flatten"},
                                            {"type": "Linear", "in_features": 3, "out_featurs": 2}]}
    with pytest.raises(nn.ConfigError) as err:
        nn.from_config(cfg)
    msg = str(err.value)
    assert "layers[2]" in msg and "Linear" in msg and "'out_featurs'" in msg and "'out_features'" in msg


def test_missing_required_argument_is_named():
    with pytest.raises(nn.ConfigError, match=r"layers\['head'\] \(Linear\): missing required argument "
                                             r"'out_features'"):
        nn.from_config({"type": "Sequential", "layers": {"head": {"type": "Linear", "in_features": 3}}})


def test_argument_rejected_by_the_constructor_is_wrapped_with_the_position():
    with pytest.raises(nn.ConfigError, match=r"layers\[0\] \(Dropout\).*probability"):
        nn.from_config({"type": "Sequential", "layers": [{"type": "Dropout", "p": 1.5}]})


@pytest.mark.parametrize("cfg, text", [
    ({"layers": []}, "'type' key"),
    ([{"type": "ReLU"}], "'type' key"),
    ({"type": 3}, "must be a layer name"),
    ({"type": "Sequential", "layers": 5}, "'layers' must be"),
    ({"type": "Sequential", "layers": [], "dropout": 0.1}, "unexpected argument 'dropout'"),
    ({"type": "ModuleDict", "layers": [{"type": "ReLU"}]}, "'layers' must be a dict"),
])
def test_malformed_configs_raise_config_errors(cfg, text):
    with pytest.raises(nn.ConfigError, match=text):
        nn.from_config(cfg)


def test_bad_paths_raise_config_errors(tmp_path):
    with pytest.raises(nn.ConfigError, match="no configuration file"):
        nn.from_config(str(tmp_path / "absent.json"))
    other = tmp_path / "net.txt"
    other.write_text("{}")
    with pytest.raises(nn.ConfigError, match="cannot tell the format"):
        nn.from_config(other)


def test_module_list_and_module_dict_containers():
    cfg = {"type": "ModuleDict", "layers": {"a": {"type": "Linear", "in_features": 2, "out_features": 2},
                                            "b": {"type": "ModuleList", "layers": [{"type": "Tanh"}]}}}
    model = nn.from_config(cfg)
    assert isinstance(model, nn.ModuleDict) and isinstance(model["b"], nn.ModuleList)
    assert nn.to_config(model) == cfg
    direct = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ModuleList([nn.Tanh()])})
    assert nn.to_config(direct) == cfg


def test_to_config_refuses_arguments_it_cannot_recover():
    class Wrapper(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

    with pytest.raises(nn.ConfigError, match="'inner' holds Linear"):
        nn.to_config(Wrapper(nn.Linear(2, 2)))

    class Hidden(nn.Module):
        def __init__(self, size: int):
            super().__init__()

    with pytest.raises(nn.ConfigError, match="cannot read constructor argument 'size'"):
        nn.to_config(Hidden(3))


def test_weights_survive_a_json_round_trip_of_the_config():
    model = nn.from_config(CNN).double()
    text = json.dumps(nn.to_config(model))
    rebuilt = nn.from_config(json.loads(text)).double()
    rebuilt.load_state_dict(model.state_dict())
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
