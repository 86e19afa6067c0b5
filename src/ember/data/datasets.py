"""Dataset readers: scikit-learn's digits (offline), and MNIST, FashionMNIST and CIFAR-10 from local files.

Ember never downloads: the readers look for the published files in a directory you give them
(in torchvision's layout or directly in it), check their digests, and otherwise raise a
:class:`~ember.data.DatasetNotFoundError` that lists the missing files and where to put them.

Digests: the known MD5s of the published gzipped MNIST/FashionMNIST files and of the CIFAR-10
python batches are checked; uncompressed IDX files have no published digest and are checked only
when you pass ``checksums={name: hex digest}`` (32 hex digits: MD5, 64: SHA-256).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from typing import Any, Callable, Sequence

import numpy as np

from .._core.creation import from_numpy
from .dataset import Dataset
from .errors import ChecksumError, DataError, DatasetNotFoundError

__all__ = ["Digits", "MNIST", "FashionMNIST", "CIFAR10", "read_idx", "file_digest"]


# -- files and digests -----------------------------------------------------------------------------------
def file_digest(path: str, algorithm: str = "md5") -> str:
    """The hex digest of a file ("md5" or "sha256"), read in 1 MiB blocks.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "empty")
        >>> open(path, "wb").close()
        >>> file_digest(path)
        'd41d8cd98f00b204e9800998ecf8427e'
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: str, expected: str, op: str) -> None:
    """Compare a file's digest with `expected` (MD5 for 32 hex digits, SHA-256 for 64)."""
    algorithm = expected.split(":", 1)[0] if ":" in expected else ("md5" if len(expected) == 32 else "sha256")
    digest = expected.split(":", 1)[-1].lower()
    if algorithm not in ("md5", "sha256") or len(digest) not in (32, 64):
        raise DataError(op, f"a checksum is 32 (MD5) or 64 (SHA-256) hex digits, got {expected!r}")
    actual = file_digest(path, algorithm)
    if actual != digest:
        raise ChecksumError(op, f"{algorithm} of {path} is {actual}, expected {digest}: the file is damaged "
                            f"or not the published one")


def _find(names: Sequence[str], dirs: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Where each name lies (the first of `dirs` holding it, as given or gzipped), and the missing names."""
    found, missing = {}, []
    for name in names:
        paths = [os.path.join(d, n) for d in dirs for n in (name, name + ".gz")]
        hit = next((p for p in paths if os.path.isfile(p)), None)
        if hit is None:
            missing.append(name)
        else:
            found[name] = hit
    return found, missing


def _not_found(op: str, root: str, missing: Sequence[str], place: str, source: str) -> DatasetNotFoundError:
    files = "\n".join(f"    {m}" for m in missing)
    return DatasetNotFoundError(op, f"missing files under {root!r}:\n{files}\nEmber does not download "
                                f"datasets. Get them from {source} and put them in {place} "
                                f"(or directly in {root!r}).")


def _open(path: str) -> Any:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (the MNIST format; raw or ``.gz``) into a native-endian NumPy array.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each size as a big-endian int32.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte")
        >>> _ = open(path, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
        >>> read_idx(path).tolist()
        [7, 9]
    """
    with _open(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError("read_idx", f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    start = 4 + 4 * ndim
    if len(raw) - start != int(np.prod(dims)) * dtype.itemsize:
        raise DataError("read_idx", f"{path}: the header says shape {dims} of {dtype} "
                        f"({int(np.prod(dims)) * dtype.itemsize} bytes) but {len(raw) - start} bytes follow")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


class _VisionDataset(Dataset):
    """Images and targets held in memory, with optional transforms."""

    data: Any
    targets: Any
    transform: Callable | None
    target_transform: Callable | None

    def __len__(self) -> int:
        return len(self.data)

    def _finish(self, img: Any, target: Any) -> tuple[Any, Any]:
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


# -- digits ----------------------------------------------------------------------------------------------
class Digits(_VisionDataset):
    """scikit-learn's 1,797 handwritten digits (8x8), split into train and test with a fixed seed.

    Pixels (0..16 in the source) are scaled to float32 in [0, 1]. The split is a permutation
    drawn with NumPy's ``default_rng(seed)``; the first ``round(n * test_fraction)`` items are the
    test set.

    Args:
        train: the training part (else the test part).
        transform: applied to each image (an ember tensor).
        target_transform: applied to each target (an int).
        flat: images of shape (64,) instead of (1, 8, 8).
        test_fraction: the share of the test part.
        seed: the seed of the split.

    Example:
        >>> train, test = Digits(train=True), Digits(train=False)
        >>> len(train) + len(test), train[0][0].shape, type(train[0][1]).__name__
        (1797, (1, 8, 8), 'int')
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, *, flat: bool = False, test_fraction: float = 0.2,
                 seed: int = 0):
        from sklearn.datasets import load_digits  # optional dependency, imported only when used

        if not 0 < test_fraction < 1:
            raise DataError("Digits", f"test_fraction must lie in (0, 1), got {test_fraction}")
        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)
        order = np.random.default_rng(seed).permutation(len(images))
        n_test = int(round(len(images) * test_fraction))
        keep = order[n_test:] if train else order[:n_test]
        shape = (-1, 64) if flat else (-1, 1, 8, 8)
        self.data = np.ascontiguousarray(images[keep].reshape(shape))
        self.targets = digits.target[keep].astype(np.int64)
        self.train, self.transform, self.target_transform = train, transform, target_transform

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self._finish(from_numpy(self.data[index]), int(self.targets[index]))


# -- MNIST and FashionMNIST ------------------------------------------------------------------------------
class MNIST(_VisionDataset):
    """The MNIST digits from the published IDX files in a local directory.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` (or the ``t10k-`` pair for
    the test set), raw or gzipped, in ``root/MNIST/raw``, ``root/MNIST`` or ``root``.

    Args:
        root: the directory.
        train: the 60,000 training images (else the 10,000 test images).
        transform: applied to each image, a (28, 28) uint8 NumPy array (e.g. ``ToTensor()``).
        target_transform: applied to each target (an int).
        download: accepted for compatibility; Ember never downloads (missing files raise).
        checksums: ``{file name: MD5 or SHA-256 hex digest}`` replacing the known digests.

    Attributes:
        data: uint8 tensor (N, 28, 28). targets: int64 tensor (N,). classes: the class names.

    Example:
        >>> MNIST("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ember.data.errors.DatasetNotFoundError: MNIST: missing files under '/nonexistent':...
    """

    folder = "MNIST"
    source = "the MNIST database (e.g. https://ossci-datasets.s3.amazonaws.com/mnist/)"
    md5 = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]

    def __init__(self, root: str, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False,
                 checksums: dict[str, str] | None = None):
        self.root, self.train = os.fspath(root), train
        self.transform, self.target_transform = transform, target_transform
        prefix = "train" if train else "t10k"
        names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        op = type(self).__name__
        dirs = [os.path.join(self.root, self.folder, "raw"), os.path.join(self.root, self.folder), self.root]
        found, missing = _find(names, dirs)
        if missing:
            raise _not_found(op, self.root, missing, repr(dirs[0]), self.source)
        digests = self.md5 if checksums is None else checksums
        for path in found.values():
            expected = digests.get(os.path.basename(path))
            if expected is not None:
                _verify(path, expected, op)
        images, labels = read_idx(found[names[0]]), read_idx(found[names[1]])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(op, f"expected images (N, H, W) and labels (N,), got shapes {images.shape} "
                            f"and {labels.shape}")
        self.data, self.targets = from_numpy(images), from_numpy(labels.astype(np.int64))

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self._finish(self.data.numpy()[index], int(self.targets.numpy()[index]))


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST from the published IDX files (same files, layout and options as
    :class:`MNIST`, in ``root/FashionMNIST/raw``, ``root/FashionMNIST`` or ``root``).

    Example:
        >>> FashionMNIST.classes[:2]
        ['T-shirt/top', 'Trouser']
    """

    folder = "FashionMNIST"
    source = "the Fashion-MNIST repository (https://github.com/zalandoresearch/fashion-mnist)"
    md5 = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


# -- CIFAR-10 --------------------------------------------------------------------------------------------
class CIFAR10(_VisionDataset):
    """CIFAR-10 from the python version's pickled batches in a local directory.

    Reads ``data_batch_1`` … ``data_batch_5`` (train) or ``test_batch`` (test), and ``batches.meta``
    for the class names when present, from ``root/cifar-10-batches-py`` or ``root``. The batches are
    pickles: only load files you trust (the known MD5s are checked first).

    Args:
        root: the directory.
        train: the 50,000 training images (else the 10,000 test images).
        transform: applied to each image, a (32, 32, 3) uint8 NumPy array (e.g. ``ToTensor()``).
        target_transform: applied to each target (an int).
        download: accepted for compatibility; Ember never downloads (missing files raise).
        checksums: ``{file name: MD5 or SHA-256 hex digest}`` replacing the known digests.

    Attributes:
        data: uint8 NumPy array (N, 32, 32, 3). targets: list of ints. classes: the class names.

    Example:
        >>> CIFAR10.classes[:3]
        ['airplane', 'automobile', 'bird']
    """

    folder = "cifar-10-batches-py"
    source = "https://www.cs.toronto.edu/~kriz/cifar.html (the python version, unpacked)"
    train_list = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]
    test_list = ["test_batch"]
    md5 = {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    }
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root: str, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False,
                 checksums: dict[str, str] | None = None):
        self.root, self.train = os.fspath(root), train
        self.transform, self.target_transform = transform, target_transform
        dirs = [os.path.join(self.root, self.folder), self.root]
        names = self.train_list if train else self.test_list
        found, missing = _find(names, dirs)
        if missing:
            raise _not_found("CIFAR10", self.root, missing, repr(dirs[0]), self.source)
        digests = self.md5 if checksums is None else checksums
        batches = [self._load(found[n], digests.get(n)) for n in names]
        self.data = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        self.data = np.ascontiguousarray(self.data)
        self.targets = [int(t) for b in batches for t in b.get("labels", b.get("fine_labels", []))]
        meta, _ = _find(["batches.meta"], dirs)
        if meta:
            self.classes = list(self._load(meta["batches.meta"], digests.get("batches.meta"))["label_names"])

    @staticmethod
    def _load(path: str, expected: str | None) -> dict:
        if expected is not None:
            _verify(path, expected, "CIFAR10")
        with _open(path) as f:
            entry = pickle.load(f, encoding="latin1")
        if not isinstance(entry, dict):
            raise DataError("CIFAR10", f"{path} does not hold a CIFAR batch (a pickled dict)")
        return entry

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self._finish(self.data[index], self.targets[index])
