"""ember.data.datasets and CharDataset: digits, IDX and CIFAR readers on synthetic files, text windows."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct

import numpy as np
import pytest

import ember
from ember.data import CharDataset, ChecksumError, DataError, DataLoader, DatasetNotFoundError
from ember.data import transforms as T
from ember.data.datasets import CIFAR10, MNIST, Digits, FashionMNIST, file_digest, read_idx

SHAKESPEARE = "/work/shared/data/tinyshakespeare.txt"


def write_idx(path: str, array: np.ndarray, code: int = 0x08) -> None:
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    body = header + array.astype(dtype).tobytes()
    with (gzip.open(path, "wb") if path.endswith(".gz") else open(path, "wb")) as f:
        f.write(body)


def md5(path: str) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def make_mnist(root, folder="MNIST", gz=True, n=5):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    write_idx(str(raw / f"train-images-idx3-ubyte{ext}"), images)
    write_idx(str(raw / f"train-labels-idx1-ubyte{ext}"), labels)
    sums = {p.name: md5(str(p)) for p in raw.iterdir()}
    return images, labels, sums


# -- digits ----------------------------------------------------------------------------------------------
def test_digits_split_is_fixed_disjoint_and_scaled():
    from sklearn.datasets import load_digits

    train, test = Digits(train=True), Digits(train=False)
    assert len(train) + len(test) == 1797 and len(test) == round(1797 * 0.2)
    img, target = train[0]
    assert img.shape == (1, 8, 8) and img.dtype == ember.float32 and isinstance(target, int)
    assert 0.0 <= train.data.min() and train.data.max() <= 1.0
    ref = load_digits()
    flat = Digits(train=True, flat=True)
    assert flat[0][0].shape == (64,)
    match = np.flatnonzero((ref.data / 16.0 == flat.data[0]).all(axis=1))
    assert ref.target[match[0]] == flat.targets[0]
    assert np.array_equal(Digits(train=True).data, train.data)  # the split does not move between runs
    rows = {r.tobytes() for r in flat.data} & {r.tobytes() for r in Digits(train=False, flat=True).data}
    assert len(rows) <= 30  # the source itself holds a few duplicate images; the split does not add any


def test_digits_with_a_loader():
    x, y = next(iter(DataLoader(Digits(), batch_size=16, shuffle=True)))
    assert x.shape == (16, 1, 8, 8) and y.dtype == ember.int64


# -- IDX / MNIST -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_with_given_checksums(tmp_path, gz):
    images, labels, sums = make_mnist(tmp_path, gz=gz)
    ds = MNIST(str(tmp_path), train=True, checksums=sums, transform=T.ToTensor())
    assert len(ds) == 5 and ds.data.dtype == ember.uint8 and ds.targets.dtype == ember.int64
    np.testing.assert_array_equal(ds.data.numpy(), images)
    img, target = ds[3]
    assert img.shape == (1, 28, 28) and target == int(labels[3])
    np.testing.assert_array_equal(img.numpy()[0], images[3] / np.float32(255))


def test_mnist_checks_digests(tmp_path):
    make_mnist(tmp_path, gz=True)
    with pytest.raises(ChecksumError, match="md5 of .*train-images-idx3-ubyte.gz"):
        MNIST(str(tmp_path))  # the published digests: a synthetic file cannot match them
    path = str(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz")
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    ok = MNIST(str(tmp_path), checksums={"train-labels-idx1-ubyte.gz": sha})
    assert len(ok) == 5 and file_digest(path, "sha256") == sha
    with pytest.raises(ChecksumError, match="sha256"):
        MNIST(str(tmp_path), checksums={"train-labels-idx1-ubyte.gz": "0" * 64})


def test_mnist_missing_files_error_lists_them_and_where_to_put_them(tmp_path):
    make_mnist(tmp_path, gz=True)
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(str(tmp_path), train=False)
    text = str(info.value)
    assert "t10k-images-idx3-ubyte" in text and "t10k-labels-idx1-ubyte" in text
    assert "does not download" in text and os.path.join(str(tmp_path), "MNIST", "raw") in text
    assert isinstance(info.value, FileNotFoundError)


def test_fashion_mnist_uses_its_own_folder_and_digests(tmp_path):
    images, _, sums = make_mnist(tmp_path, folder="FashionMNIST", gz=False)
    ds = FashionMNIST(str(tmp_path), checksums=sums)
    np.testing.assert_array_equal(ds.data.numpy(), images)
    assert ds.classes[0] == "T-shirt/top" and set(FashionMNIST.md5) == set(MNIST.md5)
    with pytest.raises(DatasetNotFoundError, match="FashionMNIST"):
        FashionMNIST(str(tmp_path / "nothing"))


def test_read_idx_dtypes_and_errors(tmp_path):
    for code, array in [(0x0B, np.array([[-3, 2], [1, 300]])), (0x0D, np.array([1.5, -2.25]))]:
        path = str(tmp_path / f"a{code}")
        write_idx(path, array, code)
        out = read_idx(path)
        assert out.dtype.isnative and np.array_equal(out, array)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(str(bad))
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1]))
    with pytest.raises(DataError, match="3 bytes"):
        read_idx(str(short))


# -- CIFAR-10 --------------------------------------------------------------------------------------------
def make_cifar(root, n=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
        (folder / name).write_bytes(pickle.dumps(entry))
        batches[name] = entry
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    return batches, sums


def test_cifar10_reads_pickled_batches_as_hwc_images(tmp_path):
    batches, sums = make_cifar(tmp_path)
    train = CIFAR10(str(tmp_path), train=True, checksums=sums)
    assert train.data.shape == (20, 32, 32, 3) and len(train.targets) == 20
    first = batches["data_batch_1"]["data"][0].reshape(3, 32, 32)
    np.testing.assert_array_equal(train.data[0], first.transpose(1, 2, 0))
    assert train.targets[4] == int(batches["data_batch_2"]["labels"][0]) and train.classes[1] == "c1"
    test = CIFAR10(str(tmp_path), train=False, checksums=sums, transform=T.ToTensor())
    img, target = test[2]
    assert img.shape == (3, 32, 32) and len(test) == 4 and isinstance(target, int)
    with pytest.raises(ChecksumError, match="data_batch_1"):
        CIFAR10(str(tmp_path))


def test_cifar10_missing_batches(tmp_path):
    make_cifar(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DatasetNotFoundError, match="data_batch_3") as info:
        CIFAR10(str(tmp_path))
    assert "data_batch_1" not in str(info.value) and "cifar-10-batches-py" in str(info.value)


# -- text ------------------------------------------------------------------------------------------------
def test_char_dataset_windows_vocabulary_and_round_trip(tmp_path):
    path = tmp_path / "t.txt"
    text = "to be, or not to be: that is the question.\n"
    path.write_text(text)
    ds = CharDataset(str(path), block_size=8)
    assert ds.vocab_size == len(set(text)) and ds.itos == sorted(set(text))
    assert len(ds) == len(text) - 8
    x, y = ds[5]
    assert x.dtype == ember.int64 and ds.decode(x) == text[5:13] and ds.decode(y) == text[6:14]
    assert ds.decode(ds.encode(text)) == text and ds[-1][1].tolist() == ds.encode(text[-8:])
    with pytest.raises(DataError, match="not in the vocabulary"):
        ds.encode("Z")
    with pytest.raises(IndexError):
        ds[len(ds)]
    words = CharDataset(text=text, block_size=3, level="word")
    assert "question" in words.stoi and words.decode(words.encode(text)) == text
    xb, yb = next(iter(DataLoader(ds, batch_size=4, shuffle=True, generator=ember.Generator().manual_seed(0))))
    assert xb.shape == yb.shape == (4, 8)
    np.testing.assert_array_equal(xb.numpy()[:, 1:], yb.numpy()[:, :-1])
    with pytest.raises(DataError, match="block_size"):
        CharDataset(text="abc", block_size=3)


@pytest.mark.skipif(not os.path.exists(SHAKESPEARE), reason="tinyshakespeare.txt is not available")
def test_char_dataset_on_tiny_shakespeare():
    ds = CharDataset(SHAKESPEARE, block_size=64)
    text = open(SHAKESPEARE, encoding="utf-8").read()
    assert len(ds) == len(text) - 64 and ds.vocab_size == len(set(text))
    x, y = ds[1000]
    assert ds.decode(x) == text[1000:1064] and ds.decode(y) == text[1001:1065]
