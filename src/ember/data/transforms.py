"""Vision transforms in the style of torchvision, on NumPy arrays and ember tensors (no PIL).

:class:`ToTensor` turns an ``(H, W, C)`` or ``(H, W)`` array into a ``(C, H, W)`` ember tensor (uint8
scaled to [0, 1]). The other transforms take images laid out ``(..., H, W)`` (channels first, as
torchvision's tensor transforms) and return the same kind they were given: an ember tensor for a
tensor, a NumPy array for an array. They work on the host arrays directly; they do not record
autograd history.

Random transforms draw uniforms from ember's generator (the default one, which each DataLoader
worker seeds, or the ``generator=`` given), so seeded runs repeat. To keep per-image draws cheap
they read the generator 256 uniforms at a time and use them in order; the unread rest of a read
is dropped as soon as anything else draws from that generator or reseeds it.
"""
from __future__ import annotations

import math
import numbers
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from .._core import dtypes
from .._core.creation import from_numpy
from .._core.random import Generator, default_generator, rand
from .._core.tensor import Tensor
from .errors import DataError

__all__ = ["Compose", "Lambda", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip",
           "RandomVerticalFlip", "CenterCrop", "Pad"]

_CHUNK = 256


class _Uniforms:
    """Uniforms read ahead from one generator; valid while the generator is where the read left it."""

    __slots__ = ("seed", "end", "values", "pos")

    def __init__(self, gen: Generator):
        self.values = rand(_CHUNK, generator=gen, dtype=dtypes.float64).numpy().tolist()
        self.seed, self.end, self.pos = gen._seed, gen._offset, 0


_read_ahead: "weakref.WeakKeyDictionary[Generator, _Uniforms]" = weakref.WeakKeyDictionary()


def uniform(generator: Generator | None = None) -> float:
    """One uniform number in [0, 1) from `generator` (default: ember's default generator).

    Example:
        >>> import ember
        >>> a = uniform(ember.Generator().manual_seed(3))
        >>> a == uniform(ember.Generator().manual_seed(3)) and 0.0 <= a < 1.0
        True
    """
    gen = generator if generator is not None else default_generator
    u = _read_ahead.get(gen)
    if u is None or u.pos == _CHUNK or u.seed != gen._seed or u.end != gen._offset:
        u = _read_ahead[gen] = _Uniforms(gen)
    u.pos += 1
    return u.values[u.pos - 1]


def randint(high: int, generator: Generator | None = None) -> int:
    """A uniform integer in [0, high) from `generator` (the floor of ``high * uniform()``)."""
    return min(int(uniform(generator) * high), high - 1)


# -- helpers ---------------------------------------------------------------------------------------------
def _unwrap(img: Any, op: str) -> tuple[np.ndarray, bool]:
    """The host array of an image and whether it came as an ember tensor."""
    if isinstance(img, Tensor):
        return img.detach().numpy(), True
    if isinstance(img, np.ndarray):
        return img, False
    raise DataError(op, f"expected an ember tensor or a NumPy array, got {type(img).__name__}")


def _wrap(array: np.ndarray, was_tensor: bool) -> Any:
    return from_numpy(array) if was_tensor else array


def _check_image(arr: np.ndarray, op: str) -> None:
    if arr.ndim < 2:
        raise DataError(op, f"expected an image of shape (..., H, W), got shape {arr.shape}")


def _pair(size: int | Sequence[int], op: str) -> tuple[int, int]:
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    if len(size) == 1:
        return int(size[0]), int(size[0])
    if len(size) != 2:
        raise DataError(op, f"size must be an int or a sequence of 1 or 2 ints, got {size!r}")
    return int(size[0]), int(size[1])


def _padding(padding: int | Sequence[int], op: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) from an int, a (left/right, top/bottom) pair or four numbers."""
    if isinstance(padding, numbers.Integral):
        p = (int(padding),) * 4
    elif len(padding) == 1:
        p = (int(padding[0]),) * 4
    elif len(padding) == 2:
        p = (int(padding[0]), int(padding[1])) * 2
    elif len(padding) == 4:
        p = tuple(int(v) for v in padding)
    else:
        raise DataError(op, f"padding must be an int or a sequence of 1, 2 or 4 ints, got {padding!r}")
    if min(p) < 0:
        raise DataError(op, f"padding must be non-negative, got {padding!r}")
    return p


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


def _fill_array(fill: Any, arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An array of `shape` holding `fill` (a number, or one value per channel of a (C, H, W) image)."""
    out = np.empty(shape, dtype=arr.dtype)
    if isinstance(fill, numbers.Number):
        out.fill(fill)
    else:
        out[...] = np.asarray(fill, dtype=arr.dtype).reshape(-1, 1, 1)
    return out


def _pad_crop(arr: np.ndarray, pad: tuple[int, int, int, int], top: int, left: int, height: int, width: int,
              fill: Any, mode: str) -> np.ndarray:
    """Crop the window (top, left, height, width) of `arr` padded by `pad`, without building the padded
    image for constant padding (the window is filled, then the part inside the image is copied)."""
    pl, pt, pr, pb = pad
    if mode != "constant":
        widths = [(0, 0)] * (arr.ndim - 2) + [(pt, pb), (pl, pr)]
        return np.pad(arr, widths, mode=_PAD_MODES[mode])[..., top:top + height, left:left + width].copy()
    h, w = arr.shape[-2:]
    out = _fill_array(fill, arr, arr.shape[:-2] + (height, width))
    r0, r1 = max(top - pt, 0), min(top - pt + height, h)  # source rows and columns inside the image
    c0, c1 = max(left - pl, 0), min(left - pl + width, w)
    if r0 < r1 and c0 < c1:
        out[..., r0 - top + pt:r1 - top + pt, c0 - left + pl:c1 - left + pl] = arr[..., r0:r1, c0:c1]
    return out


# -- transforms ------------------------------------------------------------------------------------------
class Compose:
    """Apply transforms one after another.

    Example:
        >>> import numpy as np
        >>> t = Compose([ToTensor(), Lambda(lambda x: x * 2)])
        >>> t(np.full((1, 1, 1), 255, dtype=np.uint8)).tolist()
        [[[2.0]]]
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class Lambda:
    """Wrap a user function as a transform.

    Example:
        >>> Lambda(lambda x: x + 1)(1)
        2
    """

    def __init__(self, lambd: Callable[[Any], Any]):
        if not callable(lambd):
            raise DataError("Lambda", f"argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ToTensor:
    """An ``(H, W, C)`` or ``(H, W)`` NumPy image to a ``(C, H, W)`` ember tensor.

    uint8 images become float32 divided by 255 (values in [0, 1]); other dtypes keep their values
    and dtype (as torchvision's ``ToTensor`` does for arrays).

    Example:
        >>> import numpy as np
        >>> t = ToTensor()(np.array([[[0, 255]]], dtype=np.uint8))
        >>> t.shape, t.tolist()
        ((2, 1, 1), [[[0.0]], [[1.0]]])
    """

    def __call__(self, pic: Any) -> Tensor:
        if not isinstance(pic, np.ndarray):
            raise DataError("ToTensor", f"expected a NumPy image of shape (H, W, C) or (H, W), "
                            f"got {type(pic).__name__}")
        if pic.ndim not in (2, 3):
            raise DataError("ToTensor", f"expected an image of shape (H, W, C) or (H, W), "
                            f"got shape {pic.shape}")
        chw = pic[None] if pic.ndim == 2 else pic.transpose(2, 0, 1)
        if pic.dtype != np.uint8:
            return from_numpy(np.ascontiguousarray(chw))
        out = chw.astype(np.float32, order="C")
        out /= np.float32(255)
        return from_numpy(out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize:
    """``(x - mean[c]) / std[c]`` for each channel c of a ``(..., C, H, W)`` floating image.

    Args:
        mean: one mean per channel.
        std: one standard deviation per channel (non-zero).
        inplace: write into the input array.

    Example:
        >>> import ember
        >>> Normalize([0.5], [0.5])(ember.ones(1, 1, 2)).tolist()
        [[[1.0, 1.0]]]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean, self.std, self.inplace = list(np.ravel(mean)), list(np.ravel(std)), inplace
        if any(s == 0 for s in self.std):
            raise DataError("Normalize", f"std evaluated to zero after conversion, leading to division by "
                            f"zero: std={self.std}")
        self._by_dtype: dict[np.dtype, tuple[np.ndarray, np.ndarray]] = {}

    def _constants(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """mean and std as (C, 1, 1) arrays of the image's dtype (made once per dtype)."""
        if dtype not in self._by_dtype:
            mean, std = (np.asarray(v, dtype=dtype).reshape(-1, 1, 1) for v in (self.mean, self.std))
            self._by_dtype[dtype] = mean, std
        return self._by_dtype[dtype]

    def __call__(self, img: Any) -> Any:
        arr, was_tensor = _unwrap(img, "Normalize")
        if arr.ndim < 3 or arr.dtype.kind != "f":
            raise DataError("Normalize", f"expected a floating image of shape (..., C, H, W), got shape "
                            f"{arr.shape} and dtype {arr.dtype}")
        channels = arr.shape[-3]
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise DataError("Normalize", f"mean and std need 1 or {channels} values for an image of shape "
                            f"{arr.shape}, got {len(self.mean)} and {len(self.std)}")
        mean, std = self._constants(arr.dtype)
        out = np.subtract(arr, mean, out=arr if self.inplace else None)
        np.divide(out, std, out=out)
        return _wrap(out, was_tensor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class Pad:
    """Pad the last two dimensions of an image.

    Args:
        padding: an int (all sides), (left/right, top/bottom), or (left, top, right, bottom).
        fill: the value for ``padding_mode="constant"`` (a number, or one per channel).
        padding_mode: "constant", "edge", "reflect" or "symmetric" (as torchvision).

    Example:
        >>> import numpy as np
        >>> Pad(1)(np.ones((1, 1, 1))).shape
        (1, 3, 3)
    """

    def __init__(self, padding: int | Sequence[int], fill: Any = 0, padding_mode: str = "constant"):
        self.padding = _padding(padding, "Pad")
        if padding_mode not in _PAD_MODES:
            raise DataError("Pad", f"padding_mode must be one of {sorted(_PAD_MODES)}, got {padding_mode!r}")
        self.fill, self.padding_mode = fill, padding_mode

    def __call__(self, img: Any) -> Any:
        arr, was_tensor = _unwrap(img, "Pad")
        _check_image(arr, "Pad")
        pl, pt, pr, pb = self.padding
        h, w = arr.shape[-2:]
        out = _pad_crop(arr, self.padding, 0, 0, h + pt + pb, w + pl + pr, self.fill, self.padding_mode)
        return _wrap(out, was_tensor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(padding={self.padding}, fill={self.fill}, mode={self.padding_mode})"


class RandomCrop:
    """Crop a random ``size`` window of an image, after optional padding.

    Args:
        size: the output (height, width), or one int for a square.
        padding: pad first: an int, (left/right, top/bottom) or (left, top, right, bottom).
        pad_if_needed: pad an image smaller than `size` on both sides of that dimension.
        fill: the value for constant padding (a number, or one per channel).
        padding_mode: "constant", "edge", "reflect" or "symmetric".
        generator: the ember Generator to draw from (default: ember's default generator).

    The window's top row and left column are ``floor(u * (H - h + 1))`` and ``floor(u * (W - w + 1))``
    for two uniforms u (no draw when the padded image has exactly the output size).

    Example:
        >>> import numpy as np
        >>> RandomCrop(2, padding=1)(np.ones((3, 2, 2), dtype=np.float32)).shape
        (3, 2, 2)
    """

    def __init__(self, size: int | Sequence[int], padding: int | Sequence[int] | None = None,
                 pad_if_needed: bool = False, fill: Any = 0, padding_mode: str = "constant", *,
                 generator: Generator | None = None):
        self.size = _pair(size, "RandomCrop")
        self.padding = None if padding is None else _padding(padding, "RandomCrop")
        if padding_mode not in _PAD_MODES:
            raise DataError("RandomCrop", f"padding_mode must be one of {sorted(_PAD_MODES)}, "
                            f"got {padding_mode!r}")
        self.pad_if_needed, self.fill, self.padding_mode = pad_if_needed, fill, padding_mode
        self.generator = generator

    def _total_padding(self, h: int, w: int) -> tuple[int, int, int, int]:
        pl, pt, pr, pb = self.padding or (0, 0, 0, 0)
        th, tw = self.size
        if self.pad_if_needed and w + pl + pr < tw:
            extra = tw - (w + pl + pr)
            pl, pr = pl + extra, pr + extra
        if self.pad_if_needed and h + pt + pb < th:
            extra = th - (h + pt + pb)
            pt, pb = pt + extra, pb + extra
        return pl, pt, pr, pb

    def __call__(self, img: Any) -> Any:
        arr, was_tensor = _unwrap(img, "RandomCrop")
        _check_image(arr, "RandomCrop")
        pad = self._total_padding(*arr.shape[-2:])
        h, w = arr.shape[-2] + pad[1] + pad[3], arr.shape[-1] + pad[0] + pad[2]
        th, tw = self.size
        if h < th or w < tw:
            raise DataError("RandomCrop", f"required crop size {(th, tw)} is larger than the (padded) input "
                            f"image size {(h, w)}")
        top, left = (0, 0) if (h, w) == (th, tw) else \
            (randint(h - th + 1, self.generator), randint(w - tw + 1, self.generator))
        return _wrap(_pad_crop(arr, pad, top, left, th, tw, self.fill, self.padding_mode), was_tensor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class CenterCrop:
    """Crop the central ``size`` window (padding with zeros where the image is smaller).

    Example:
        >>> import numpy as np
        >>> CenterCrop(1)(np.arange(9.0).reshape(1, 3, 3)).tolist()
        [[[4.0]]]
    """

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size, "CenterCrop")

    def __call__(self, img: Any) -> Any:
        arr, was_tensor = _unwrap(img, "CenterCrop")
        _check_image(arr, "CenterCrop")
        (h, w), (th, tw) = arr.shape[-2:], self.size
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
        pt, pl = max(-top, 0), max(-left, 0)
        pad = (pl, pt, max(tw - w - pl, 0), max(th - h - pt, 0))
        return _wrap(_pad_crop(arr, pad, top + pt, left + pl, th, tw, 0, "constant"), was_tensor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class _RandomFlip:
    axis = -1

    def __init__(self, p: float = 0.5, *, generator: Generator | None = None):
        if not 0 <= p <= 1 or math.isnan(p):
            raise DataError(type(self).__name__, f"p must be a probability in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def __call__(self, img: Any) -> Any:
        arr, was_tensor = _unwrap(img, type(self).__name__)
        _check_image(arr, type(self).__name__)
        if uniform(self.generator) < self.p:
            return _wrap(np.flip(arr, axis=self.axis), was_tensor)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror an image left-right (the last axis) with probability `p` (one uniform per call).

    Example:
        >>> import numpy as np
        >>> RandomHorizontalFlip(p=1.0)(np.array([[[1, 2, 3]]])).tolist()
        [[[3, 2, 1]]]
    """

    axis = -1


class RandomVerticalFlip(_RandomFlip):
    """Mirror an image top-bottom (the second-to-last axis) with probability `p`.

    Example:
        >>> import numpy as np
        >>> RandomVerticalFlip(p=1.0)(np.array([[[1], [2]]])).tolist()
        [[[2], [1]]]
    """

    axis = -2
