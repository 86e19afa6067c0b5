"""Counter-based random numbers (Philox4x32-10), generators and sampling.

Every draw is a pure function of ``(seed, offset)``: a :class:`Generator` holds a seed and a counter
offset; a draw reads the Philox blocks ``offset, offset + 1, …`` and advances the offset past them.
The bits come from plain uint32/uint64 integer arithmetic written against the array module ``xp``, so
NumPy and CuPy produce the same streams, and the numbers depend only on the seed and the sequence of
draws. Uniform, integer and permutation samples are bit-identical everywhere; normal and exponential
samples apply float64 ``log``/``cos``/``sin`` and so can differ in the last place between backends.

Sampling goes through two primitives: ``random_sample`` (no tensor inputs; a table of distributions
maps Philox words to values) and ``multinomial`` (reads a tensor of weights). Neither has gradient or
batching rules; ``normal`` with tensor mean/std is ``mean + std * eps`` written with ember ops, so it
is differentiable with respect to both.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ..backends import CPU
from . import dtypes, effects
from .creation import tensor
from .device import Device, as_device
from .dispatch import bind
from .errors import DeviceError, DTypeError, EmberError, ShapeError, TraceError
from .primitive import Primitive
from .primitives.elementwise import add, convert, ge, lt, mul
from .primitives.movement import broadcast_shapes
from .tensor import Tensor, Tracer

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state", "rand", "rand_like", "randn", "randn_like", "randint", "randint_like", "normal",
           "bernoulli", "multinomial", "randperm"]

# -- Philox4x32-10 ----------------------------------------------------------------------------------------
_M0, _M1 = 0xD2511F53, 0xCD9E8D57   # round multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85   # Weyl key increments (golden ratio, sqrt(3) - 1)
_MASK32 = 0xFFFFFFFF
_DEFAULT_SEED = 67280421310721      # PyTorch's default seed, so a fresh process starts deterministic


def philox4x32(xp: Any, counter: Sequence[Any], key: tuple[int, int], rounds: int = 10) -> tuple:
    """The Philox4x32 block function applied elementwise to arrays of counters.

    Args:
        xp: the array module (NumPy or CuPy).
        counter: four uint32 arrays of one shape: the words of each 128-bit counter, low word first.
        key: the two 32-bit key words.
        rounds: number of rounds (10 for Philox4x32-10).

    Returns:
        Four uint32 arrays: the words of each output block.

    Example:
        >>> import numpy as np
        >>> zero = np.zeros(1, dtype=np.uint32)
        >>> hex(int(philox4x32(np, (zero, zero, zero, zero), (0, 0))[0][0]))
        '0x6627e8d5'
    """
    c0, c1, c2, c3 = (xp.asarray(c, dtype=xp.uint32) for c in counter)
    k0, k1 = key[0] & _MASK32, key[1] & _MASK32
    m0, m1, shift, low = xp.uint64(_M0), xp.uint64(_M1), xp.uint64(32), xp.uint64(_MASK32)
    for _ in range(rounds):  # a loop over rounds; each round is vectorised over all counters
        p0 = c0.astype(xp.uint64) * m0
        p1 = c2.astype(xp.uint64) * m1
        hi0, lo0 = (p0 >> shift).astype(xp.uint32), (p0 & low).astype(xp.uint32)
        hi1, lo1 = (p1 >> shift).astype(xp.uint32), (p1 & low).astype(xp.uint32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ xp.uint32(k0), lo1, hi0 ^ c3 ^ xp.uint32(k1), lo0
        k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


def philox_words(xp: Any, seed: int, offset: int, count: int) -> Any:
    """`count` uint32 words from blocks ``offset, offset + 1, …`` of the Philox stream keyed by `seed`.

    Block ``i`` uses the 128-bit counter ``(i mod 2**32, i >> 32, 0, 0)`` and the key
    ``(seed mod 2**32, seed >> 32)``; its four output words follow one another in the result.
    """
    blocks = -(-count // 4)
    index = xp.arange(blocks, dtype=xp.uint64) + xp.uint64(offset)
    c0 = (index & xp.uint64(_MASK32)).astype(xp.uint32)
    c1 = (index >> xp.uint64(32)).astype(xp.uint32)
    zero = xp.zeros(blocks, dtype=xp.uint32)
    words = philox4x32(xp, (c0, c1, zero, zero), (seed & _MASK32, (seed >> 32) & _MASK32))
    return xp.stack(words, axis=-1).reshape(-1)[:count]


# -- words -> values: one record per distribution ----------------------------------------------------------
_MANTISSA = {dtypes.float16: 11, dtypes.bfloat16: 8, dtypes.float32: 24, dtypes.float64: 53}


def _unit(xp: Any, w: Any, bits: int) -> Any:
    """Floats in [0, 1) on a grid of 2**-bits: from the top bits of one word, or of two for 53 bits."""
    if bits <= 32:
        return (w[:, 0] >> xp.uint32(32 - bits)).astype(xp.float64) * (2.0 ** -bits)
    both = (w[:, 0].astype(xp.uint64) << xp.uint64(32)) | w[:, 1].astype(xp.uint64)
    return (both >> xp.uint64(11)).astype(xp.float64) * (2.0 ** -53)


def _uniform(xp, w, dtype, low, high):
    u = _unit(xp, w, _MANTISSA[dtype])
    return u if (low, high) == (0.0, 1.0) else low + (high - low) * u


def _normal(xp, w, dtype, mean, std):
    # Box-Muller on two 53-bit uniforms; 1 - u lies in (0, 1], so the log is finite.
    radius = xp.sqrt(-2.0 * xp.log(1.0 - _unit(xp, w[:, :2], 53)))
    theta = (2.0 * math.pi) * _unit(xp, w[:, 2:], 53)
    z = xp.stack([radius * xp.cos(theta), radius * xp.sin(theta)], axis=-1)
    return z if (mean, std) == (0.0, 1.0) else mean + std * z


def _exponential(xp, w, dtype, rate):
    return -xp.log1p(-_unit(xp, w, 53)) / rate


def _integers(xp, w, span: int) -> Any:
    """Integers in [0, span) as int64: one word per value if span <= 2**32, else two."""
    if span <= 2 ** 32:
        return w[:, 0].astype(xp.int64) % span
    both = (w[:, 0].astype(xp.uint64) << xp.uint64(32)) | w[:, 1].astype(xp.uint64)
    return (both % xp.uint64(span)).astype(xp.int64)


def _randint(xp, w, dtype, low, span):
    return _integers(xp, w, span) + low


def _randperm(xp, w, dtype, n):
    keys = (w[:, 0].astype(xp.uint64) << xp.uint64(32)) | w[:, 1].astype(xp.uint64)
    if not n:
        return keys.astype(xp.int64)
    # one permutation per row of n keys (several rows: one per batch element under vmap)
    return xp.argsort(keys.reshape(-1, n), axis=-1, kind="stable").reshape(-1)


class Dist(NamedTuple):
    """How a distribution consumes Philox words: `layout(dtype, *params)` gives (words, values) per
    group, and `fn(xp, words[groups, words], dtype, *params)` gives the values of each group."""

    layout: Callable
    fn: Callable


DISTS = {
    "uniform": Dist(lambda dt, *p: (2, 1) if dt is dtypes.float64 else (1, 1), _uniform),
    "normal": Dist(lambda dt, *p: (4, 2), _normal),
    "exponential": Dist(lambda dt, *p: (2, 1), _exponential),
    "randint": Dist(lambda dt, low, span: (1, 1) if span <= 2 ** 32 else (2, 1), _randint),
    "randperm": Dist(lambda dt, n: (2, 1), _randperm),
}


def _value_count(shape: tuple[int, ...], dtype: dtypes.DType) -> int:
    return math.prod(shape) * (2 if dtype.is_complex else 1)


def blocks_needed(dist: str, shape: tuple[int, ...], dtype: dtypes.DType, params: tuple) -> int:
    """The number of Philox blocks a draw of `dist` with this shape/dtype/params consumes."""
    words, per = DISTS[dist].layout(dtypes.real_for(dtype), *params)
    groups = -(-_value_count(shape, dtype) // per)
    return -(-groups * words // 4)


def _sample_impl(xp, *, shape, dist, dtype, params, seed, offset, words_of=philox_words):
    part = dtypes.real_for(dtype)
    rule = DISTS[dist]
    words, per = rule.layout(part, *params)
    n = _value_count(shape, dtype)
    groups = -(-n // per)
    w = words_of(xp, seed, offset, groups * words).reshape(groups, words)
    values = rule.fn(xp, w, part, *params).reshape(-1)[:n].astype(part.np)
    if dtype.is_complex:
        values = values.reshape(-1, 2).view(dtype.np)
    return values.reshape(shape)


sample_p = Primitive("random_sample", _sample_impl,
                     doc="Values of a distribution from Philox blocks offset.. keyed by seed (no inputs).")


def _cpu_words(xp, seed: int, offset: int, count: int) -> Any:
    """:func:`philox_words` on NumPy, from the backend's generated kernel when it is registered."""
    out = CPU.random_words(seed, offset, count) if CPU.random_words is not None else None
    return out if out is not None else philox_words(xp, seed, offset, count)


def _sample_cpu(*, shape, dist, dtype, params, seed, offset):
    """The CPU kernel of ``random_sample``: uniform float32/float64 values straight from the generated
    Philox kernel, other draws from its words; the same values as the reference."""
    if dist == "uniform" and CPU.random_uniform is not None and dtype in (dtypes.float32, dtypes.float64):
        out = CPU.random_uniform(seed, offset, shape, dtype.np, *params)
        if out is not None:
            return out
    return _sample_impl(np, shape=shape, dist=dist, dtype=dtype, params=params, seed=seed, offset=offset,
                        words_of=_cpu_words)


def _read_state(state: Any, delta: int) -> tuple[int, int]:
    """The seed and the starting block of a draw `delta` blocks past the offset held in `state`."""
    seed, base = (int(v) for v in state.tolist())
    return seed % 2 ** 64, base + delta


def _sample_at_impl(xp, state, *, shape, dist, dtype, params, delta):
    seed, offset = _read_state(state, delta)
    return _sample_impl(xp, shape=shape, dist=dist, dtype=dtype, params=params, seed=seed, offset=offset)


def _sample_at_cpu(state, *, shape, dist, dtype, params, delta):
    seed, offset = _read_state(state, delta)
    return _sample_cpu(shape=shape, dist=dist, dtype=dtype, params=params, seed=seed, offset=offset)


sample_at_p = Primitive("random_sample_at", _sample_at_impl, nondiff_inputs=(0,),
                        doc="random_sample with the seed and base offset read from an int64 [seed, offset] "
                            "operand, starting `delta` blocks past that offset (draws inside ember.jit).")


def _multinomial_impl(xp, probs, *, num_samples, replacement, seed, offset, words_of=philox_words):
    k = probs.shape[-1]
    p = probs.astype(xp.float64).reshape(-1, k)
    rows = p.shape[0]
    count = rows * (num_samples if replacement else k)
    u = _unit(xp, words_of(xp, seed, offset, 2 * count).reshape(count, 2), 53)
    u = u.reshape(rows, num_samples if replacement else k)
    if replacement:
        out = _inverse_cdf(xp, p, u)
    else:  # exponential race (Gumbel top-k): the first num_samples of E_j / p_j in increasing order
        positive = p > 0
        keys = xp.where(positive, -xp.log1p(-u) / xp.where(positive, p, 1.0), xp.inf)
        out = xp.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    return out.astype(xp.int64).reshape(tuple(probs.shape[:-1]) + (num_samples,))


def _inverse_cdf(xp, p, u):
    """Category of each uniform in `u` (rows × samples) under the row weights `p`, by one searchsorted:
    row i's normalised CDF is shifted by i so that all rows form one increasing sequence."""
    rows, k = p.shape
    shift = xp.arange(rows, dtype=xp.float64)[:, None]
    cdf = xp.cumsum(p, axis=1)
    cdf = cdf / cdf[:, -1:] + shift
    idx = xp.searchsorted(cdf.reshape(-1), (u + shift).reshape(-1), side="right").reshape(u.shape)
    last = k - 1 - xp.argmax(p[:, ::-1] > 0, axis=1)  # rounding must never pick a zero-weight tail
    return xp.minimum(idx - (shift.astype(xp.int64) * k), last[:, None])


multinomial_p = Primitive("multinomial", _multinomial_impl, nondiff_inputs=(0,),
                          doc="Category indices drawn from rows of non-negative weights.")


def _multinomial_at_impl(xp, probs, state, *, num_samples, replacement, delta, words_of=philox_words):
    # the weights of a compiled call are only known when it runs: checked here, as multinomial checks them
    _check_weight_values(probs.get() if hasattr(probs, "get") else probs, num_samples, replacement)
    seed, offset = _read_state(state, delta)
    return _multinomial_impl(xp, probs, num_samples=num_samples, replacement=replacement, seed=seed,
                             offset=offset, words_of=words_of)


multinomial_at_p = Primitive("multinomial_at", _multinomial_at_impl, nondiff_inputs=(0, 1),
                             doc="multinomial with the seed and base offset read from an int64 operand "
                                 "(draws inside ember.jit).")


# -- generators ------------------------------------------------------------------------------------------
def _check_seed(value: Any, op: str) -> int:
    try:
        s = int(value)
    except (TypeError, ValueError):
        raise DTypeError(op, f"expected an integer seed, got {type(value).__name__}") from None
    if not -2 ** 63 <= s < 2 ** 64:
        raise EmberError(op, f"seed must be in [-2**63, 2**64), got {s}")
    return s % 2 ** 64


def _entropy_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 1


class Generator:
    """A source of random numbers: a seed and a counter offset into the Philox stream.

    Draws depend only on the seed and the sequence of draws made from this generator, and are the
    same on every backend. Pass it as ``generator=`` to the sampling functions.

    Args:
        device: the device whose tensors this generator fills (default "cpu").

    Example:
        >>> import ember
        >>> g = ember.Generator().manual_seed(0)
        >>> a = ember.rand(3, generator=g)
        >>> b = ember.rand(3, generator=g.manual_seed(0))
        >>> a.tolist() == b.tolist()
        True
    """

    def __init__(self, device: str | Device = "cpu"):
        self.device = as_device(device)
        self._seed = _DEFAULT_SEED
        self._offset = 0
        self._replay: Tensor | None = None

    def manual_seed(self, seed: int) -> "Generator":
        """Set the seed (any integer in [-2**63, 2**64)) and rewind the offset to 0; returns self."""
        before = (self._seed, self._offset)
        self._seed = _check_seed(seed, "manual_seed")
        self._offset = 0
        effects.note_seed(self, before)
        return self

    def seed(self) -> int:
        """Seed from the operating system's entropy source; returns the new seed."""
        new = _entropy_seed()
        self.manual_seed(new)
        return new

    def initial_seed(self) -> int:
        """The seed this generator was last seeded with (as a non-negative integer)."""
        return self._seed

    def get_state(self) -> Tensor:
        """The state as an int64 tensor ``[seed, offset]`` (the seed's 64 bits read as signed)."""
        signed = self._seed - 2 ** 64 if self._seed >= 2 ** 63 else self._seed
        return tensor([signed, self._offset], dtype=dtypes.int64)

    def set_state(self, state: Tensor) -> "Generator":
        """Restore a state returned by :meth:`get_state`; returns self."""
        if not isinstance(state, Tensor) or state.dtype is not dtypes.int64 or tuple(state.shape) != (2,):
            detail = "expected an int64 tensor of shape (2,) holding [seed, offset]"
            raise EmberError("set_state", detail, (state,) if isinstance(state, Tensor) else ())
        seed_value, offset = (int(v) for v in state.tolist())
        if offset < 0:
            raise EmberError("set_state", f"the offset must be non-negative, got {offset}", (state,))
        before = (self._seed, self._offset)
        self._seed, self._offset = seed_value % 2 ** 64, offset
        # the same seed: a rewind to a state read earlier (activation checkpointing replays its draws)
        if self._seed != before[0]:
            effects.note_seed(self, before)
        return self

    def _replay_state(self, offset: int | None = None) -> Tensor:
        """The int64 tensor ``[seed, offset]`` that compiled graphs read this generator's state from,
        set to the current state (or to `offset` in place of the current offset). It is one tensor for
        the generator's lifetime (a graph holds it as a constant read at run time), refreshed in place
        before each run."""
        if self._replay is None:
            self._replay = Tensor._make(self.device.backend.asarray([0, 0], dtypes.int64), dtypes.int64,
                                        self.device)
        data = self._replay._data
        data[0] = self._seed - 2 ** 64 if self._seed >= 2 ** 63 else self._seed
        data[1] = self._offset if offset is None else offset
        return self._replay

    def _advance(self, blocks: int) -> int:
        """Reserve `blocks` counter blocks; returns the offset where they start."""
        start = self._offset
        self._offset += blocks
        return start

    def __repr__(self) -> str:
        return f"<ember.Generator device={self.device} seed={self._seed} offset={self._offset}>"


default_generator = Generator()
_DEFAULTS: dict[Device, Generator] = {default_generator.device: default_generator}


def _default_for(device: Device) -> Generator:
    gen = _DEFAULTS.get(device)
    if gen is None:
        gen = _DEFAULTS[device] = Generator(device).manual_seed(default_generator.initial_seed())
    return gen


def manual_seed(seed: int) -> Generator:
    """Seed the default generator of every device; returns the CPU default generator.

    Example:
        >>> import ember
        >>> _ = ember.manual_seed(1)
        >>> a = ember.randn(2)
        >>> _ = ember.manual_seed(1)
        >>> a.tolist() == ember.randn(2).tolist()
        True
    """
    value = _check_seed(seed, "manual_seed")
    for gen in _DEFAULTS.values():
        gen.manual_seed(value)
    return default_generator


def seed() -> int:
    """Seed every default generator from the operating system's entropy; returns the seed."""
    value = _entropy_seed()
    manual_seed(value)
    return value


def initial_seed() -> int:
    """The seed of the default CPU generator."""
    return default_generator.initial_seed()


def get_rng_state() -> Tensor:
    """The default CPU generator's state, an int64 tensor ``[seed, offset]``."""
    return default_generator.get_state()


def set_rng_state(new_state: Tensor) -> None:
    """Restore the default CPU generator's state from :func:`get_rng_state`."""
    default_generator.set_state(new_state)


# -- drawing ---------------------------------------------------------------------------------------------
def _size(size: tuple, op: str) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        shape = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise ShapeError(op, f"expected a size made of integers, got {size!r}") from None
    if any(s < 0 for s in shape):
        raise ShapeError(op, f"negative dimensions are not allowed, got size {shape}")
    return shape


def _generator(generator: Generator | None, device: Any, op: str) -> tuple[Generator, Device]:
    if generator is not None and not isinstance(generator, Generator):
        raise EmberError(op, f"generator must be an ember.Generator, got {type(generator).__name__}")
    dev = as_device(device) if device is not None else generator.device if generator is not None else \
        as_device(None)
    gen = generator if generator is not None else _default_for(dev)
    if gen.device != dev:
        raise DeviceError(op, f"the generator is for device {gen.device} but the output is on {dev}")
    return gen, dev


def _draw(dist: str, shape: tuple[int, ...], dtype: dtypes.DType, params: tuple, generator, device,
          op: str) -> Tensor:
    """Consume the blocks this draw needs from the generator and bind the sampling primitive."""
    gen, dev = _generator(generator, device, op)
    batched = effects.batch_draws()  # under vmap(randomness="different"): one draw per batch element
    shape = tuple(t.size for t in batched) + tuple(shape)
    offset = gen._advance(blocks_needed(dist, shape, dtype, params))
    replay = effects.random_state(gen, offset)
    if replay is not None:  # under ember.jit: the graph reads the generator's state when it runs
        state, delta = replay
        out = bind(sample_at_p, state, shape=shape, dist=dist, dtype=dtype, params=params, delta=delta)
    else:
        out = bind(sample_p, shape=shape, dist=dist, dtype=dtype, params=params, seed=gen._seed,
                   offset=offset, device=dev)
    return effects.batched_draw(out, batched) if batched else out


def _float_dtype(dtype: Any, op: str, complex_ok: bool = False) -> dtypes.DType:
    dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    if not (dt.is_floating_point or (complex_ok and dt.is_complex)):
        raise DTypeError(op, f"expected a floating{' or complex' if complex_ok else ''} dtype, got {dt}")
    return dt


def _finish(t: Tensor, requires_grad: bool) -> Tensor:
    return t.requires_grad_(True) if requires_grad else t


def rand(*size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1).

    float32 values use the top 24 bits of a word, float64 the top 53 bits of two; complex dtypes draw
    each component uniformly.

    Args:
        size: the shape, as integers or one sequence.
        generator: the generator to draw from (default: the device's default generator).
        dtype: a floating or complex dtype (default: the default float dtype).
        device: where the result lives.
        requires_grad: make the result a leaf that requires grad.

    Returns:
        A tensor of shape `size`.

    Example:
        >>> import ember
        >>> x = ember.rand(2, 3, generator=ember.Generator().manual_seed(0))
        >>> x.shape, bool(((x >= 0) & (x < 1)).all())
        ((2, 3), True)
    """
    dt = _float_dtype(dtype, "rand", complex_ok=True)
    shape = _size(size, "rand")
    return _finish(_draw("uniform", shape, dt, (0.0, 1.0), generator, device, "rand"), requires_grad)


def rand_like(input: Tensor, *, generator: Generator | None = None, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) shaped like `input` (its dtype and device unless given).

    Example:
        >>> import ember
        >>> ember.rand_like(ember.zeros(2, dtype=ember.float64)).dtype
        ember.float64
    """
    return rand(tuple(input.shape), generator=generator, dtype=dtype or input.dtype,
                device=device or input.device, requires_grad=requires_grad)


def randn(*size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal samples, by the Box-Muller transform of 53-bit uniforms in float64.

    The numbers do not depend on the dtype beyond the final rounding: ``randn(n, dtype=float32)``
    equals ``randn(n, dtype=float64)`` cast to float32 for the same generator state. Complex dtypes
    draw each component with variance 1/2.

    Args and Returns: as :func:`rand`.

    Example:
        >>> import ember
        >>> ember.randn(4, generator=ember.Generator().manual_seed(0)).shape
        (4,)
    """
    dt = _float_dtype(dtype, "randn", complex_ok=True)
    shape = _size(size, "randn")
    std = math.sqrt(0.5) if dt.is_complex else 1.0
    return _finish(_draw("normal", shape, dt, (0.0, std), generator, device, "randn"), requires_grad)


def randn_like(input: Tensor, *, generator: Generator | None = None, dtype: Any = None, device: Any = None,
               requires_grad: bool = False) -> Tensor:
    """Standard normal samples shaped like `input` (its dtype and device unless given).

    Example:
        >>> import ember
        >>> ember.randn_like(ember.zeros(2, 2)).shape
        (2, 2)
    """
    return randn(tuple(input.shape), generator=generator, dtype=dtype or input.dtype,
                 device=device or input.device, requires_grad=requires_grad)


def _int_bounds(dt: dtypes.DType) -> tuple[int, int]:
    """The inclusive range of integers a dtype holds exactly."""
    if dt is dtypes.bool_:
        return 0, 1
    if dt.kind == dtypes._INT:
        info = np.iinfo(dt.np)
        return int(info.min), int(info.max)
    bits = _MANTISSA[dtypes.real_for(dt)]
    return -2 ** bits, 2 ** bits


def _check_range(low: int, high: int, dt: dtypes.DType, op: str) -> None:
    if low >= high:
        raise EmberError(op, f"expected low < high, got low={low} and high={high}")
    lo, hi = _int_bounds(dt)
    if low < lo or high - 1 > hi:
        raise EmberError(op, f"the range [{low}, {high}) does not fit dtype {dt} (values {lo}..{hi})")


def _draw_int(low: int, high: int, shape: tuple[int, ...], dt: dtypes.DType, generator, device,
              op: str) -> Tensor:
    _check_range(low, high, dt, op)
    return _draw("randint", shape, dt, (low, high - low), generator, device, op)


def _bounds(args: tuple, op: str) -> tuple[int, int]:
    if len(args) not in (1, 2):
        raise EmberError(op, f"expected (high) or (low, high), got {len(args)} bounds")
    low, high = (0, args[0]) if len(args) == 1 else args
    try:
        return int(low), int(high)
    except (TypeError, ValueError):
        raise DTypeError(op, f"bounds must be integers, got low={low!r} and high={high!r}") from None


def randint(*args: Any, size: Any = None, generator: Generator | None = None, dtype: Any = None,
            device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform integers in [low, high): ``randint(high, size)`` or ``randint(low, high, size)``.

    Ranges up to 2**32 use one 32-bit word per value (by modulo, as PyTorch), wider ranges two.

    Args:
        args: ``high, size`` or ``low, high, size`` (size may also be given by keyword).
        generator: the generator to draw from.
        dtype: the result dtype (default int64); the range must fit it.
        device: where the result lives.
        requires_grad: only valid for floating dtypes.

    Returns:
        A tensor of shape `size`.

    Example:
        >>> import ember
        >>> x = ember.randint(3, 7, (100,), generator=ember.Generator().manual_seed(0))
        >>> sorted(set(x.tolist()))
        [3, 4, 5, 6]
    """
    if size is None:
        if not args or not isinstance(args[-1], (tuple, list)):
            raise EmberError("randint", "expected a size: randint(high, size) or randint(low, high, size)")
        args, size = args[:-1], args[-1]
    low, high = _bounds(args, "randint")
    dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.int64
    shape = _size((size,), "randint")
    return _finish(_draw_int(low, high, shape, dt, generator, device, "randint"), requires_grad)


def randint_like(input: Tensor, *args: Any, generator: Generator | None = None, dtype: Any = None,
                 device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform integers in [low, high) shaped like `input`: ``randint_like(x, high)`` or
    ``randint_like(x, low, high)``; the dtype and device default to `input`'s.

    Example:
        >>> import ember
        >>> ember.randint_like(ember.zeros(3, dtype=ember.int32), 10).dtype
        ember.int32
    """
    low, high = _bounds(args, "randint_like")
    dt = dtypes.as_dtype(dtype) if dtype is not None else input.dtype
    t = _draw_int(low, high, tuple(input.shape), dt, generator, device or input.device, "randint_like")
    return _finish(t, requires_grad)


def _check_values(t: Tensor, op: str, low: float, high: float, what: str) -> None:
    """Raise unless every element of a concrete tensor lies in [low, high]."""
    if isinstance(t, Tracer):
        return  # values under a transform are not concrete
    data = np.asarray(t._device.backend.to_numpy(t._data))
    if data.size and not ((data >= low) & (data <= high)).all():
        raise EmberError(op, f"expected all elements of {what}", (t,))


def normal(mean: Any = 0.0, std: Any = 1.0, size: Any = None, *, generator: Generator | None = None,
           dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Normal samples with the given mean and standard deviation.

    With a tensor `mean` and/or `std` the result has their broadcast shape and dtype and is
    ``mean + std * eps`` with ``eps = randn(...)``, differentiable with respect to both. With two
    numbers, `size` gives the shape.

    Args:
        mean: a number or a floating tensor.
        std: a number or a floating tensor (non-negative).
        size: the shape when `mean` and `std` are numbers.
        generator: the generator to draw from.
        dtype, device, requires_grad: for the number form, as in :func:`randn`.

    Returns:
        The samples.

    Example:
        >>> import ember
        >>> m = ember.zeros(3, requires_grad=True)
        >>> ember.normal(m, 2.0).sum().backward()
        >>> m.grad.tolist()
        [1.0, 1.0, 1.0]
    """
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if not tensors:
        if size is None:
            raise EmberError("normal", "give a size when mean and std are numbers")
        if std < 0:
            raise EmberError("normal", f"expected std >= 0, got {std}")
        dt = _float_dtype(dtype, "normal")
        shape = _size((size,), "normal")
        params = (float(mean), float(std))
        return _finish(_draw("normal", shape, dt, params, generator, device, "normal"), requires_grad)
    if size is not None:
        raise EmberError("normal", "size can only be given when mean and std are numbers", tuple(tensors))
    dt = dtypes.result_type(mean, std)
    if not dt.is_floating_point:
        raise DTypeError("normal", f"expected floating mean/std, got {dt}", tuple(tensors))
    shape = broadcast_shapes(*(t.shape for t in tensors), op="normal", operands=tuple(tensors))
    if isinstance(std, Tensor):
        _check_values(std, "normal", 0.0, math.inf, "std >= 0")
    elif std < 0:
        raise EmberError("normal", f"expected std >= 0, got {std}", tuple(tensors))
    eps = randn(shape, generator=generator, dtype=dt, device=tensors[0].device)
    return add(mean, mul(std, eps))


def _probabilities(p: Any, op: str) -> None:
    if isinstance(p, Tensor):
        if not p.dtype.is_floating_point:
            raise DTypeError(op, f"expected floating probabilities, got {p.dtype}", (p,))
        _check_values(p, op, 0.0, 1.0, "p in [0, 1]")
    elif not 0 <= p <= 1:
        raise EmberError(op, f"expected a probability in [0, 1], got {p}")


def bernoulli(input: Tensor, p: float | None = None, *, generator: Generator | None = None) -> Tensor:
    """Draw 0 or 1 with probability of 1 given by `input` (or by the number `p`, shaped like `input`).

    Compares 53-bit uniforms with the probabilities, so small probabilities stay accurate.

    Args:
        input: probabilities in [0, 1] (a floating tensor), or only the shape and dtype when `p` is given.
        p: one probability for every element.
        generator: the generator to draw from.

    Returns:
        A tensor of zeros and ones with `input`'s shape and dtype.

    Example:
        >>> import ember
        >>> ember.bernoulli(ember.tensor([0.0, 1.0])).tolist()
        [0.0, 1.0]
    """
    probs = input if p is None else p
    _probabilities(probs, "bernoulli")
    u = rand(tuple(input.shape), generator=generator, dtype=dtypes.float64, device=input.device)
    return convert(lt(u, probs), input.dtype)


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,
                generator: Generator | None = None) -> Tensor:
    """Category indices drawn from each row of non-negative weights (which need not sum to one).

    With replacement each sample inverts the row's CDF; without, the categories are ranked by an
    exponential race (equivalently Gumbel top-k), which draws them one after another in proportion
    to the remaining weights.

    Args:
        input: weights of shape (categories,) or (rows, categories).
        num_samples: samples per row (at most the number of non-zero weights without replacement).
        replacement: draw with replacement.
        generator: the generator to draw from.

    Returns:
        An int64 tensor of shape (num_samples,) or (rows, num_samples).

    Example:
        >>> import ember
        >>> ember.multinomial(ember.tensor([0.0, 1.0, 0.0]), 2, replacement=True).tolist()
        [1, 1]
    """
    _check_weights(input, int(num_samples), bool(replacement))
    if effects.batch_draws():
        raise TraceError("multinomial", "randomness='different' under vmap is not supported for "
                         "multinomial; draw outside vmap, or use randomness='same'", (input,))
    gen, dev = _generator(generator, input.device, "multinomial")
    rows = input.numel() // input.shape[-1]
    count = rows * (num_samples if replacement else input.shape[-1])
    offset = gen._advance(-(-2 * count // 4))
    replay = effects.random_state(gen, offset)
    if replay is not None:
        state, delta = replay
        return bind(multinomial_at_p, input, state, num_samples=int(num_samples),
                    replacement=bool(replacement), delta=delta)
    return bind(multinomial_p, input, num_samples=int(num_samples), replacement=bool(replacement),
                seed=gen._seed, offset=offset)


def _check_weights(input: Tensor, num_samples: int, replacement: bool) -> None:
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ShapeError("multinomial", "expected weights of shape (categories,) or (rows, categories) "
                         "with at least one category", (input,))
    if not input.dtype.is_floating_point:
        raise DTypeError("multinomial", f"expected floating weights, got {input.dtype}", (input,))
    if num_samples <= 0:
        raise EmberError("multinomial", f"num_samples must be positive, got {num_samples}", (input,))
    if isinstance(input, Tracer):
        if input._trace is effects.recorder():  # traced by ember.jit: the kernel checks every run's values
            return
        raise TraceError("multinomial", "sampling from transformed weights is not supported", (input,))
    _check_weight_values(input._device.backend.to_numpy(input._data), num_samples, replacement, (input,))


def _check_weight_values(weights: Any, num_samples: int, replacement: bool, operands: tuple = ()) -> None:
    w = np.asarray(weights, dtype=np.float64).reshape(-1, weights.shape[-1])
    if not np.isfinite(w).all() or (w < 0).any():
        raise EmberError("multinomial", "weights must be finite and non-negative", operands)
    nonzero = (w > 0).sum(axis=1)
    if (nonzero == 0).any():
        raise EmberError("multinomial", "every row of weights needs a positive sum", operands)
    if not replacement and (nonzero < num_samples).any():
        raise EmberError("multinomial", f"cannot draw {num_samples} samples without replacement from rows "
                         f"with only {int(nonzero.min())} non-zero weights", operands)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """A random permutation of ``0 .. n-1``: the stable argsort of 64-bit random keys.

    Example:
        >>> import ember
        >>> sorted(ember.randperm(5).tolist())
        [0, 1, 2, 3, 4]
    """
    n = int(n)
    if n < 0:
        raise EmberError("randperm", f"n must be non-negative, got {n}")
    dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.int64
    if n and _int_bounds(dt)[1] < n - 1:
        raise EmberError("randperm", f"n={n} is too large for dtype {dt}")
    return _finish(_draw("randperm", (n,), dt, (n,), generator, device, "randperm"), requires_grad)


def dropout_mask(shape: Sequence[int], p: float, generator: Generator | None = None, *,
                 device: Any = None) -> Tensor:
    """A boolean keep-mask for dropout: each element is True with probability ``1 - p``.

    Uses 24-bit uniforms (one word per element): an element is kept when its uniform is ``>= p``.

    Args:
        shape: the mask's shape.
        p: the probability of dropping an element, in [0, 1].
        generator: the generator to draw from.
        device: where the mask lives.

    Returns:
        A bool tensor of shape `shape`.

    Example:
        >>> dropout_mask((4,), 0.0).tolist()
        [True, True, True, True]
    """
    if not 0 <= p <= 1:
        raise EmberError("dropout", f"dropout probability has to be between 0 and 1, got {p}")
    u = rand(tuple(shape), generator=generator, dtype=dtypes.float32, device=device)
    return ge(u, p)


# -- in-place fills (nn.init style: no autograd recording) ----------------------------------------------
def _write(x: Tensor, sample: Tensor, op: str) -> Tensor:
    if isinstance(x, Tracer):
        raise TraceError(op, "cannot fill a transformed value in place with random numbers", (x,))
    if effects.write(x, sample):  # traced by ember.jit: the fill happens after each run
        return x
    if isinstance(sample, Tracer):  # one draw per element of a vmap: no single value to write
        raise TraceError(op, "cannot fill a tensor in place with batched random numbers (vmap with "
                         "randomness='different'); draw them with ember.rand and friends instead", (x,))
    flags = getattr(x._data, "flags", None)
    if flags is not None and not getattr(flags, "writeable", True):
        raise EmberError(op, "cannot write into this tensor: it is a read-only (broadcast) view; "
                         "use .clone() first", (x,))
    x._data[...] = sample._data
    x._bump_version()
    return x


def _require_float(x: Tensor, op: str) -> None:
    if not x.dtype.is_floating_point:
        raise DTypeError(op, f"expected a floating tensor, got {x.dtype}", (x,))


def uniform_(self: Tensor, from_: float = 0.0, to: float = 1.0, *,
             generator: Generator | None = None) -> Tensor:
    """Fill with uniform samples in [from_, to) (computed in float64, then rounded to the dtype)."""
    _require_float(self, "uniform_")
    if not from_ <= to:
        raise EmberError("uniform_", f"expected from <= to, got from={from_} and to={to}", (self,))
    sample = _draw("uniform", tuple(self.shape), self.dtype, (float(from_), float(to)), generator,
                   self.device, "uniform_")
    return _write(self, sample, "uniform_")


def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *,
            generator: Generator | None = None) -> Tensor:
    """Fill with normal samples of the given mean and standard deviation."""
    _require_float(self, "normal_")
    if std < 0:
        raise EmberError("normal_", f"expected std >= 0, got {std}", (self,))
    sample = _draw("normal", tuple(self.shape), self.dtype, (float(mean), float(std)), generator,
                   self.device, "normal_")
    return _write(self, sample, "normal_")


def exponential_(self: Tensor, lambd: float = 1.0, *, generator: Generator | None = None) -> Tensor:
    """Fill with exponential samples of rate `lambd` (density ``lambd * exp(-lambd * x)``)."""
    _require_float(self, "exponential_")
    if not lambd > 0:
        raise EmberError("exponential_", f"expected lambd > 0, got {lambd}", (self,))
    sample = _draw("exponential", tuple(self.shape), self.dtype, (float(lambd),), generator, self.device,
                   "exponential_")
    return _write(self, sample, "exponential_")


def bernoulli_(self: Tensor, p: Any = 0.5, *, generator: Generator | None = None) -> Tensor:
    """Fill with 0/1 draws that are 1 with probability `p` (a number or a tensor broadcast to self)."""
    _probabilities(p, "bernoulli_")
    if isinstance(p, Tensor):
        p = p.detach()
        broadcast_shapes(p.shape, self.shape, op="bernoulli_", operands=(self, p))
    u = rand(tuple(self.shape), generator=generator, dtype=dtypes.float64, device=self.device)
    return _write(self, convert(lt(u, p), self.dtype), "bernoulli_")


def random_(self: Tensor, *args: int, generator: Generator | None = None) -> Tensor:
    """Fill with integers: ``random_()`` over all values the dtype holds exactly (for floats
    [0, 2**mantissa]), ``random_(to)`` over [0, to) and ``random_(from, to)`` over [from, to)."""
    if not args:
        low, high = 0, _int_bounds(self.dtype)[1] + 1
    else:
        low, high = _bounds(args, "random_")
    sample = _draw_int(low, high, tuple(self.shape), self.dtype, generator, self.device, "random_")
    return _write(self, sample, "random_")


TENSOR_METHODS = {
    "uniform_": uniform_, "normal_": normal_, "exponential_": exponential_, "bernoulli_": bernoulli_,
    "random_": random_, "bernoulli": bernoulli, "multinomial": multinomial,
}

sample_p.kernels["cpu"] = _sample_cpu
sample_at_p.kernels["cpu"] = _sample_at_cpu
multinomial_p.kernels["cpu"] = lambda probs, **attrs: _multinomial_impl(
    np, probs, **attrs, words_of=_cpu_words)
multinomial_at_p.kernels["cpu"] = lambda probs, state, **attrs: _multinomial_at_impl(
    np, probs, state, **attrs, words_of=_cpu_words)
sample_p.effect = "random"
multinomial_p.effect = "random"
sample_at_p.effect = "random"
multinomial_at_p.effect = "random"
