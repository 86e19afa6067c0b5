"""Module: the base class of layers and models (parameters, buffers, submodules, state dicts, hooks)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple

from .._core import effects
from .._core.errors import EmberError, ShapeError, TraceError
from .._core.state import STATE
from .._core.tensor import Tensor, Tracer
from ..compiler import guards
from .parameter import Parameter


class _IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list


class StateDictError(EmberError, KeyError):
    """``load_state_dict`` found missing, unexpected or shape-mismatched keys."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class _RemovableHandle:
    """Returned by the hook registration methods; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict) -> None:
        self._hooks = hooks
        self.id = _RemovableHandle._next_id
        _RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


# the attributes Module keeps for itself (their contents count otherwise in _jit_signature, or not at all)
_INTERNAL = frozenset({"_parameters", "_buffers", "_non_persistent", "_modules", "_forward_pre_hooks",
                       "_forward_hooks", "_compiled_call", "_compile_options"})


def _write_traced(where: str, old: Tensor, value: Tracer) -> bool:
    """Under ember.jit, the tensor `old` held by a module (`where` names it) is assigned a traced value:
    each run writes the value into it, so it must keep its shape and dtype (TraceError otherwise).
    False when the transform tracing the value cannot write it."""
    if tuple(value.shape) != tuple(old.shape) or value.dtype is not old.dtype:
        raise TraceError("jit", f"{where} is assigned a tensor of shape {tuple(value.shape)} and dtype "
                         f"{value.dtype} inside a compiled function, where it held {tuple(old.shape)} "
                         f"{old.dtype}; a compiled run writes into the tensor it holds, so keep its shape "
                         "and dtype (or return the value instead)", (value,))
    return effects.write(old, value)


class Module:
    """Base class of every layer and model, with PyTorch's semantics.

    Assigning a :class:`Parameter`, a Module or (through :meth:`register_buffer`) a tensor to an
    attribute registers it; ``state_dict`` keys are the dotted attribute paths.

    Example:
        >>> import ember
        >>> class Affine(ember.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = ember.nn.Parameter(ember.ones(2))
        ...     def forward(self, x):
        ...         return x * self.w
        >>> Affine()(ember.tensor([1.0, 2.0])).tolist()
        [1.0, 2.0]
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses override it. Call the module itself, not ``forward``."""
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        compiled = self.__dict__.get("_compiled_call")
        if compiled is not None:
            return compiled(*args, **kwargs)
        return self._call(*args, **kwargs)

    def compile(self, **options: Any) -> None:
        """Compile this module's calls in place with :func:`ember.jit` (``options`` are jit's keyword
        arguments), as PyTorch's ``Module.compile``: calling the module then runs the compiled graph,
        which stays differentiable, while its parameters, ``state_dict`` and hooks are unchanged.

        Example:
            >>> import ember
            >>> layer = ember.nn.Linear(3, 2)
            >>> layer.compile()
            >>> tuple(layer(ember.ones(4, 3)).shape)
            (4, 2)
        """
        from ..compiler import jit

        self.__dict__["_compiled_call"] = jit(self._call, **options)
        self.__dict__["_compile_options"] = dict(options)

    def __getstate__(self) -> dict:
        # a compiled module is copied or pickled without its graphs (they hold C function pointers and
        # this object's tensors); the copy compiles itself again, with the same options
        state = dict(self.__dict__)
        state.pop("_compiled_call", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_compile_options" in state:
            self.compile(**state["_compile_options"])

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        if STATE.get().traces:
            effects.note_state(self)  # under ember.jit, its mode and tensors join the cache key
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def _jit_signature(self) -> tuple:
        """What a compiled function that called this module depends on: its plain Python settings
        (train/eval mode, a dropout probability, an epsilon, a NumPy scalar, a tuple, list or dict of
        sizes: the graph has their values baked in), which tensors its parameters and buffers are (the
        graph reads those very tensors, so assigning a new one recompiles; ``load_state_dict`` copies into
        them and does not), and which parameters require gradients (freezing one changes what the backward
        pass and the optimiser compute). Tensors and functions held in plain attributes (neither
        parameters nor buffers), submodules and forward hooks count by identity: replacing a layer or
        registering a hook recompiles. Other objects held in attributes (a config object) do not count.
        It is computed on every call of a compiled function, for every module the function used."""
        params = [(id(p), p is not None and p._requires_grad) for p in self._parameters.values()]
        hooks = (tuple(map(id, self._forward_pre_hooks.values())),
                 tuple(map(id, self._forward_hooks.values())))
        return (guards.attributes_key(self.__dict__, _INTERNAL), tuple(params),
                tuple(map(id, self._buffers.values())), tuple((k, id(m)) for k, m in self._modules.items()),
                hooks)

    # -- registration -------------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is not None and STATE.get().traces and (
                name in self.__dict__ or name in params or name in self._buffers or name in self._modules):
            # under ember.jit, changed by the traced code: the cache key holds the module as that code
            # found it (so that the next call, which finds the new value, traces again)
            effects.note_state(self)
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._discard(name, keep=params)
            params[name] = value
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign submodules before Module.__init__() call")
            self._discard(name, keep=self._modules)
            self._modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter '{name}' "
                                "(ember.nn.Parameter or None expected)")
            params[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer '{name}'")
            old = self._buffers[name]
            if isinstance(value, Tracer) and isinstance(old, Tensor) and not isinstance(old, Tracer) \
                    and effects.recorder() is not None:
                # traced by ember.jit (self.ema = 0.9 * self.ema + ...): each run writes the new value
                # into the buffer, which stays the same tensor
                if _write_traced(f"buffer '{name}' of {type(self).__name__}", old, value):
                    return
            self._buffers[name] = value
        elif isinstance(value, Tracer) and params is not None and effects.recorder() is not None:
            self._assign_traced(name, value)
        else:
            object.__setattr__(self, name, value)

    def _assign_traced(self, name: str, value: Tracer) -> None:
        """A value computed inside a compiled function is assigned to plain attribute `name` (neither a
        parameter nor a buffer). A compiled run executes no Python, so the attribute must not keep the
        traced value: where it holds a tensor of the same shape and dtype, each run writes the new value
        into that tensor, as for a buffer (``self.avg = 0.5 * self.avg + x``); otherwise TraceError."""
        old = self.__dict__.get(name)
        where = f"attribute '{name}' of {type(self).__name__}"
        if isinstance(old, Tensor) and not isinstance(old, Tracer):
            if _write_traced(where, old, value):
                return
            raise TraceError("jit", f"{where} is assigned a traced value where the transform tracing it "
                             "cannot write it into the tensor the attribute holds; return the value instead",
                             (value,))
        held = "None" if old is None else f"a {type(old).__name__}"
        if name not in self.__dict__:
            held = "nothing"
        raise TraceError("jit", f"{where} is assigned a tensor computed inside a compiled function, where "
                         f"it held {held}; a compiled run executes no Python, so the attribute would keep a "
                         "value that exists only inside the graph. Register it as a buffer before compiling "
                         f"(self.register_buffer('{name}', tensor): each run writes the new value into it), "
                         "or return the value instead", (value,))

    def _discard(self, name: str, keep: dict | None = None) -> None:
        """Forget `name` everywhere except in `keep` (where re-assignment keeps its position)."""
        for store in (self.__dict__, self._parameters, self._buffers, self._modules):
            if store is not keep:
                store.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        for store in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(store)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` (or None, a declared but absent parameter) under `name`."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter '{name}'")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a non-learnable tensor (running statistics…); persistent buffers are in the state dict."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} as buffer '{name}'")
        self._discard(name)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def register_module(self, name: str, module: "Module | None") -> None:
        """Register a submodule under `name` (a name already registered keeps its position)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._discard(name, keep=self._modules)
        self._modules[name] = module

    add_module = register_module

    # -- iteration ---------------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """Every module in the tree (this one first) with its dotted name; shared modules once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        """Every module in the tree."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """Direct submodules with their names."""
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator["Module"]:
        """Direct submodules."""
        for _, child in self.named_children():
            yield child

    def _named_members(self, store: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set = set()
        mods = self.named_modules(prefix=prefix) if recurse else iter([(prefix, self)])
        for mod_prefix, mod in mods:
            for name, value in getattr(mod, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Parameters with dotted names (shared parameters once)."""
        yield from self._named_members("_parameters", prefix, recurse)  # type: ignore[misc]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Parameters of this module and (with `recurse`) its submodules."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """Buffers with dotted names."""
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Buffers of this module and its submodules."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -- modes and state -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active, batch norm uses batch statistics) on the whole tree."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Set evaluation mode on the whole tree."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set ``requires_grad`` on every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter (to None by default, as in PyTorch)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad = p.grad.detach() * 0

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call `fn` on every submodule (children first) and on this module; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _convert_tensors(self, convert: Callable[[Tensor], Tensor]) -> None:
        done: dict[int, Tensor] = {}  # a tensor shared by several modules (tied weights) stays shared
        for m in self.modules():
            for p in m._parameters.values():  # in place, as PyTorch does: optimisers keep holding them
                if p is not None and id(p) not in done:
                    done[id(p)] = p
                    p.data = convert(p.detach())
                    if p._grad is not None:
                        p._grad = convert(p._grad)
            for name, b in m._buffers.items():
                if b is not None:
                    if id(b) not in done:
                        done[id(b)] = convert(b)
                    m._buffers[name] = done[id(b)]

    def to(self, *args: Any, **kwargs: Any) -> "Module":
        """Move and/or cast parameters and buffers (``to(device)``, ``to(dtype)``); floats only are cast."""
        from .._core.dtypes import DType, as_dtype

        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        for a in args:
            if isinstance(a, DType) or (isinstance(a, str) and a in ("float32", "float64", "float16",
                                                                       "bfloat16")):
                dtype = as_dtype(a)
            else:
                device = a

        def convert(t: Tensor) -> Tensor:
            out = t
            if dtype is not None and t.dtype.is_floating_point:
                out = out.to(dtype)
            if device is not None:
                out = out.to(device)
            return out

        self._convert_tensors(convert)
        return self

    def float(self) -> "Module":
        """Cast floating parameters and buffers to float32."""
        from .._core import dtypes

        return self.to(dtypes.float32)

    def double(self) -> "Module":
        """Cast floating parameters and buffers to float64."""
        from .._core import dtypes

        return self.to(dtypes.float64)

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by dotted name (detached unless `keep_vars`)."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for mod_prefix, mod in self.named_modules(prefix=prefix.rstrip(".")):
            pre = f"{mod_prefix}." if mod_prefix else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    out[pre + name] = p if keep_vars else p.detach()
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent:
                    out[pre + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> _IncompatibleKeys:
        """Copy values from `state_dict` into parameters and buffers (in place, keeping identities).

        Raises StateDictError listing every missing, unexpected and shape-mismatched key when `strict`
        (shape mismatches always raise). Returns the missing and unexpected keys.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                      for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("size mismatch: " + "; ".join(mismatched))
        if problems:
            raise StateDictError("load_state_dict", f"error(s) loading state dict for {type(self).__name__}: "
                                 + " | ".join(problems))
        from .._core.autograd import no_grad

        with no_grad():
            for key, target in own.items():
                if key in state_dict:
                    _copy_into(target, state_dict[key])
        return _IncompatibleKeys(missing, unexpected)

    # -- hooks -------------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable) -> _RemovableHandle:
        """``hook(module, args)`` runs before forward; it may return replacement args."""
        handle = _RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable) -> _RemovableHandle:
        """``hook(module, args, output)`` runs after forward; it may return a replacement output."""
        handle = _RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # -- repr --------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """Extra text shown in the repr (layer sizes and options); subclasses override it."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        names = set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules)
        return sorted(names)


def _copy_into(target: Tensor, source: Any) -> None:
    import numpy as np

    if isinstance(source, Tensor):
        data = source._device.backend.to_numpy(source._data)
    else:
        data = np.asarray(source)
    if tuple(np.shape(data)) != tuple(target.shape):
        raise ShapeError("load_state_dict", f"cannot copy shape {np.shape(data)} into {tuple(target.shape)}")
    target._data[...] = target._device.backend.asarray(data, target.dtype)
    target._bump_version()
