"""ember.save / ember.load (every dtype, containers, shared memory, corrupt files) and safetensors state
dicts exchanged with PyTorch's safetensors.torch in both directions."""
from __future__ import annotations

import collections
import io
import json
import math
import os
import zlib

import numpy as np
import pytest
import safetensors
import safetensors.numpy as st_numpy
import safetensors.torch as st_torch

import ember
import ember.io._files as files
from ember.io import SerializationError
from ember.nn import Parameter

from helpers import torch


def bits(t) -> bytes:
    """The exact bytes of a tensor's values (so NaNs and -0.0 compare too)."""
    return np.ascontiguousarray(t.detach().numpy()).tobytes()


def roundtrip(obj, tmp_path, name="obj.ember", **kwargs):
    path = tmp_path / name
    ember.save(obj, path)
    return ember.load(path, **kwargs)


# -- ember.save / ember.load -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ember._core.dtypes.ALL, ids=lambda d: d.name)
def test_every_dtype_roundtrips_bit_exactly(dtype, tmp_path, rng):
    values = rng.standard_normal((3, 4)) * 50
    if dtype.is_complex:
        values = values + 1j * rng.standard_normal((3, 4))
    data = np.asarray(values).astype(dtype.np)
    data.flat[0] = np.nan if dtype.is_floating_point or dtype.is_complex else data.flat[0]
    t = ember.from_numpy(data)
    tensors = {"full": t, "scalar": ember.from_numpy(data[1:2, 2].reshape(())),
               "empty": ember.from_numpy(data[:0]),
               "strided": ember.from_numpy(data.T[::2])}
    back = roundtrip(tensors, tmp_path)
    for key, orig in tensors.items():
        assert back[key].dtype is dtype, key
        assert tuple(back[key].shape) == tuple(orig.shape), key
        assert bits(back[key]) == bits(orig), key


def test_bfloat16_through_a_file_object_and_a_path(tmp_path):
    t = ember.tensor([1.5, -2.25, 3e38, 1e-39], dtype=ember.bfloat16)
    buf = io.BytesIO()
    ember.save(t, buf)
    buf.seek(0)
    for back in (ember.load(buf), roundtrip(t, tmp_path)):
        assert back.dtype is ember.bfloat16
        assert bits(back) == bits(t)


def test_requires_grad_and_parameters_are_kept(tmp_path):
    p = Parameter(ember.randn(2, 3))
    frozen = Parameter(ember.randn(2), requires_grad=False)
    leaf = ember.randn(4, requires_grad=True)
    nonleaf = leaf * 2
    plain = ember.arange(3)
    back = roundtrip([p, frozen, leaf, nonleaf, plain], tmp_path)
    assert [type(t).__name__ for t in back] == ["Parameter", "Parameter", "Tensor", "Tensor", "Tensor"]
    assert [t.requires_grad for t in back] == [True, False, True, True, False]
    assert all(t.is_leaf for t in back)
    assert bits(back[3]) == bits(nonleaf)
    (back[0] * back[0]).sum().backward()
    assert np.array_equal(back[0].grad.numpy(), 2 * p.detach().numpy())


def test_containers_and_plain_values_roundtrip_with_their_types(tmp_path):
    Point = collections.namedtuple("Point", ["x", "y"])
    obj = {
        "none": None, "bools": [True, False], "ints": [0, -7, 2 ** 70], "floats": [1.0, -0.0, 1e-310, math.inf],
        "complex": 1 - 2.5j, "str": "héllo \u2603 \"quoted\"", "bytes": b"\x00\xffabc", "tuple": (1, (2, 3)),
        "set": {1, 2, 3}, "frozen": frozenset({"a"}), "odict": collections.OrderedDict([("b", 1), ("a", 2)]),
        "counter": collections.Counter({2: 1, 4: 3}), "point": Point(1, [2]), 3: "int key", (1, "k"): "tuple key",
        "dtype": ember.bfloat16, "device": ember.device("cpu"), "np": np.arange(4, dtype=np.uint32),
        "npscalar": np.float64(2.5), "empty": {}, "nested": [[[]]],
    }
    back = roundtrip(obj, tmp_path)
    for key, value in obj.items():
        if key in ("np",):
            assert back[key].dtype == value.dtype and np.array_equal(back[key], value)
            continue
        assert back[key] == value, key
        assert type(back[key]).__name__ == type(value).__name__, key
    assert list(back) == list(obj)
    assert list(back["odict"]) == ["b", "a"]
    assert back["bools"][0] is True and type(back["ints"][0]) is int
    assert math.copysign(1, back["floats"][1]) == -1
    assert back["point"].x == 1 and back["point"]._fields == ("x", "y")
    assert isinstance(back["npscalar"], np.float64)
    assert math.isnan(roundtrip(math.nan, tmp_path))


def test_the_same_tensor_twice_comes_back_as_one_object(tmp_path):
    w = Parameter(ember.randn(3))
    a, b, c = roundtrip([w, {"again": w}, w.detach()], tmp_path)
    assert a is b["again"]
    assert c is not a and type(c) is ember.Tensor


def test_tensors_sharing_memory_are_stored_once_and_share_again(tmp_path):
    big = ember.randn(1000, dtype=ember.float64)
    views = {"base": big, "head": big[:10], "tail": big[500:], "detached": big.detach(),
             "matrix": big.reshape(10, 100).transpose(0, 1), "strided": big[::-3]}
    path = tmp_path / "shared.ember"
    ember.save(views, path)
    assert os.path.getsize(path) < 8000 + 4000  # one copy of the 8000 data bytes plus the header
    back = ember.load(path)
    for key, orig in views.items():
        assert bits(back[key]) == bits(orig), key
    with ember.no_grad():
        back["base"][500] = 123.0
    assert back["tail"][0].item() == 123.0 and back["detached"][500].item() == 123.0
    assert back["strided"].tolist()[-1 - 500 // 3] == big[::-3].tolist()[-1 - 500 // 3]


def test_tensors_that_do_not_overlap_are_stored_separately(tmp_path):
    x = ember.arange(10.0)
    a, b = roundtrip([x[:5], x[5:]], tmp_path)
    assert not np.shares_memory(a.numpy(), b.numpy())
    assert a.tolist() == [0, 1, 2, 3, 4] and b.tolist() == [5, 6, 7, 8, 9]


def test_loaded_views_share_a_version_counter_for_autograd_checks(tmp_path):
    x = ember.randn(4)
    base, view = roundtrip([x, x[1:]], tmp_path)
    w = ember.randn(3, requires_grad=True)
    z = (w * view).sum()  # saves `view` for the gradient of w
    with ember.no_grad():
        base[1] = 5.0  # writes through the other tensor of the same storage
    with pytest.raises(ember.errors.AutogradError):
        z.backward()


def test_map_location(tmp_path):
    t = ember.ones(2)
    assert roundtrip(t, tmp_path, map_location="cpu").device == ember.device("cpu")
    assert roundtrip(t, tmp_path, map_location={"cpu": "cpu"}).tolist() == [1.0, 1.0]
    with pytest.raises(SerializationError, match="map_location"):
        roundtrip(t, tmp_path, map_location="tpu")


def test_unsupported_values_are_refused_with_their_path(tmp_path):
    with pytest.raises(SerializationError, match=r"obj\['model'\]\[1\]: cannot save an object of type object"):
        ember.save({"model": [1, object()]}, tmp_path / "x")
    with pytest.raises(SerializationError, match="function"):
        ember.save(lambda: 0, tmp_path / "x")
    with pytest.raises(SerializationError, match="dtype <U1"):
        ember.save(np.array(["a"]), tmp_path / "x")
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(SerializationError, match="contains itself"):
        ember.save(cyclic, tmp_path / "x")
    assert not os.path.exists(tmp_path / "x")


def test_saving_inside_a_transform_is_refused(tmp_path):
    def f(x):
        ember.save(x, tmp_path / "x")
        return x

    with pytest.raises(SerializationError, match="transformed"):
        ember.func.vmap(f)(ember.ones(2, 3))


def test_save_writes_to_file_objects_and_the_format_is_plain_safetensors(tmp_path):
    buf = io.BytesIO()
    ember.save({"w": ember.arange(3.0)}, buf)
    path = tmp_path / "f.safetensors"
    path.write_bytes(buf.getvalue())
    with safetensors.safe_open(str(path), framework="np") as f:
        assert f.metadata()["format"] == "ember"
        assert list(f.keys()) == ["w"]
        assert f.get_tensor("w").tolist() == [0.0, 1.0, 2.0]


# -- corrupt, truncated and foreign files --------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.ember"
    ember.save({"w": ember.tensor([1.0, 2.0, 3.0]), "n": 7, "b": ember.tensor([True, False])}, path)
    return path


def _assert_refused(path, *fragments):
    try:  # not pytest.raises: the byte-by-byte tests call this hundreds of times
        ember.load(path)
    except SerializationError as err:
        message = str(err)
    else:
        raise AssertionError(f"{path} loaded without an error")
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_truncations_are_detected(saved, tmp_path):
    data = saved.read_bytes()
    bad = tmp_path / "bad.ember"
    lengths = sorted(set(range(0, 64)) | set(range(64, len(data), 11)) | set(range(len(data) - 8, len(data))))
    for n in lengths:
        bad.write_bytes(data[:n])
        _assert_refused(bad)


def test_every_flipped_byte_is_detected(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    bad = tmp_path / "bad.ember"
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        _assert_refused(bad)


def test_a_corrupt_payload_is_reported_as_a_checksum_mismatch(saved):
    data = bytearray(saved.read_bytes())
    data[-1] ^= 0x01
    saved.write_bytes(bytes(data))
    _assert_refused(saved, "corrupt", "checksum mismatch")


def _rewrite(path, edit):
    """Rewrite an ember file after `edit(arrays, structure_dict)`, with valid checksums."""
    with safetensors.safe_open(str(path), framework="np") as f:
        meta = f.metadata()
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    doc = json.loads(meta["structure"])
    edit(arrays, doc)
    meta["structure"] = json.dumps(doc)
    meta["structure_crc32"] = str(zlib.crc32(meta["structure"].encode()))
    st_numpy.save_file(arrays, str(path), metadata=meta)


def test_a_missing_entry_is_named(saved):
    _rewrite(saved, lambda arrays, doc: arrays.pop("w"))
    _assert_refused(saved, "missing entries ['w']")


def test_malformed_descriptions_are_refused_without_running_anything(saved, tmp_path):
    edits = [
        lambda a, d: d["root"].update({"dict": [[{"import": "os"}, 1]]}),
        lambda a, d: d["root"].update({"dict": [[{"namedtuple": "x", "fields": ["a=os.system('x')"],
                                                  "items": [1]}, 1]]}),
        lambda a, d: d["entries"][0].update(shape=[1000]),
        lambda a, d: d["entries"][0].update(offset=-4),
        lambda a, d: d["entries"][0].update(dtype="object"),
        lambda a, d: d["entries"][0].update(strides=[8, 8]),
        lambda a, d: d["entries"][0].update(requires_grad="yes"),
        lambda a, d: d["entries"][1].update(kind="module"),
        lambda a, d: d["root"].update({"dict": [[{"ref": 99}, 1]]}),
        lambda a, d: d.pop("entries"),
    ]
    for i, edit in enumerate(edits):
        path = tmp_path / f"m{i}.ember"
        path.write_bytes(saved.read_bytes())
        _rewrite(path, edit)
        _assert_refused(path, "corrupt")


def test_foreign_files_are_named_as_such(tmp_path):
    plain = tmp_path / "plain.safetensors"
    st_numpy.save_file({"x": np.ones(2)}, str(plain))
    _assert_refused(plain, "not an Ember save file", "ember.io.load_file")
    pickle_zip = tmp_path / "model.pt"
    torch.save({"x": torch.ones(2)}, pickle_zip)
    _assert_refused(pickle_zip, "never loads pickles")
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x01\x02")
    _assert_refused(junk, "only 2 bytes")
    with pytest.raises(FileNotFoundError):
        ember.load(tmp_path / "missing")


def test_an_unknown_version_is_refused(saved):
    with safetensors.safe_open(str(saved), framework="np") as f:
        meta, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta["version"] = "99"
    st_numpy.save_file(arrays, str(saved), metadata=meta)
    _assert_refused(saved, "version '99'")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(saved, monkeypatch):
    old = saved.read_bytes()

    def fail_midway(f, data):
        f.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(files, "_write_payload", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        ember.save({"w": ember.zeros(100)}, saved)
    assert saved.read_bytes() == old
    assert ember.load(saved)["n"] == 7
    assert os.listdir(saved.parent) == [saved.name]


def test_new_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    ember.save(1, tmp_path / "p")
    assert os.stat(tmp_path / "p").st_mode & 0o777 == 0o666 & ~mask


# -- safetensors state dicts, both ways with PyTorch ---------------------------------------------------------
def _torch_mlp():
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()


def _ember_mlp():
    return ember.nn.Sequential(ember.nn.Linear(5, 7), ember.nn.Tanh(), ember.nn.Linear(7, 3)).double()


def _torch_cnn():
    return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 5)).double()


def _ember_cnn():
    return ember.nn.Sequential(ember.nn.Conv2d(2, 4, 3, padding=1), ember.nn.ReLU(), ember.nn.MaxPool2d(2),
                               ember.nn.Flatten(), ember.nn.Linear(4 * 3 * 3, 5)).double()


NETS = [(_torch_mlp, _ember_mlp, (4, 5)), (_torch_cnn, _ember_cnn, (3, 2, 6, 6))]


@pytest.mark.parametrize("make_torch,make_ember,shape", NETS, ids=["mlp", "cnn"])
def test_torch_weights_load_into_the_ember_module(make_torch, make_ember, shape, tmp_path, rng):
    tm, em = make_torch(), make_ember()
    path = tmp_path / "torch.safetensors"
    st_torch.save_file(tm.state_dict(), str(path))
    em.load_state_dict(ember.io.load_file(path))
    x = rng.standard_normal(shape)
    expected = tm(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(em(ember.tensor(x)).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make_torch,make_ember,shape", NETS, ids=["mlp", "cnn"])
def test_ember_weights_load_into_the_torch_module(make_torch, make_ember, shape, tmp_path, rng):
    tm, em = make_torch(), make_ember()
    path = tmp_path / "ember.safetensors"
    ember.io.save_model(em, path, metadata={"source": "ember"})
    tm.load_state_dict(st_torch.load_file(str(path)))
    x = rng.standard_normal(shape)
    expected = em(ember.tensor(x)).detach().numpy()
    np.testing.assert_allclose(tm(torch.tensor(x)).detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"source": "ember"}


def test_dtypes_survive_the_trip_through_torch(tmp_path):
    dts = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.uint8, torch.int16,
           torch.int32, torch.int64, torch.bool, torch.complex64]
    tensors = {str(dt): (torch.randn(3, 2) * 10).to(dt) for dt in dts}
    tensors["empty"] = torch.zeros(0, 3)
    tensors["scalar"] = torch.tensor(2.5)
    st_torch.save_file(tensors, str(tmp_path / "a"))
    loaded = ember.io.load_file(tmp_path / "a", device="cpu")
    assert list(loaded) == sorted(tensors)
    assert loaded["torch.bfloat16"].dtype is ember.bfloat16 and loaded["torch.bool"].dtype is ember.bool
    ember.io.save_file(loaded, tmp_path / "b")
    back = st_torch.load_file(str(tmp_path / "b"))
    for key, t in tensors.items():
        assert back[key].dtype == t.dtype and back[key].shape == t.shape and torch.equal(back[key], t), key


def test_load_model_reports_mismatched_keys(tmp_path):
    path = tmp_path / "m.safetensors"
    ember.io.save_model(ember.nn.Linear(3, 2), path)
    with pytest.raises(ember.nn.StateDictError, match="missing keys: 0.weight"):
        ember.io.load_model(ember.nn.Sequential(ember.nn.Linear(3, 2)), path)


def test_save_file_refuses_what_safetensors_cannot_hold(tmp_path):
    path = tmp_path / "x"
    cases = [({"c": ember.ones(2, dtype=ember.complex128)}, None, "complex128"),
             ({1: ember.ones(2)}, None, "keys must be strings"),
             ({"a": [1.0]}, None, "not a tensor"),
             ({"a": ember.ones(1)}, {"k": 1}, "metadata must be"),
             ([ember.ones(1)], None, "expected a dict")]
    for state, metadata, message in cases:
        with pytest.raises(SerializationError, match=message):
            ember.io.save_file(state, path, metadata)
    assert not path.exists()


def test_load_file_reports_corrupt_files_and_foreign_dtypes(tmp_path):
    path = tmp_path / "x.safetensors"
    ember.io.save_file({"w": ember.ones(8)}, path)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(SerializationError, match="not a valid safetensors file"):
        ember.io.load_file(path)
    st_numpy.save_file({"u": np.ones(2, np.uint32)}, str(path))
    with pytest.raises(SerializationError, match="uint32"):
        ember.io.load_file(path)
