"""Parameter initialisation, in place and without recording gradients (``ember.nn.init``)."""
from __future__ import annotations

import math

import numpy as np

from .._core.autograd import no_grad
from .._core.errors import ShapeError
from .._core.tensor import Tensor


def _fan(t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ShapeError("init", f"fan in and fan out need at least 2 dimensions, got shape {tuple(t.shape)}",
                         (t,))
    receptive = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (as ``torch.nn.init.calculate_gain``)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity}")


def _fill(t: Tensor, sampler) -> Tensor:
    with no_grad():
        t.copy_(sampler())
    return t


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with U(a, b)."""
    from .. import rand

    return _fill(t, lambda: rand(*t.shape, dtype=t.dtype, generator=generator) * (b - a) + a)


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with N(mean, std²)."""
    from .. import randn

    return _fill(t, lambda: randn(*t.shape, dtype=t.dtype, generator=generator) * std + mean)


def trunc_normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """Fill with N(mean, std²) truncated to [a, b] (by inverse-CDF sampling)."""
    from scipy.special import erf, erfinv

    from .. import rand, tensor

    lo = 0.5 * (1 + erf((a - mean) / (std * math.sqrt(2))))
    hi = 0.5 * (1 + erf((b - mean) / (std * math.sqrt(2))))
    u = rand(*t.shape, dtype=t.dtype, generator=generator).numpy().astype(np.float64)
    values = mean + std * math.sqrt(2) * erfinv(2 * (lo + (hi - lo) * u) - 1)
    return _fill(t, lambda: tensor(np.clip(values, a, b), dtype=t.dtype))


def constant_(t: Tensor, value: float) -> Tensor:
    """Fill with `value`."""
    with no_grad():
        t.fill_(value)
    return t


def zeros_(t: Tensor) -> Tensor:
    """Fill with zeros."""
    return constant_(t, 0.0)


def ones_(t: Tensor) -> Tensor:
    """Fill with ones."""
    return constant_(t, 1.0)


def eye_(t: Tensor) -> Tensor:
    """Fill a 2-d tensor with the identity."""
    from .. import eye

    return _fill(t, lambda: eye(t.shape[0], t.shape[1], dtype=t.dtype))


def xavier_uniform_(t: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot uniform: U(-a, a), a = gain·sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fan(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a, generator)


def xavier_normal_(t: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot normal: N(0, gain²·2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fan(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    fan_in, fan_out = _fan(t)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """He uniform: U(-b, b), b = gain·sqrt(3 / fan)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    """He normal: N(0, (gain / sqrt(fan))²)."""
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), generator)


def orthogonal_(t: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Fill with a (semi-)orthogonal matrix from the QR decomposition of a Gaussian matrix."""
    from .. import randn, tensor

    rows = t.shape[0]
    cols = t.numel() // rows
    flat = randn(rows, cols, dtype="float64", generator=generator).numpy()
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(t, lambda: tensor(gain * q.reshape(t.shape), dtype=t.dtype))
