"""ONNX recurrent operators (RNN, GRU, LSTM), with ONNX's gate layouts and attributes.

The input projection of every time step is one matrix product; the loop over time steps does the
recurrent product and the gates. ``sequence_lens`` is honoured by masking: a step past a sequence's
end keeps its state and writes zeros to ``Y``, which also makes the reverse direction start at each
sequence's last valid element.
"""
from __future__ import annotations

from typing import Callable

from .._core import creation
from .._core.primitives import elementwise as ew
from .._core.primitives import linalg, movement
from .._core.tensor import Tensor
from ._common import Attrs, UnsupportedOperatorError, opt, static_ints

_PARAMETERISED = {
    "Affine": lambda a, b: lambda x: a * x + b,
    "LeakyRelu": lambda a, b: lambda x: ew.where(x >= 0, x, a * x),
    "ThresholdedRelu": lambda a, b: lambda x: ew.where(x > a, x, 0.0 * x),
    "ScaledTanh": lambda a, b: lambda x: a * ew.tanh(b * x),
    "HardSigmoid": lambda a, b: lambda x: ew.clamp(a * x + b, 0.0, 1.0),
    "Elu": lambda a, b: lambda x: ew.where(x > 0, x, a * ew.expm1(x)),
}
_PLAIN = {"Sigmoid": ew.sigmoid, "Tanh": ew.tanh, "Relu": ew.relu, "Softplus": ew.softplus,
          "Softsign": lambda x: x / (ew.abs(x) + 1.0)}
_DEFAULT_ALPHA = {"Affine": 1.0, "LeakyRelu": 0.01, "ThresholdedRelu": 1.0, "ScaledTanh": 1.0,
                  "HardSigmoid": 0.2, "Elu": 1.0}
_DEFAULT_BETA = {"Affine": 0.0, "ScaledTanh": 1.0, "HardSigmoid": 0.5}


def _activations(attrs: Attrs, defaults: list[str], directions: int) -> list[list[Callable]]:
    """One list of activation functions per direction; alphas/betas are consumed in order."""
    names = list(attrs.get("activations") or defaults * directions)
    alphas, betas = list(attrs.get("activation_alpha") or []), list(attrs.get("activation_beta") or [])
    fns = []
    for name in names:
        key = next((k for k in list(_PLAIN) + list(_PARAMETERISED) if k.lower() == name.lower()), None)
        if key is None:
            raise attrs.error(f"activation {name!r} is not supported", cls=UnsupportedOperatorError)
        if key in _PLAIN:
            fns.append(_PLAIN[key])
            continue
        a = alphas.pop(0) if alphas else _DEFAULT_ALPHA[key]
        b = betas.pop(0) if betas and key in _DEFAULT_BETA else _DEFAULT_BETA.get(key, 0.0)
        fns.append(_PARAMETERISED[key](a, b))
    per = len(defaults)
    return [fns[i * per:(i + 1) * per] for i in range(directions)]


def _clipped(fn: Callable, clip) -> Callable:
    if clip is None:
        return fn
    return lambda x: fn(ew.clamp(x, -clip, clip))


class _Setup:
    """The shared inputs of a recurrent node, normalised to layout 0 (time, batch, features)."""

    def __init__(self, inputs, attrs: Attrs, gates: int, defaults: list[str]):
        x, self.w, self.r = inputs[0], inputs[1], inputs[2]
        self.layout = attrs.get("layout", 0)
        self.x = movement.transpose(x, 0, 1) if self.layout else x
        direction = attrs.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise attrs.error(f"direction {direction!r} is not supported", (x,), UnsupportedOperatorError)
        self.reverse = [direction == "reverse"] if direction != "bidirectional" else [False, True]
        self.hidden = self.r.shape[-1]
        steps, batch = self.x.shape[0], self.x.shape[1]
        self.steps, self.batch = steps, batch
        b = opt(inputs, 3)
        self.bias = b if b is not None else creation.zeros(len(self.reverse), 2 * gates * self.hidden,
                                                           dtype=x.dtype, device=x.device)
        lens = static_ints(opt(inputs, 4), attrs, "sequence_lens")
        self.mask = None
        if lens is not None and any(n != steps for n in lens):
            t = movement.reshape(creation.arange(steps, device=x.device), (steps, 1, 1))
            self.mask = t < movement.reshape(creation.tensor(lens, device=x.device), (1, batch, 1))
        self.acts = _activations(attrs, defaults, len(self.reverse))
        self.clip = attrs.get("clip")

    def initial(self, t: Tensor | None) -> Tensor:
        if t is None:
            return creation.zeros(len(self.reverse), self.batch, self.hidden, dtype=self.x.dtype,
                                  device=self.x.device)
        return movement.transpose(t, 0, 1) if self.layout else t

    def projected(self, d: int, gates: int) -> tuple[Tensor, Tensor, Tensor]:
        """X·Wᵀ + Wb for all steps, Rᵀ and Rb of direction `d`."""
        g = gates * self.hidden
        wb, rb = movement.narrow(self.bias[d], 0, 0, g), movement.narrow(self.bias[d], 0, g, g)
        xw = linalg.matmul(self.x, movement.transpose(self.w[d], 0, 1)) + wb
        return xw, movement.transpose(self.r[d], 0, 1), rb

    def run(self, d: int, xw: Tensor, state: tuple, cell: Callable) -> tuple[Tensor, tuple]:
        """Scan `cell(xw_t, state) -> state` over time; returns this direction's Y (T, B, H) and state."""
        order = range(self.steps - 1, -1, -1) if self.reverse[d] else range(self.steps)
        ys: list = [None] * self.steps
        for t in order:
            new = cell(xw[t], state)
            if self.mask is not None:
                valid = self.mask[t]
                new = tuple(ew.where(valid, n, s) for n, s in zip(new, state))
                ys[t] = ew.where(valid, new[0], 0.0 * new[0])
            else:
                ys[t] = new[0]
            state = new
        return movement.stack(ys, 0), state

    def outputs(self, ys: list[Tensor], finals: list[list[Tensor]], attrs: Attrs):
        y = movement.stack(ys, 1)  # (T, D, B, H)
        states = [movement.stack(list(f), 0) for f in finals]  # each (D, B, H)
        if self.layout:
            y = movement.permute(y, (2, 0, 1, 3))
            states = [movement.transpose(s, 0, 1) for s in states]
        return (y, *states)[:max(attrs.n_outputs, 1)] if attrs.n_outputs > 1 else y


def rnn_op(inputs, attrs: Attrs):
    s = _Setup(inputs, attrs, 1, ["Tanh"])
    h0 = s.initial(opt(inputs, 5))
    ys, finals = [], [[]]
    for d in range(len(s.reverse)):
        xw, rt, rb = s.projected(d, 1)
        f = _clipped(s.acts[d][0], s.clip)

        def cell(x, st, f=f, rt=rt, rb=rb):
            return (f(x + linalg.matmul(st[0], rt) + rb),)

        y, (h,) = s.run(d, xw, (h0[d],), cell)
        ys.append(y)
        finals[0].append(h)
    return s.outputs(ys, finals, attrs)


def gru_op(inputs, attrs: Attrs):
    s = _Setup(inputs, attrs, 3, ["Sigmoid", "Tanh"])
    h0, H = s.initial(opt(inputs, 5)), s.hidden
    before_reset = attrs.get("linear_before_reset", 0)
    ys, finals = [], [[]]
    for d in range(len(s.reverse)):
        xw, rt, rb = s.projected(d, 3)
        f, g = (_clipped(a, s.clip) for a in s.acts[d])

        def cell(x, st, rt=rt, rb=rb, f=f, g=g):
            h = st[0]
            hr = linalg.matmul(h, movement.narrow(rt, 1, 0, 2 * H)) + movement.narrow(rb, 0, 0, 2 * H)
            z = f(movement.narrow(x, -1, 0, H) + movement.narrow(hr, -1, 0, H))
            r = f(movement.narrow(x, -1, H, H) + movement.narrow(hr, -1, H, H))
            r_h, rb_h = movement.narrow(rt, 1, 2 * H, H), movement.narrow(rb, 0, 2 * H, H)
            if before_reset:
                cand = g(movement.narrow(x, -1, 2 * H, H) + r * (linalg.matmul(h, r_h) + rb_h))
            else:
                cand = g(movement.narrow(x, -1, 2 * H, H) + linalg.matmul(r * h, r_h) + rb_h)
            return ((1.0 - z) * cand + z * h,)

        y, (h,) = s.run(d, xw, (h0[d],), cell)
        ys.append(y)
        finals[0].append(h)
    return s.outputs(ys, finals, attrs)


def lstm_op(inputs, attrs: Attrs):
    s = _Setup(inputs, attrs, 4, ["Sigmoid", "Tanh", "Tanh"])
    h0, c0, H = s.initial(opt(inputs, 5)), s.initial(opt(inputs, 6)), s.hidden
    peep = opt(inputs, 7)
    couple = attrs.get("input_forget", 0)
    ys, finals = [], [[], []]
    for d in range(len(s.reverse)):
        xw, rt, rb = s.projected(d, 4)
        f, g, act_h = (_clipped(a, s.clip) for a in s.acts[d])
        p = [None] * 3 if peep is None else [movement.narrow(peep[d], 0, k * H, H) for k in range(3)]

        def cell(x, st, rt=rt, rb=rb, f=f, g=g, act_h=act_h, p=p):
            h, c = st
            gates = x + linalg.matmul(h, rt) + rb
            i_pre, o_pre, f_pre, c_pre = (movement.narrow(gates, -1, k * H, H) for k in range(4))
            i = f(i_pre if p[0] is None else i_pre + p[0] * c)
            fg = 1.0 - i if couple else f(f_pre if p[2] is None else f_pre + p[2] * c)
            c_new = fg * c + i * g(c_pre)
            o = f(o_pre if p[1] is None else o_pre + p[1] * c_new)
            return o * act_h(c_new), c_new

        y, (h, c) = s.run(d, xw, (h0[d], c0[d]), cell)
        ys.append(y)
        finals[0].append(h)
        finals[1].append(c)
    return s.outputs(ys, finals, attrs)
