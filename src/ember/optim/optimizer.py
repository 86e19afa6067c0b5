"""The optimiser base class: parameter groups, per-parameter state, state dicts, atomic steps."""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

from .._core import effects
from .._core.autograd import no_grad
from .._core.device import CPU_DEVICE, Device
from .._core.errors import EmberError, ShapeError
from .._core.tensor import Tensor, Tracer

# The hyper-parameters that schedulers change between steps (the learning rate; OneCycleLR also cycles
# the momentum or Adam's first beta).
SCHEDULED = ("lr", "momentum", "betas")


class Optimizer:
    """Base class of optimisers (PyTorch's API).

    Subclasses implement :meth:`_updates`, which returns the new value of every parameter (and
    updates their state in a scratch copy); :meth:`step` writes them all only once every update has been
    computed, so an error during a step leaves the parameters and state unchanged.

    A subclass whose :meth:`_updates` uses the hyper-parameters named in ``run_time_hyper`` only in
    arithmetic, and branches at most on whether they are zero (``if group["momentum"]:``, not
    ``> 0``, which would be a traced comparison), lists them there. Under ``ember.jit`` it
    then receives them as 0-d float64 tensors that the compiled step reads at run time, so a
    learning-rate schedule changes them without recompiling the step.
    """

    run_time_hyper: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], defaults: dict) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict] = {}
        self.param_groups: list[dict] = []
        groups = list(params)
        if not groups:
            raise EmberError(type(self).__name__, "optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with its own options (others default to the constructor's)."""
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise EmberError(type(self).__name__, "some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None by default)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad = p.grad.detach() * 0

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        """The new value of `p`; may update `state` (a copy that is committed with the step)."""
        raise NotImplementedError

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns the closure's loss if one is given."""
        effects.note_state(self)
        loss = None
        if closure is not None:
            from .._core.autograd import enable_grad

            with enable_grad():
                loss = closure()
        pending = []
        with no_grad():
            for group in self._groups_for_step():
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if tuple(p.grad.shape) != tuple(p.shape):
                        raise ShapeError(f"{type(self).__name__}.step", f"gradient of shape "
                                         f"{tuple(p.grad.shape)} for a parameter of shape {tuple(p.shape)}",
                                         (p, p.grad))
                    state = copy.copy(self.state.get(p, {}))
                    new = self._updates(group, p, p.grad.detach(), state)
                    pending.append((p, new, state))
            for p, new, state in pending:  # commit: nothing above has touched a parameter or the state
                if not effects.write(p, new):  # (under ember.jit the write happens after each run)
                    p._data[...] = new._data
                    p._bump_version()
                before = self.state.get(p, effects.MISSING)
                _defer_state({} if before is effects.MISSING else before, state)
                self.state[p] = state
                # under ember.jit the entry is put back when tracing ends and set by each run, so that a
                # second trace (dynamic dimensions) starts from the same state as the first
                effects.defer_item(self.state, p, state, before)
        return loss

    def _groups_for_step(self) -> list[dict]:
        """The parameter groups :meth:`_updates` sees. Under ``ember.jit``, copies whose
        ``run_time_hyper`` numbers are 0-d tensors the graph reads at run time (see
        :meth:`_jit_refresh`); otherwise the groups themselves."""
        if not self.run_time_hyper or not effects.note_refresh(self):
            return self.param_groups
        cells = self.__dict__.setdefault("_hyper_cells", {})
        groups = []
        for i, group in enumerate(self.param_groups):
            view = dict(group)
            device = group["params"][0].device if group["params"] else CPU_DEVICE
            for key in self.run_time_hyper:
                value = group.get(key)
                if _is_number(value):
                    view[key] = _cell(cells, (i, key, None), value, device)
                elif isinstance(value, tuple) and any(_is_number(v) for v in value):
                    view[key] = tuple(_cell(cells, (i, key, j), v, device) if _is_number(v) else v
                                      for j, v in enumerate(value))
            groups.append(view)
        return groups

    def _jit_refresh(self) -> None:
        """Write the current ``run_time_hyper`` values into the tensors compiled steps read them from
        (called before each run)."""
        for (i, key, j), cell in self.__dict__.get("_hyper_cells", {}).items():
            if i < len(self.param_groups):
                value = self.param_groups[i].get(key)
                value = value[j] if j is not None and isinstance(value, tuple) and j < len(value) else value
                if _is_number(value):
                    cell._data[...] = value

    def _jit_signature(self) -> tuple:
        """What a compiled step depends on: hyper-parameters, the parameters, and the state's structure
        and tensors (the graph reads and updates those very tensors, so a state tensor replaced by
        assignment recompiles; :meth:`load_state_dict` copies into them instead).

        The ``run_time_hyper`` numbers count only by whether they are zero: the graph reads their
        values at run time."""
        def describe(key: str, v: Any) -> Any:
            if key in self.run_time_hyper:
                if _is_number(v):
                    return ("run time", v != 0)
                if isinstance(v, tuple):
                    return tuple(("run time", x != 0) if _is_number(x) else repr(x) for x in v)
            return repr(v)

        groups = tuple((tuple(map(id, g["params"])),
                        tuple(sorted((k, describe(k, v)) for k, v in g.items() if k != "params")))
                       for g in self.param_groups)
        state = []
        for g in self.param_groups:
            for p in g["params"]:
                s = self.state.get(p, {})
                state.append(tuple(sorted((k, _describe(v)) for k, v in s.items())))
        return (type(self).__name__, groups, tuple(state))

    def state_dict(self) -> dict:
        """Optimiser state and hyper-parameters; parameters are referred to by position."""
        index = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned (the parameter groups must have the same sizes).

        A saved tensor whose entry already holds a tensor of the same shape, dtype and device is copied
        into that tensor, so a compiled step that reads it goes on without recompiling; other entries
        get copies of the saved tensors. Nothing is changed if the state does not fit."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise EmberError("load_state_dict", "the optimizer state does not match the parameter groups")
        params = {}
        for saved, group in zip(groups, self.param_groups):
            for i, p in zip(saved["params"], group["params"]):
                params[i] = p
        copies: list[tuple[Tensor, Tensor]] = []
        state = {}
        for i, saved_state in state_dict["state"].items():
            if int(i) not in params:
                raise EmberError("load_state_dict", f"the optimizer state names parameter {i}, which the "
                                 f"parameter groups do not have ({len(params)} parameters)")
            p = params[int(i)]
            state[p] = _clone_state(saved_state, self.state.get(p, {}), copies)
        for saved, group in zip(groups, self.param_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        with no_grad():
            for target, value in copies:
                target.copy_(value)
        self.state = state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params")
        return "\n".join(lines + [")"])


def weight_decayed(group: dict, p: Tensor, grad: Tensor, decoupled: bool) -> tuple[Tensor, Tensor]:
    """The parameter and gradient an Adam-family update starts from: the gradient negated under
    ``maximize``, then weight decay either added to the gradient (L2) or, `decoupled` (AdamW-style),
    applied to the parameter as ``p * (1 - lr * wd)``."""
    g = -grad if group["maximize"] else grad
    wd = group["weight_decay"]
    if wd and decoupled:
        return p * (1 - group["lr"] * wd), g
    if wd:
        return p, g + wd * p
    return p, g


def next_step(state: dict) -> Tensor:
    """The state's step count plus one, as a float64 tensor (as PyTorch keeps it): a compiled step reads
    it instead of baking a Python number into its graph, which would recompile on every step."""
    from .._core.creation import tensor
    from .._core.dtypes import float64

    step = state.get("step")
    if step is None or not isinstance(step, Tensor):
        return tensor(float(step or 0) + 1.0, dtype=float64)
    return step + 1


def _defer_state(old: dict, new: dict) -> None:
    """Under ember.jit: a traced state value is written into the tensor it replaces (which the graph
    reads), or, for a new entry (or a constant one, as a first step count), assigned to the state dict
    after each run."""
    for key, value in new.items():
        if key in old and old[key] is value:
            continue
        prev = old.get(key)
        if isinstance(value, Tracer) and isinstance(prev, Tensor) and not isinstance(prev, Tracer) \
                and tuple(prev.shape) == tuple(value.shape) and prev.dtype is value.dtype:
            effects.write(prev, value, rebinds=True)
            new[key] = prev
        else:
            effects.defer_item(new, key, value, old.get(key, effects.MISSING))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _cell(cells: dict, key: tuple, value: float, device: Device) -> Tensor:
    """The 0-d float64 tensor on `device` holding hyper-parameter `key` for compiled steps, set to
    `value`. It is one tensor for the optimiser's lifetime (graphs read it at run time), made with the
    tensor constructor directly: a tensor the traced code created would count as a foldable constant."""
    from .._core.dtypes import float64

    cell = cells.get(key)
    if cell is None or cell.device != device:
        cell = cells[key] = Tensor._make(device.backend.asarray(0.0, float64), float64, device)
    cell._data[...] = value
    return cell


def _describe(v: Any) -> Any:
    return (id(v), tuple(v.shape), v.dtype.name) if isinstance(v, Tensor) else repr(v)


def _clone_state(state: dict, current: dict, copies: list) -> dict:
    """`state` with copies of its tensors. A tensor whose entry in `current` is a tensor of the same
    shape, dtype and device keeps that tensor, and (tensor, saved value) joins `copies` instead."""
    out = {}
    for k, v in state.items():
        old = current.get(k)
        if isinstance(v, Tensor) and isinstance(old, Tensor) and tuple(old.shape) == tuple(v.shape) \
                and old.dtype is v.dtype and old.device == v.device:
            copies.append((old, v))
            out[k] = old
        else:
            out[k] = v.clone() if isinstance(v, Tensor) else v
    return out
