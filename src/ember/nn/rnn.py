"""Recurrent layers: RNN, LSTM, GRU and their one-step cells, with PyTorch's API and parameter names.

Each layer and direction projects the input of every time step with one matrix product; only the
recurrent part (the hidden-to-hidden product and the gates) loops over time. Padded and packed
inputs take the same path: a padded batch is a packed one whose batch size never shrinks.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Callable, NamedTuple

from .._core import creation
from .._core.errors import ShapeError
from .._core.primitives import elementwise as ew
from .._core.primitives import indexing, linalg, movement
from .._core.tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter
from .utils.rnn import PackedSequence

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "RNNBase", "RNN", "LSTM", "GRU"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_MODE_OF = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}


class _StepWeights(NamedTuple):
    """What one recurrent step needs besides its input projection."""

    hh_t: Tensor  # weight_hh transposed, (real_hidden, gates * hidden)
    b_hh: Tensor | None  # hidden bias kept inside the step (GRU); folded into the projection otherwise
    hr_t: Tensor | None  # LSTM projection weight transposed, (hidden, proj)


# -- one time step: `gx` is the input projection of this step, `state` a tuple of (batch, *) tensors ----
def _tanh_step(gx: Tensor, state: tuple, w: _StepWeights) -> tuple:
    return (ew.tanh(gx + linalg.matmul(state[0], w.hh_t)),)


def _relu_step(gx: Tensor, state: tuple, w: _StepWeights) -> tuple:
    return (ew.relu(gx + linalg.matmul(state[0], w.hh_t)),)


def _lstm_step(gx: Tensor, state: tuple, w: _StepWeights) -> tuple:
    h, c = state
    gates = gx + linalg.matmul(h, w.hh_t)
    n = gates.shape[-1] // 4
    act = ew.sigmoid(gates)  # i, f, o are read from here; g gets tanh
    i, f, o = (movement.narrow(act, -1, k * n, n) for k in (0, 1, 3))
    g = ew.tanh(movement.narrow(gates, -1, 2 * n, n))
    c = f * c + i * g
    h = o * ew.tanh(c)
    if w.hr_t is not None:
        h = linalg.matmul(h, w.hr_t)
    return h, c


def _gru_step(gx: Tensor, state: tuple, w: _StepWeights) -> tuple:
    h = state[0]
    gh = linalg.matmul(h, w.hh_t)
    if w.b_hh is not None:
        gh = gh + w.b_hh
    n = gh.shape[-1] // 3
    rz = ew.sigmoid(movement.narrow(gx, -1, 0, 2 * n) + movement.narrow(gh, -1, 0, 2 * n))
    r, z = movement.narrow(rz, -1, 0, n), movement.narrow(rz, -1, n, n)
    cand = ew.tanh(movement.narrow(gx, -1, 2 * n, n) + r * movement.narrow(gh, -1, 2 * n, n))
    return (cand + z * (h - cand),)


_STEPS: dict[str, Callable] = {"RNN_TANH": _tanh_step, "RNN_RELU": _relu_step, "LSTM": _lstm_step,
                               "GRU": _gru_step}


# -- running one layer in one direction over a packed batch ---------------------------------------------
def _split_steps(x: Tensor, sizes: list[int]) -> list[Tensor]:
    """``split(x, sizes)`` done in two levels (blocks of about √T steps, then steps), so that the
    gradients of the slices add up to O(√T) full-size buffers instead of O(T)."""
    n_steps = len(sizes)
    block = math.isqrt(n_steps - 1) + 1 if n_steps > 4 else n_steps
    groups = [sizes[i:i + block] for i in range(0, n_steps, block)]
    parts = movement.split(x, [sum(g) for g in groups], 0)
    return [s for part, g in zip(parts, groups) for s in movement.split(part, g, 0)]


def _rows(state: tuple, start: int, stop: int) -> tuple:
    return tuple(movement.narrow(s, 0, start, stop - start) for s in state)


def _zeros_following(like: Tensor, axis: int, shape: tuple[int, ...], dim: int) -> Tensor:
    """Zeros of `shape`, whose dimension `dim` is `like`'s dimension `axis` (the batch), computed from
    one entry per batch element of `like`: under ``ember.jit`` with a dynamic batch dimension a
    constant would keep the traced batch size. (A broadcast view: read, never written.)"""
    index = tuple(slice(None) if d == axis else slice(0, 1) for d in range(like.ndim))
    column = indexing.getitem(like, index)
    zero = creation.zeros_like(movement.reshape(column, (shape[dim],)))
    at = tuple(shape[dim] if d == dim else 1 for d in range(len(shape)))
    return movement.broadcast_to(movement.reshape(zero, at), shape)


def _run_forward(steps: list[Tensor], sizes: list[int], state: tuple, step: Callable,
                 w: _StepWeights) -> tuple[list[Tensor], tuple]:
    """Steps 0..T-1; a sequence that ends leaves the running prefix and keeps its last state."""
    outs, ended, running = [], [], sizes[0]
    for gx, b in zip(steps, sizes):
        if b < running:
            ended.append(_rows(state, b, running))
            state, running = _rows(state, 0, b), b
        state = step(gx, state, w)
        outs.append(state[0])
    if ended:  # rows that ended later have lower indices
        pieces = [state] + ended[::-1]
        state = tuple(movement.cat([p[k] for p in pieces], 0) for k in range(len(state)))
    return outs, state


def _run_reverse(steps: list[Tensor], sizes: list[int], state0: tuple, step: Callable,
                 w: _StepWeights) -> tuple[list[Tensor], tuple]:
    """Steps T-1..0; a sequence joins the running prefix at its own last step, from its initial state."""
    running = sizes[-1]
    state = _rows(state0, 0, running)
    outs = [None] * len(steps)
    for t in range(len(steps) - 1, -1, -1):
        b = sizes[t]
        if b > running:
            state = tuple(movement.cat([s, s0], 0) for s, s0 in zip(state, _rows(state0, running, b)))
            running = b
        state = step(steps[t], state, w)
        outs[t] = state[0]
    return outs, state


# -- parameters -----------------------------------------------------------------------------------------
def _uniform_params(module: Module, hidden_size: int) -> None:
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


def _empty_param(*shape: int, dtype: Any, device: Any) -> Parameter:
    return Parameter(creation.empty(*shape, dtype=dtype, device=device))


def _check_rnn_args(hidden_size: int, num_layers: int, dropout: float, proj_size: int) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
        raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                         "element being zeroed")
    if dropout > 0 and num_layers == 1:
        warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                      f"expects num_layers greater than 1, but got dropout={dropout} and "
                      f"num_layers={num_layers}", stacklevel=4)
    if not isinstance(hidden_size, int) or hidden_size <= 0:
        raise ValueError(f"hidden_size must be an integer greater than zero, got {hidden_size!r}")
    if not isinstance(num_layers, int) or num_layers <= 0:
        raise ValueError(f"num_layers must be an integer greater than zero, got {num_layers!r}")
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")


class RNNBase(Module):
    """The multi-layer recurrent network shared by :class:`RNN`, :class:`LSTM` and :class:`GRU`.

    Parameters are named as in PyTorch (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
    ``bias_hh_l{k}``, ``weight_hr_l{k}`` for LSTM projections, with a ``_reverse`` suffix for the
    backward direction) so that state dicts load either way; all are drawn from U(-1/√hidden, 1/√hidden).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"unrecognized RNN mode {mode!r}")
        _check_rnn_args(hidden_size, num_layers, dropout, proj_size)
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                shapes = [("weight_ih", (gate_size, layer_input)), ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                for name, shape in shapes:
                    setattr(self, name + suffix, _empty_param(*shape, dtype=dtype, device=device))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw every weight and bias from U(-1/√hidden_size, 1/√hidden_size)."""
        _uniform_params(self, self.hidden_size)

    def flatten_parameters(self) -> None:
        """Accepted for PyTorch compatibility (there is no fused weight buffer to compact)."""

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters of each layer and direction, in PyTorch's order."""
        per = 2 + 2 * self.bias + (self.proj_size > 0)
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[i:i + per]] for i in range(0, len(names), per)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- forward ---------------------------------------------------------------------------------------
    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _state_shapes(self, n_batch: int) -> list[tuple[int, ...]]:
        """Shapes of the initial state tensors (h0, and c0 for LSTM)."""
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        shapes = [(self.num_layers * self._directions, n_batch, real_hidden)]
        if self.mode == "LSTM":
            shapes.append((self.num_layers * self._directions, n_batch, self.hidden_size))
        return shapes

    def _hx_tensors(self, hx: Any) -> list[Tensor] | None:
        if hx is None:
            return None
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ShapeError(type(self).__name__, "LSTM expects hx as a tuple (h_0, c_0)")
            return list(hx)
        if not isinstance(hx, Tensor):
            raise ShapeError(type(self).__name__, f"expected hx to be a Tensor, got {type(hx).__name__}")
        return [hx]

    def _initial_states(self, hx: list[Tensor] | None, n_batch: int, like: Tensor,
                        batch_axis: int | None = None) -> list[tuple]:
        """One state tuple of (batch, *) tensors per layer and direction; zeros if `hx` is None (made
        from `like`'s `batch_axis` when given, so that under jit their size follows the batch)."""
        shapes = self._state_shapes(n_batch)
        if hx is None:
            hx = [creation.zeros(*s, dtype=like.dtype, device=like.device) if batch_axis is None
                  else _zeros_following(like, batch_axis, s, 1) for s in shapes]
        for k, (h, shape) in enumerate(zip(hx, shapes)):
            if tuple(h.shape) != shape:
                which = f"hidden[{k}]" if len(shapes) > 1 else "hidden"
                raise ShapeError(type(self).__name__, f"expected {which} size {shape}, got {tuple(h.shape)}",
                                 (h,))
        per_state = [movement.unbind(h, 0) for h in hx]
        return [tuple(s[i] for s in per_state) for i in range(len(per_state[0]))]

    def _layer_weights(self, layer: int, direction: int) -> tuple[Tensor, Tensor | None, _StepWeights]:
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        w_ih, w_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
        b_ih = getattr(self, "bias_ih" + suffix) if self.bias else None
        b_hh = getattr(self, "bias_hh" + suffix) if self.bias else None
        hr = getattr(self, "weight_hr" + suffix) if self.proj_size > 0 else None
        if b_hh is not None and self.mode != "GRU":  # the hidden bias adds to every step: fold it
            b_ih, b_hh = b_ih + b_hh, None
        hr_t = None if hr is None else movement.transpose(hr, 0, 1)
        return w_ih, b_ih, _StepWeights(movement.transpose(w_hh, 0, 1), b_hh, hr_t)

    def _run(self, data: Tensor, sizes: list[int], states: list[tuple]) -> tuple[Tensor, list[tuple]]:
        """All layers over packed `data` (rows of every step, time-major); returns output data and the
        final state of each layer and direction."""
        step = _STEPS[self.mode]
        finals = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                data = F.dropout(data, self.dropout, True)
            outputs = []
            for direction in range(self._directions):
                w_ih, b_ih, w = self._layer_weights(layer, direction)
                steps = _split_steps(F.linear(data, w_ih, b_ih), sizes)
                run = _run_reverse if direction == 1 else _run_forward
                outs, final = run(steps, sizes, states[layer * self._directions + direction], step, w)
                outputs.append(movement.cat(outs, 0))
                finals.append(final)
            data = outputs[0] if len(outputs) == 1 else movement.cat(outputs, -1)
        return data, finals

    def _check_input(self, data: Tensor, ndims: tuple[int, ...], what: str) -> None:
        name = type(self).__name__
        if data.ndim not in ndims:
            raise ShapeError(name, f"expected {what} input with {' or '.join(map(str, ndims))} dimensions, "
                             f"got shape {tuple(data.shape)}", (data,))
        if data.shape[-1] != self.input_size:
            raise ShapeError(name, f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                             f"got {data.shape[-1]}", (data,))

    def _forward(self, input: Tensor | PackedSequence, hx: Any) -> tuple[Any, list[Tensor]]:
        hx_list = self._hx_tensors(hx)
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx_list)
        self._check_input(input, (2, 3), "padded")
        batched = input.ndim == 3
        if hx_list is not None and any(h.ndim != (3 if batched else 2) for h in hx_list):
            raise ShapeError(type(self).__name__, f"for {input.ndim}-D input, hx should be "
                             f"{input.ndim}-D, got shapes {[tuple(h.shape) for h in hx_list]}",
                             tuple(hx_list))
        if not batched:
            input = movement.unsqueeze(input, 1)
            hx_list = None if hx_list is None else [movement.unsqueeze(h, 1) for h in hx_list]
        elif self.batch_first:
            input = movement.transpose(input, 0, 1)
        n_time, n_batch = input.shape[0], input.shape[1]
        states = self._initial_states(hx_list, n_batch, input, batch_axis=1)
        data = movement.reshape(input, (n_time * n_batch, input.shape[2]))
        out, finals = self._run(data, [n_batch] * n_time, states)
        out = movement.reshape(out, (n_time, n_batch, out.shape[-1]))
        final = [movement.stack([f[k] for f in finals], 0) for k in range(len(finals[0]))]
        if not batched:
            return movement.squeeze(out, 1), [movement.squeeze(h, 1) for h in final]
        if self.batch_first:
            out = movement.transpose(out, 0, 1)
        return out, final

    def _forward_packed(self, input: PackedSequence,
                        hx_list: list[Tensor] | None) -> tuple[Any, list[Tensor]]:
        data, batch_sizes, sorted_indices, unsorted_indices = input
        self._check_input(data, (2,), "packed")
        sizes = [int(b) for b in batch_sizes.tolist()]
        if hx_list is not None and sorted_indices is not None:
            hx_list = [indexing.index_select(h, 1, sorted_indices) for h in hx_list]
        states = self._initial_states(hx_list, sizes[0], data)
        out, finals = self._run(data, sizes, states)
        final = [movement.stack([f[k] for f in finals], 0) for k in range(len(finals[0]))]
        if unsorted_indices is not None:
            final = [indexing.index_select(h, 1, unsorted_indices) for h in final]
        return PackedSequence(out, batch_sizes, sorted_indices, unsorted_indices), final


class RNN(RNNBase):
    """Elman recurrent network: ``h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)``, act tanh or relu.

    Args:
        input_size: features of each input step.
        hidden_size: features of the hidden state.
        num_layers: stacked layers (each reads the previous layer's outputs).
        nonlinearity: "tanh" or "relu".
        bias: learn ``bias_ih`` and ``bias_hh``.
        batch_first: input and output are ``(N, L, *)`` instead of ``(L, N, *)`` (not the states).
        dropout: dropout on the outputs of every layer but the last, in training mode.
        bidirectional: run a second layer backwards in time and concatenate the outputs.

    Shape:
        input ``(L, N, H_in)`` (``(N, L, H_in)`` with batch_first, ``(L, H_in)`` unbatched) or a
        :class:`~ember.nn.utils.rnn.PackedSequence`; h_0 ``(D·num_layers, N, H_out)``, zeros by
        default. Returns ``(output, h_n)``: output ``(L, N, D·H_out)`` (packed if the input was), h_n
        ``(D·num_layers, N, H_out)`` holding each sequence's state at its own last step.

    Example:
        >>> import ember
        >>> rnn = ember.nn.RNN(4, 3, num_layers=2)
        >>> out, h = rnn(ember.randn(5, 2, 4))
        >>> tuple(out.shape), tuple(h.shape)
        ((5, 2, 3), (2, 2, 3))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in _MODE_OF:
            raise ValueError(f"unknown nonlinearity '{nonlinearity}'; select from 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        super().__init__(_MODE_OF[nonlinearity], input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | None = None) -> tuple[Any, Tensor]:
        out, final = self._forward(input, hx)
        return out, final[0]


class LSTM(RNNBase):
    """Long short-term memory network (gates i, f, g, o in that order within the weights).

    ``i, f, o = σ(·)``, ``g = tanh(·)`` of ``x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh``;
    ``c_t = f ⊙ c_{t-1} + i ⊙ g``, ``h_t = o ⊙ tanh(c_t)`` (times ``W_hrᵀ`` with `proj_size` > 0).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as in :class:`RNN`.
        proj_size: if > 0, project each hidden state to this size with ``weight_hr_l{k}``.

    Shape:
        As :class:`RNN`, with the state a tuple ``(h, c)``: h ``(D·num_layers, N, H_out)`` where
        ``H_out = proj_size or hidden_size``, c ``(D·num_layers, N, hidden_size)``. Returns
        ``(output, (h_n, c_n))``.

    Example:
        >>> import ember
        >>> lstm = ember.nn.LSTM(4, 3, batch_first=True, bidirectional=True)
        >>> out, (h, c) = lstm(ember.randn(2, 5, 4))
        >>> tuple(out.shape), tuple(h.shape), tuple(c.shape)
        ((2, 5, 6), (2, 2, 3), (2, 2, 3))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Any = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device=device, dtype=dtype)

    def forward(self, input: Tensor | PackedSequence,
                hx: tuple[Tensor, Tensor] | None = None) -> tuple[Any, tuple[Tensor, Tensor]]:
        out, final = self._forward(input, hx)
        return out, (final[0], final[1])


class GRU(RNNBase):
    """Gated recurrent unit network (gates r, z, n in that order within the weights).

    ``r, z = σ(x_t W_iᵀ + b_i + h_{t-1} W_hᵀ + b_h)``, ``n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t-1} W_hnᵀ
    + b_hn))``, ``h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}``.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as in :class:`RNN`.

    Shape:
        As :class:`RNN`.

    Example:
        >>> import ember
        >>> gru = ember.nn.GRU(4, 3)
        >>> out, h = gru(ember.randn(5, 4))  # unbatched
        >>> tuple(out.shape), tuple(h.shape)
        ((5, 3), (1, 3))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | None = None) -> tuple[Any, Tensor]:
        out, final = self._forward(input, hx)
        return out, final[0]


# -- cells ----------------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """Parameters shared by the one-step cells: ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = _empty_param(num_chunks * hidden_size, input_size, dtype=dtype, device=device)
        self.weight_hh = _empty_param(num_chunks * hidden_size, hidden_size, dtype=dtype, device=device)
        if bias:
            self.bias_ih = _empty_param(num_chunks * hidden_size, dtype=dtype, device=device)
            self.bias_hh = _empty_param(num_chunks * hidden_size, dtype=dtype, device=device)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw every weight and bias from U(-1/√hidden_size, 1/√hidden_size)."""
        _uniform_params(self, self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _step(self, mode: str, input: Tensor, state: tuple) -> tuple:
        name = type(self).__name__
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ShapeError(name, f"expected input of shape (N, {self.input_size}) or ({self.input_size},), "
                             f"got {tuple(input.shape)}", (input,))
        batched = input.ndim == 2
        n_batch = input.shape[0] if batched else 1
        sizes = (self.hidden_size, self.hidden_size)
        if state[0] is None:
            state = tuple(_zeros_following(input, 0, (n_batch, s), 0) if batched else
                          creation.zeros(n_batch, s, dtype=input.dtype, device=input.device)
                          for s in sizes[:len(state)])
        else:
            want = (n_batch, self.hidden_size) if batched else (self.hidden_size,)
            for h in state:
                if tuple(h.shape) != want:
                    raise ShapeError(name, f"expected hidden state of shape {want} for input of shape "
                                     f"{tuple(input.shape)}, got {tuple(h.shape)}", (input, h))
            if not batched:
                state = tuple(movement.unsqueeze(h, 0) for h in state)
        if not batched:
            input = movement.unsqueeze(input, 0)
        b_ih, b_hh = self.bias_ih, self.bias_hh
        if b_hh is not None and mode != "GRU":
            b_ih, b_hh = b_ih + b_hh, None
        w = _StepWeights(movement.transpose(self.weight_hh, 0, 1), b_hh, None)
        out = _STEPS[mode](F.linear(input, self.weight_ih, b_ih), state, w)
        return out if batched else tuple(movement.squeeze(h, 0) for h in out)


class RNNCell(RNNCellBase):
    """One Elman step: ``h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`` with act tanh or relu.

    Args:
        input_size: input features.
        hidden_size: hidden features.
        bias: learn ``bias_ih`` and ``bias_hh``.
        nonlinearity: "tanh" or "relu".

    Shape:
        input ``(N, H_in)`` or ``(H_in,)``; hx ``(N, H)`` or ``(H,)`` (zeros if omitted) -> h' like hx.

    Example:
        >>> import ember
        >>> cell = ember.nn.RNNCell(4, 3)
        >>> tuple(cell(ember.randn(2, 4)).shape)
        (2, 3)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in _MODE_OF:
            raise ValueError(f"unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(_MODE_OF[self.nonlinearity], input, (hx,))[0]


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o); returns ``(h', c')``.

    Shape:
        input ``(N, H_in)`` or ``(H_in,)``; hx a tuple ``(h, c)`` of ``(N, H)`` or ``(H,)`` (zeros if
        omitted).

    Example:
        >>> import ember
        >>> h, c = ember.nn.LSTMCell(4, 3)(ember.randn(2, 4))
        >>> tuple(h.shape), tuple(c.shape)
        ((2, 3), (2, 3))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        state = (None, None) if hx is None else tuple(hx)
        h, c = self._step("LSTM", input, state)
        return h, c


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n).

    Shape:
        input ``(N, H_in)`` or ``(H_in,)``; hx ``(N, H)`` or ``(H,)`` (zeros if omitted) -> h' like hx.

    Example:
        >>> import ember
        >>> tuple(ember.nn.GRUCell(4, 3)(ember.randn(4)).shape)
        (3,)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step("GRU", input, (hx,))[0]
