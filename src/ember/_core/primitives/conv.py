"""Convolution and window-pooling primitives over the trailing spatial dimensions (1-d, 2-d, 3-d).

Convolution is three primitives closed under differentiation, so gradients of any order stay on these
kernels: ``conv`` (the forward product), ``conv_input_grad`` (its transpose in the input, which is also
the transposed convolution) and ``conv_weight_grad`` (its transpose in the weight). Each is bilinear,
and the VJP of each is written with the other two. Kernels use im2col: one strided view of the padded
input with shape ``(N, C, *kernel, *out)``, copied once to a contiguous ``(N, groups, C/g·K, P)`` block,
then one batched matmul for all groups; the input gradient is that matmul transposed followed by a
col2im that adds one strided slice per kernel offset (a loop over kernel offsets, never over batch or
spatial positions).

Pooling primitives work on already padded inputs (the functional layer pads with -inf or zeros) and
treat every dimension before the last ``len(kernel)`` as a batch dimension. Max pooling saves nothing:
its VJP recomputes, per output, the offset of the first maximum in its window (``pool_argmax``) and
scatters the cotangent there (``pool_scatter``, whose transpose is ``pool_gather``). Sum pooling
(``pool_sum``, transposed by ``pool_sum_t``) serves average pooling.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

from .. import dtypes
from ..dispatch import bind
from ..primitive import Primitive
from ..tensor import Tensor

__all__: list[str] = []  # the public functions live in ember.nn.functional

_HALF_NP = (dtypes.float16.np, dtypes.bfloat16.np)


# -- geometry ----------------------------------------------------------------------------------------
def out_length(size: int, kernel: int, stride: int, dilation: int) -> int:
    """Number of window positions along one padded dimension of length `size`."""
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def _offsets(kernel: Sequence[int]):
    return itertools.product(*(range(k) for k in kernel))


def _window(offset, stride, dilation, out_sp) -> tuple:
    """The strided slice of the trailing dims that kernel position `offset` reads for every output."""
    return (Ellipsis,) + tuple(slice(o * d, o * d + s * (m - 1) + 1, s)
                               for o, d, s, m in zip(offset, dilation, stride, out_sp))


def _windows(xp, x, kernel, stride, dilation):
    """A read-only view ``lead + kernel + out`` of `x` (no copy): every window of the trailing dims."""
    nd = len(kernel)
    sp, st = x.shape[-nd:], x.strides[-nd:]
    out_sp = tuple(out_length(n, k, s, d) for n, k, s, d in zip(sp, kernel, stride, dilation))
    shape = x.shape[:-nd] + tuple(kernel) + out_sp
    strides = x.strides[:-nd] + tuple(a * d for a, d in zip(st, dilation)) + \
        tuple(a * s for a, s in zip(st, stride))
    return xp.lib.stride_tricks.as_strided(x, shape, strides, writeable=False), out_sp


def _padded(xp, x, padding):
    """`x` with zeros added around its spatial dims by the (low, high) pairs in `padding`."""
    if all(lo == 0 and hi == 0 for lo, hi in padding):
        return x
    nd = len(padding)
    shape = x.shape[:-nd] + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[-nd:], padding))
    out = xp.zeros(shape, x.dtype)
    out[_crop(x.shape[-nd:], padding)] = x
    return out


def _crop(spatial, padding) -> tuple:
    return (Ellipsis,) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(spatial, padding))


def _im2col(xp, x, kernel, stride, padding, dilation, groups):
    """Windows of `x` (N, C, *S) as a contiguous (groups, C/groups·prod(kernel), N·P) block.

    Channel-and-offset rows by batch-and-position columns: one long product per group covers the
    whole batch (few large BLAS calls instead of one small call per sample).
    """
    view, out_sp = _windows(xp, _padded(xp, x, padding), kernel, stride, dilation)
    nd = len(kernel)
    order = (1,) + tuple(range(2, 2 + nd)) + (0,) + tuple(range(2 + nd, 2 + 2 * nd))
    cols = xp.ascontiguousarray(view.transpose(order))
    return cols.reshape(groups, -1, x.shape[0] * math.prod(out_sp)), out_sp


def _channel_major(xp, g, groups):
    """(N, O, *S) as (groups, O/groups, N·prod(S)); free when `g` is already laid out channel-major."""
    n, channels = g.shape[:2]
    return xp.ascontiguousarray(g.swapaxes(0, 1)).reshape(groups, channels // groups, -1)


def _compute_type(xp, *arrays):
    """Half-precision inputs run in float32 (NumPy's float16 matmul accumulates in float16)."""
    dt = arrays[0].dtype
    if dt in _HALF_NP:
        return [a.astype(xp.float32) for a in arrays], dt
    return list(arrays), dt


# -- kernels -----------------------------------------------------------------------------------------
def _conv_impl(xp, x, w, stride, padding, dilation, groups):
    (x, w), dt = _compute_type(xp, x, w)
    cols, out_sp = _im2col(xp, x, tuple(w.shape[2:]), stride, padding, dilation, groups)
    out = xp.matmul(w.reshape(groups, w.shape[0] // groups, -1), cols)  # (G, O/G, N·P)
    # The (N, O, *S) view of the channel-major product: no transposing copy; the ops that follow
    # (bias, activation) keep that layout and the backward pass wants it.
    out = out.reshape((w.shape[0], x.shape[0]) + out_sp).swapaxes(0, 1)
    return out.astype(dt, copy=False)


def _input_grad_impl(xp, g, w, in_spatial, stride, padding, dilation, groups):
    (g, w), dt = _compute_type(xp, g, w)
    n, out_channels, kernel, out_sp = g.shape[0], w.shape[0], tuple(w.shape[2:]), tuple(g.shape[2:])
    cg, og, taps = w.shape[1], out_channels // groups, math.prod(kernel)
    # Kernel-offset-major rows, so the slab each offset adds back is one contiguous block.
    wk = w.reshape(groups, og, cg, taps).transpose(0, 3, 2, 1).reshape(groups, taps * cg, og)
    cols = xp.matmul(wk, _channel_major(xp, g, groups)).reshape((groups, taps, cg * n) + out_sp)
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(in_spatial, padding))
    gx = xp.zeros((groups, cg * n) + padded, cols.dtype)  # channel-major, like the slabs
    for k, offset in enumerate(_offsets(kernel)):  # col2im: every kernel offset adds one strided slab
        gx[_window(offset, stride, dilation, out_sp)] += cols[:, k]
    gx = gx.reshape((groups * cg, n) + padded).swapaxes(0, 1)
    if any(lo or hi for lo, hi in padding):
        gx = gx[_crop(in_spatial, padding)]  # a view: the next op reads it once, a copy would cost a pass
    return gx.astype(dt, copy=False)


def _weight_grad_impl(xp, x, g, kernel, stride, padding, dilation, groups):
    (x, g), dt = _compute_type(xp, x, g)
    out_channels = g.shape[1]
    cols, _ = _im2col(xp, x, kernel, stride, padding, dilation, groups)
    # (C/G·K, N·P) by (N·P, O/G): one long product per group sums over the batch.
    gw = xp.matmul(cols, _channel_major(xp, g, groups).transpose(0, 2, 1)).transpose(0, 2, 1)
    return xp.ascontiguousarray(gw).reshape((out_channels, x.shape[1] // groups) + tuple(kernel)).astype(
        dt, copy=False)


# -- rules -------------------------------------------------------------------------------------------
def _wants(x) -> bool:
    return isinstance(x, Tensor) and x._requires_grad


def _like(g: Tensor, out: Tensor) -> Tensor:
    """The cotangent in the output's dtype (as PyTorch's engine guarantees): a float64 cotangent of a
    float32 output would otherwise turn every product below it into a float64 one."""
    if g.dtype is out.dtype:
        return g
    from .elementwise import convert

    return convert(g, out.dtype)


def _conv_vjp(g, out, x, w, **attrs):
    g = _like(g, out)
    gx = bind(conv_input_grad_p, g, w, in_spatial=tuple(x.shape[2:]), **attrs) if _wants(x) else None
    gw = bind(conv_weight_grad_p, x, g, kernel=tuple(w.shape[2:]), **attrs) if _wants(w) else None
    return gx, gw


def _fit(x: Tensor, kernel, out_sp, stride, padding, dilation, **attrs):
    """`x` and `padding` trimmed at the high end so the windows number exactly `out_sp`.

    A transposed convolution with output_padding has trailing positions no window reaches; its
    transposes must convolve only the part the windows of the forward product covered.
    """
    from .movement import static_slice

    pads, stops = [], list(x.shape)
    dims = zip(x.shape[2:], kernel, out_sp, stride, padding, dilation)
    for i, (n, k, m, s, (lo, hi), d) in enumerate(dims):
        hi -= n + lo + hi - ((m - 1) * s + d * (k - 1) + 1)
        if hi < 0:
            stops[2 + i] += hi
            hi = 0
        pads.append((lo, hi))
    x = static_slice(x, [0] * x.ndim, stops)
    return x, dict(stride=stride, padding=tuple(pads), dilation=dilation, **attrs)


def _input_grad_vjp(u, out, g, w, in_spatial, **attrs):
    u = _like(u, out)
    u, fitted = _fit(u, tuple(w.shape[2:]), tuple(g.shape[2:]), **attrs)
    gg = bind(conv_p, u, w, **fitted) if _wants(g) else None
    gw = bind(conv_weight_grad_p, u, g, kernel=tuple(w.shape[2:]), **fitted) if _wants(w) else None
    return gg, gw


def _weight_grad_vjp(u, out, x, g, kernel, **attrs):
    u = _like(u, out)
    gx = bind(conv_input_grad_p, g, u, in_spatial=tuple(x.shape[2:]), **attrs) if _wants(x) else None
    if _wants(g):
        x, fitted = _fit(x, kernel, tuple(g.shape[2:]), **attrs)
        return gx, bind(conv_p, x, u, **fitted)
    return gx, None


def _bilinear_jvp(prim_getter):
    """JVP of an op linear in each of its two operands: f(ta, b) + f(a, tb)."""
    def jvp(primals, tangents, **attrs):
        prim = prim_getter()
        a, b = primals
        ta, tb = tangents
        out = bind(prim, a, b, **attrs)
        parts = [bind(prim, ta, b, **attrs)] if ta is not None else []
        if tb is not None:
            parts.append(bind(prim, a, tb, **attrs))
        return out, (parts[0] if len(parts) == 1 else parts[0] + parts[1]) if parts else None

    return jvp


def _at0(v: Tensor, bdim, size: int) -> Tensor:
    """`v` with its batch dim first (broadcast to `size` if it has none)."""
    from .movement import broadcast_to, moveaxis, reshape

    if bdim is not None:
        return moveaxis(v, bdim, 0)
    return broadcast_to(reshape(v, (1,) + tuple(v.shape)), (size,) + tuple(v.shape))


def _fold_batch(v: Tensor, bdim: int) -> Tensor:
    """Merge the vmap dim into the leading (batch) dim: (B, N, ...) -> (B·N, ...)."""
    from .movement import moveaxis, reshape

    v = moveaxis(v, bdim, 0)
    return reshape(v, (v.shape[0] * v.shape[1],) + tuple(v.shape[2:]))


def _fold_channels(v: Tensor) -> Tensor:
    """(B, N, C, ...) -> (N, B·C, ...): each vmap slice becomes its own block of groups."""
    from .movement import moveaxis, reshape

    v = moveaxis(v, 0, 1)
    return reshape(v, (v.shape[0], v.shape[1] * v.shape[2]) + tuple(v.shape[3:]))


def _fold_out(v: Tensor) -> Tensor:
    """(B, O, ...) -> (B·O, ...)."""
    from .movement import reshape

    return reshape(v, (v.shape[0] * v.shape[1],) + tuple(v.shape[2:]))


def _unfold_channels(out: Tensor, size: int):
    """(N, B·C, ...) -> (N, B, C, ...), batched at dim 1."""
    from .movement import reshape

    return reshape(out, (out.shape[0], size, out.shape[1] // size) + tuple(out.shape[2:])), 1


def _data_weight_batch(prim_getter):
    """Batching for conv(x, w) and conv_input_grad(g, w): a batched data operand alone folds into the
    batch dim; a batched weight turns the vmap dim into extra groups."""
    def rule(values, bdims, groups, **attrs):
        from .movement import reshape

        prim = prim_getter()
        (a, w), (da, dw) = values, bdims
        if dw is None:
            size = a.shape[da]
            out = bind(prim, _fold_batch(a, da), w, groups=groups, **attrs)
            return reshape(out, (size, out.shape[0] // size) + tuple(out.shape[1:])), 0
        size = w.shape[dw]
        a, w = _at0(a, da, size), _at0(w, dw, size)
        out = bind(prim, _fold_channels(a), _fold_out(w), groups=groups * size, **attrs)
        return _unfold_channels(out, size)

    return rule


def _weight_grad_batch(values, bdims, groups, **attrs):
    from .movement import reshape

    size = next(v.shape[d] for v, d in zip(values, bdims) if d is not None)
    x, g = (_fold_channels(_at0(v, d, size)) for v, d in zip(values, bdims))
    out = bind(conv_weight_grad_p, x, g, groups=groups * size, **attrs)
    return reshape(out, (size, out.shape[0] // size) + tuple(out.shape[1:])), 0


conv_p = Primitive("conv", _conv_impl, vjp=_conv_vjp, jvp=_bilinear_jvp(lambda: conv_p),
                   batch=_data_weight_batch(lambda: conv_p),
                   doc="N-d cross-correlation of (N, C, *S) with (O, C/groups, *K); per-side padding.")
conv_input_grad_p = Primitive(
    "conv_input_grad", _input_grad_impl, vjp=_input_grad_vjp, jvp=_bilinear_jvp(lambda: conv_input_grad_p),
    batch=_data_weight_batch(lambda: conv_input_grad_p),
    doc="Transpose of conv in its input (the transposed convolution): (N, O, *P) -> (N, C, *in_spatial).")
conv_weight_grad_p = Primitive(
    "conv_weight_grad", _weight_grad_impl, vjp=_weight_grad_vjp,
    jvp=_bilinear_jvp(lambda: conv_weight_grad_p), batch=_weight_grad_batch,
    doc="Transpose of conv in its weight: (input, cotangent) -> (O, C/groups, *kernel).")


def conv_general(x: Tensor, w: Tensor, stride: tuple, padding: tuple, dilation: tuple, groups: int) -> Tensor:
    """Bind ``conv`` on checked, normalised arguments (``padding`` holds one (low, high) pair per dim)."""
    return bind(conv_p, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv_transpose_general(x: Tensor, w: Tensor, out_spatial: tuple, stride: tuple, padding: tuple,
                           dilation: tuple, groups: int) -> Tensor:
    """Bind ``conv_input_grad``: the transposed convolution of `x` (N, Cin, *S) with `w` (Cin, Cout/g, *K)."""
    return bind(conv_input_grad_p, x, w, in_spatial=out_spatial, stride=stride, padding=padding,
                dilation=dilation, groups=groups)


# -- pooling kernels ---------------------------------------------------------------------------------
def _slabs(xp, x, kernel, stride, dilation):
    """The strided slab of `x` read by each kernel offset, in row-major offset order, and the out size."""
    nd = len(kernel)
    out_sp = tuple(out_length(n, k, s, d) for n, k, s, d in zip(x.shape[-nd:], kernel, stride, dilation))
    return [x[_window(o, stride, dilation, out_sp)] for o in _offsets(kernel)], out_sp


def _max_pool_impl(xp, x, kernel, stride, dilation):
    slabs, _ = _slabs(xp, x, kernel, stride, dilation)
    out = xp.array(slabs[0], order="C", copy=True)
    for s in slabs[1:]:
        xp.maximum(out, s, out=out)  # propagates NaN, as PyTorch's max pooling does
    return out


def _index_dtype(xp, kernel):
    """Window offsets are int32: the generated kernels store an int8 table one byte at a time (10-20x
    slower), so the 4x smaller table is not worth it."""
    return xp.int32


def _argmax_impl(xp, x, out, kernel, stride, dilation):
    slabs, _ = _slabs(xp, x, kernel, stride, dilation)
    nan = out.dtype.kind == "f" and bool(xp.isnan(out).any())
    dt = xp.int8 if len(slabs) <= 127 else xp.int32  # small ints make the passes below cheap

    def miss(k):  # 1 where offset k does not hold the window's maximum (NaN counts as the maximum)
        m = slabs[k] != out
        if nan:
            m &= ~xp.isnan(slabs[k])
        return m.astype(dt)

    if len(slabs) == 1:
        return xp.zeros(out.shape, _index_dtype(xp, kernel))
    # first[k] = offset of the first maximum among offsets k.. relative to k = miss[k]·(1 + first[k+1]);
    # integer products on small ints keep this at a few cheap passes.
    arg = miss(len(slabs) - 2)
    for k in range(len(slabs) - 3, -1, -1):
        arg += 1
        arg *= miss(k)
    return arg.astype(_index_dtype(xp, kernel))


def _scatter_impl(xp, g, arg, in_spatial, kernel, stride, dilation):
    gx = xp.zeros(g.shape[:-len(kernel)] + tuple(in_spatial), g.dtype)
    overlap = any(s < d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))
    for k, offset in enumerate(_offsets(kernel)):
        slab = gx[_window(offset, stride, dilation, g.shape[-len(kernel):])]
        if overlap:
            slab += xp.where(arg == k, g, 0)
        else:  # windows are disjoint: every input element gets at most one write
            xp.multiply(g, arg == k, out=slab)
    return gx


def _gather_impl(xp, x, arg, kernel, stride, dilation):
    slabs, _ = _slabs(xp, x, kernel, stride, dilation)
    out = xp.zeros(arg.shape, x.dtype)
    for k, s in enumerate(slabs):
        xp.copyto(out, s, where=arg == k)
    return out


def _sum_pool_impl(xp, x, kernel, stride, dilation):
    slabs, _ = _slabs(xp, x, kernel, stride, dilation)
    out = xp.array(slabs[0], order="C", copy=True)
    for s in slabs[1:]:
        out += s
    return out


def _sum_pool_t_impl(xp, g, in_spatial, kernel, stride, dilation):
    gx = xp.zeros(g.shape[:-len(kernel)] + tuple(in_spatial), g.dtype)
    for offset in _offsets(kernel):
        gx[_window(offset, stride, dilation, g.shape[-len(kernel):])] += g
    return gx


def _indices_impl(xp, arg, in_spatial, pad_lo, kernel, stride, dilation):
    """Flat index into the unpadded spatial dims of the element each window picked (int64)."""
    nd = len(kernel)
    out_sp = arg.shape[-nd:]
    offsets = xp.unravel_index(arg.astype(xp.int64), tuple(kernel))
    flat = xp.zeros(arg.shape, xp.int64)
    for d in range(nd):
        grid = xp.arange(out_sp[d], dtype=xp.int64).reshape((-1,) + (1,) * (nd - 1 - d))
        pos = grid * stride[d] + offsets[d] * dilation[d] - pad_lo[d]
        flat = flat * in_spatial[d] + pos
    return flat


# -- pooling rules -----------------------------------------------------------------------------------
def _max_pool_vjp(g, out, x, **attrs):
    g = _like(g, out)
    if not _wants(x):
        return (None,)
    arg = bind(pool_argmax_p, x, out, **attrs)
    return (bind(pool_scatter_p, g, arg, in_spatial=tuple(x.shape[-len(attrs["kernel"]):]), **attrs),)


def _max_pool_jvp(primals, tangents, **attrs):
    out = bind(max_pool_p, primals[0], **attrs)
    return out, bind(pool_gather_p, tangents[0], bind(pool_argmax_p, primals[0], out, **attrs), **attrs)


def _scatter_vjp(u, out, g, arg, in_spatial, **attrs):
    u = _like(u, out)
    return (bind(pool_gather_p, u, arg, **attrs) if _wants(g) else None), None


def _gather_vjp(u, out, x, arg, **attrs):
    u = _like(u, out)
    if not _wants(x):
        return None, None
    return bind(pool_scatter_p, u, arg, in_spatial=tuple(x.shape[-len(attrs["kernel"]):]), **attrs), None


def _linear_in_first_jvp(prim_getter):
    def jvp(primals, tangents, **attrs):
        prim = prim_getter()
        out = bind(prim, *primals, **attrs)
        return out, bind(prim, tangents[0], *primals[1:], **attrs) if tangents[0] is not None else None

    return jvp


def _sum_pool_vjp(g, out, x, **attrs):
    g = _like(g, out)
    if not _wants(x):
        return (None,)
    return (bind(pool_sum_t_p, g, in_spatial=tuple(x.shape[-len(attrs["kernel"]):]), **attrs),)


def _sum_pool_t_vjp(u, out, g, in_spatial, **attrs):
    u = _like(u, out)
    return (bind(pool_sum_p, u, **attrs) if _wants(g) else None,)


def _leading_batch(prim_getter):
    """Pooling treats every leading dim as batch: move the vmap dim to the front and apply."""
    def rule(values, bdims, **attrs):
        size = next(v.shape[d] for v, d in zip(values, bdims) if d is not None)
        return bind(prim_getter(), *(_at0(v, d, size) for v, d in zip(values, bdims)), **attrs), 0

    return rule


def _no_tangent(prim_getter):
    def jvp(primals, tangents, **attrs):
        return bind(prim_getter(), *primals, **attrs), None

    return jvp


max_pool_p = Primitive("max_pool", _max_pool_impl, vjp=_max_pool_vjp, jvp=_max_pool_jvp,
                       batch=_leading_batch(lambda: max_pool_p),
                       doc="Maximum over each window of the trailing dims (input already padded).")
pool_argmax_p = Primitive("pool_argmax", _argmax_impl, jvp=_no_tangent(lambda: pool_argmax_p),
                          batch=_leading_batch(lambda: pool_argmax_p), nondiff_inputs=(0, 1),
                          doc="Offset in its window of the first element equal to the window's maximum.")
pool_scatter_p = Primitive("pool_scatter", _scatter_impl, vjp=_scatter_vjp,
                           jvp=_linear_in_first_jvp(lambda: pool_scatter_p),
                           batch=_leading_batch(lambda: pool_scatter_p), nondiff_inputs=(1,),
                           doc="Each value to the window offset `arg` names; the transpose of pool_gather.")
pool_gather_p = Primitive("pool_gather", _gather_impl, vjp=_gather_vjp,
                          jvp=_linear_in_first_jvp(lambda: pool_gather_p),
                          batch=_leading_batch(lambda: pool_gather_p), nondiff_inputs=(1,),
                          doc="The element at window offset `arg` of each window.")
pool_sum_p = Primitive("pool_sum", _sum_pool_impl, vjp=_sum_pool_vjp,
                       jvp=_linear_in_first_jvp(lambda: pool_sum_p), batch=_leading_batch(lambda: pool_sum_p),
                       doc="Sum over each window of the trailing dims (input already padded).")
pool_sum_t_p = Primitive("pool_sum_t", _sum_pool_t_impl, vjp=_sum_pool_t_vjp,
                         jvp=_linear_in_first_jvp(lambda: pool_sum_t_p),
                         batch=_leading_batch(lambda: pool_sum_t_p),
                         doc="Transpose of pool_sum: each value added to every element of its window.")
pool_indices_p = Primitive("pool_indices", _indices_impl, jvp=_no_tangent(lambda: pool_indices_p),
                           batch=_leading_batch(lambda: pool_indices_p), nondiff_inputs=(0,),
                           doc="Flat indices into the unpadded input of the elements pool_argmax picked.")
