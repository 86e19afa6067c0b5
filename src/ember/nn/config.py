"""Build models from plain configuration (dict, JSON, YAML) and write a model's configuration back.

A configuration names a layer by ``"type"`` and gives its constructor arguments as the other keys::

    {"type": "Sequential", "layers": [
        {"type": "Conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 8 * 28 * 28, "out_features": 10}]}

Containers take their children under ``"layers"``: a list (children named ``0, 1, …``) or a dict of
named children (``Sequential``, ``ModuleList`` take either, ``ModuleDict`` a dict). Types resolve to the
public Module classes of ``ember.nn`` by name, and to classes or factories added with
:func:`register_layer`.

How :func:`to_config` recovers constructor arguments (two explicit sources, in this order):

1. A module built by :func:`from_config` carries the exact arguments it was built with, in the
   ``_config_args`` attribute, so ``to_config(from_config(c)) == c``.
2. Any other module is introspected: each argument of its class's ``__init__`` signature is read from
   the attribute of the same name (PyTorch's layers keep their arguments that way). A tensor or None
   read for a boolean argument (``bias``) becomes ``tensor is not None``; tuples become lists; values
   equal to the default are left out; ``device`` and ``dtype`` are never written. An optional argument
   with no attribute of its name falls back to its default, so a user layer whose behaviour depends on
   such an argument should be built with :func:`from_config` or keep the argument as an attribute.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import json
import os
from collections import OrderedDict
from typing import Any, Callable

from .._core.errors import EmberError
from .._core.tensor import Tensor
from .containers import ModuleDict, ModuleList, Sequential
from .module import Module

__all__ = ["ConfigError", "from_config", "to_config", "register_layer", "known_layers"]

_CONTAINERS = {"Sequential": Sequential, "ModuleList": ModuleList, "ModuleDict": ModuleDict}
_SKIPPED_ARGS = ("self", "device", "dtype")
_REGISTRY: dict[str, Callable[..., Module]] = {}


class ConfigError(EmberError, ValueError):
    """A configuration that cannot be built or a module whose configuration cannot be written."""


def register_layer(name: str, cls: Callable[..., Module]) -> Callable[..., Module]:
    """Make `cls` (a Module class or a factory returning a Module) buildable as ``{"type": name}``.

    Args:
        name: the ``"type"`` string used in configurations; it may shadow an ``ember.nn`` name.
        cls: Module subclass or callable returning a Module; it receives the config's other keys.

    Returns:
        `cls`, so the function also works as a decorator factory's target.

    Example:
        >>> import ember
        >>> class Scale(ember.nn.Module):
        ...     def __init__(self, factor: float = 2.0):
        ...         super().__init__()
        ...         self.factor = factor
        ...     def forward(self, x):
        ...         return x * self.factor
        >>> _ = ember.nn.register_layer("Scale", Scale)
        >>> ember.nn.from_config({"type": "Scale", "factor": 3.0})(ember.ones(2)).tolist()
        [3.0, 3.0]
    """
    if not isinstance(name, str) or not name:
        raise ConfigError("register_layer", f"the name must be a non-empty string, got {name!r}")
    if not callable(cls):
        raise ConfigError("register_layer", f"{name!r}: expected a Module class or factory, got {cls!r}")
    _REGISTRY[name] = cls
    return cls


def _builtin_layers() -> dict[str, type]:
    # Looked up when called, not at import: ember.nn imports this module, and layer families
    # added to ember.nn later are found without touching this file.
    nn = importlib.import_module(__package__)
    return {name: obj for name, obj in vars(nn).items()
            if isinstance(obj, type) and issubclass(obj, Module) and not name.startswith("_")}


def known_layers() -> list[str]:
    """The ``"type"`` names :func:`from_config` accepts: ``ember.nn`` layers and registered ones.

    Example:
        >>> import ember
        >>> "Conv2d" in ember.nn.known_layers()
        True
    """
    return sorted(set(_builtin_layers()) | set(_REGISTRY))


def _resolve(type_name: Any, where: str) -> Callable[..., Module]:
    if not isinstance(type_name, str):
        raise ConfigError("from_config", f"{where}: 'type' must be a layer name string, got {type_name!r}")
    if type_name in _REGISTRY:
        return _REGISTRY[type_name]
    builtin = _builtin_layers()
    if type_name in builtin:
        return builtin[type_name]
    raise ConfigError("from_config", f"{where}: unknown layer type {type_name!r}; known types: "
                      + ", ".join(known_layers()) + " (add others with ember.nn.register_layer)")


# -- reading ---------------------------------------------------------------------------------------
def _read_file(path: str) -> Any:
    lower = path.lower()
    if lower.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ConfigError("from_config", f"reading {path!r} needs PyYAML (pip install pyyaml); "
                              "or give the configuration as JSON or a dict") from None
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    if lower.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    raise ConfigError("from_config", f"cannot tell the format of {path!r}: use a .json, .yaml or .yml file")


def _load(cfg: Any) -> Any:
    if isinstance(cfg, os.PathLike):
        cfg = os.fspath(cfg)
    if isinstance(cfg, str):
        if cfg.lstrip().startswith("{"):
            return json.loads(cfg)
        if not os.path.exists(cfg):
            raise ConfigError("from_config", f"no configuration file at {cfg!r}")
        return _read_file(cfg)
    return cfg


def from_config(cfg: dict | str | os.PathLike) -> Module:
    """Build a module from a configuration dict, a JSON string, or a path to a .json/.yaml/.yml file.

    Args:
        cfg: ``{"type": name, **constructor_arguments}``; containers (``Sequential``, ``ModuleList``,
            ``ModuleDict``) take their children as a list or a dict under ``"layers"``.

    Returns:
        The module; each module built remembers its arguments for :func:`to_config`.

    Raises:
        ConfigError: unknown layer type (the message lists the known ones), an argument the layer does not
        take or a missing required one (the message names the layer's position and the argument), or a
        layer constructor that rejected its arguments.

    Example:
        >>> import ember
        >>> net = ember.nn.from_config({"type": "Sequential", "layers": [
        ...     {"type": "Linear", "in_features": 4, "out_features": 8}, {"type": "ReLU"},
        ...     {"type": "Linear", "in_features": 8, "out_features": 2}]})
        >>> tuple(net(ember.ones(3, 4)).shape)
        (3, 2)
    """
    return _build(_load(cfg), "config")


def _build(cfg: Any, where: str) -> Module:
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ConfigError("from_config", f"{where}: expected a dict with a 'type' key, got {cfg!r}")
    if cfg["type"] in _CONTAINERS and cfg["type"] not in _REGISTRY:
        module = _build_container(cfg, where)
    else:
        module = _build_layer(cfg, where)
    object.__setattr__(module, "_config_args", copy.deepcopy(cfg))
    return module


def _build_container(cfg: dict, where: str) -> Module:
    kind = cfg["type"]
    extra = sorted(set(cfg) - {"type", "layers"})
    if extra:
        raise ConfigError("from_config", f"{where} ({kind}): unexpected argument {extra[0]!r}; a container "
                          "takes only 'layers'")
    layers = cfg.get("layers", [])
    if isinstance(layers, list) and kind != "ModuleDict":
        children = [_build(c, f"{where}.layers[{i}]") for i, c in enumerate(layers)]
        return _CONTAINERS[kind](*children) if kind == "Sequential" else ModuleList(children)
    if isinstance(layers, dict):
        named = OrderedDict((str(k), _build(c, f"{where}.layers[{k!r}]")) for k, c in layers.items())
        if kind == "Sequential":
            return Sequential(named)
        container = _CONTAINERS[kind]()
        for name, child in named.items():
            container.register_module(name, child)
        return container
    wanted = "a dict" if kind == "ModuleDict" else "a list or a dict"
    raise ConfigError("from_config", f"{where} ({kind}): 'layers' must be {wanted}, got {layers!r}")


def _build_layer(cfg: dict, where: str) -> Module:
    factory = _resolve(cfg["type"], where)
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    label = f"{where} ({cfg['type']})"
    _check_arguments(factory, kwargs, label)
    try:
        module = factory(**kwargs)
    except (TypeError, ValueError, EmberError) as exc:
        raise ConfigError("from_config", f"{label}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, Module):
        raise ConfigError("from_config", f"{label}: the factory returned {type(module).__name__}, "
                          "not a Module")
    return module


def _signature(factory: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):
        return None


def _check_arguments(factory: Callable, kwargs: dict, label: str) -> None:
    sig = _signature(factory)
    if sig is None:
        return
    params = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    takes = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in kwargs:
        if name not in takes:
            raise ConfigError("from_config", f"{label}: unexpected argument {name!r}; it takes "
                              + (", ".join(repr(t) for t in takes) or "no arguments"))
    for name, p in params.items():
        required = p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        if required and name not in kwargs:
            raise ConfigError("from_config", f"{label}: missing required argument {name!r}")


# -- writing ---------------------------------------------------------------------------------------
def to_config(module: Module, path: str | os.PathLike | None = None) -> dict:
    """The configuration that rebuilds `module` with :func:`from_config` (weights not included).

    Args:
        module: a module built by :func:`from_config`, a container of layers, or any layer whose
            constructor arguments are kept as attributes of the same name (see the module notes).
        path: if given, also write the configuration there as JSON (.json) or YAML (.yaml/.yml).

    Returns:
        A plain dict of JSON types.

    Raises:
        ConfigError: a required constructor argument cannot be read back or is not a plain value.

    Example:
        >>> import ember
        >>> cfg = ember.nn.to_config(ember.nn.Sequential(ember.nn.Linear(4, 2), ember.nn.ReLU()))
        >>> cfg["layers"]
        [{'type': 'Linear', 'in_features': 4, 'out_features': 2}, {'type': 'ReLU'}]
    """
    cfg = _describe(module, "module")
    if path is not None:
        _write_file(cfg, os.fspath(path))
    return cfg


def _describe(module: Module, where: str) -> dict:
    stored = module.__dict__.get("_config_args")
    if stored is not None:
        return copy.deepcopy(stored)
    kind = type(module).__name__
    if type(module) in _CONTAINERS.values():
        return {"type": kind, "layers": _describe_children(module, where)}
    return {"type": _type_name(module), **_introspect(module, where)}


def _describe_children(module: Module, where: str) -> list | dict:
    children = list(module.named_children())
    names = [n for n, _ in children]
    if not isinstance(module, ModuleDict) and names == [str(i) for i in range(len(names))]:
        return [_describe(c, f"{where}[{i}]") for i, (_, c) in enumerate(children)]
    return {n: _describe(c, f"{where}.{n}") for n, c in children}


def _type_name(module: Module) -> str:
    cls = type(module)
    for name, registered in _REGISTRY.items():
        if registered is cls:
            return name
    return cls.__name__


def _introspect(module: Module, where: str) -> dict:
    sig = _signature(type(module).__init__)
    if sig is None:
        return {}
    out = {}
    for name, p in sig.parameters.items():
        if name in _SKIPPED_ARGS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        required = p.default is p.empty
        label = f"{where} ({type(module).__name__})"
        if not _has_attribute(module, name):
            if required:
                raise ConfigError("to_config", f"{label}: cannot read constructor argument {name!r} (no "
                                  "attribute of that name); build the layer with from_config to record it")
            continue
        value = _plain(getattr(module, name), p.default, name, label)
        if required or not _same(value, p.default):
            out[name] = value
    return out


def _has_attribute(module: Module, name: str) -> bool:
    try:
        getattr(module, name)
    except AttributeError:
        return False
    return True


def _plain(value: Any, default: Any, name: str, label: str) -> Any:
    if isinstance(default, bool) and (value is None or isinstance(value, Tensor)):
        return value is not None  # `bias=True` leaves a Parameter behind, `bias=False` leaves None
    if isinstance(value, tuple):
        value = [_plain(v, None, name, label) for v in value]
    if isinstance(value, list):
        return [_plain(v, None, name, label) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError("to_config", f"{label}: argument {name!r} holds {type(value).__name__}, which a "
                      "configuration cannot hold; build the layer with from_config or register a factory")


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, list) and isinstance(default, (int, float)) and not isinstance(default, bool):
        return all(v == default for v in value)  # stride=1 is stored as (1, 1)
    return value == default and isinstance(value, bool) == isinstance(default, bool)


def _write_file(cfg: dict, path: str) -> None:
    lower = path.lower()
    if lower.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ConfigError("to_config", f"writing {path!r} needs PyYAML (pip install pyyaml)") from None
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
    elif lower.endswith(".json"):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)
    else:
        raise ConfigError("to_config", f"cannot tell the format of {path!r}: use a .json, .yaml or .yml file")
