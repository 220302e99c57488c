"""Typed step parameters: what is hashed into a step's key, and how spec.json turns back into a dataclass.

Every step declares a frozen dataclass of what it reads (mostly whole config sections). Its fields are
either *semantic* (they change the step's outputs: hashed into the key) or *runtime* (batch sizes,
workers, paths to files whose content is hashed elsewhere: not hashed), marked with ``metadata=RUNTIME``.
A field whose value names a file (a prompt, a chat template) carries ``metadata={"digest": fn}``: its
key contribution is the file's content, not its name. The config schema is the only place defaults live;
params dataclasses have none, so a missing value is an error, never a silent fallback.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import field
from typing import Any, TypeVar

import dacite

RUNTIME = {"hash": False}
T = TypeVar("T")


def runtime(default: Any) -> Any:
    """A config knob that must not change outputs: left out of step keys."""
    return field(default=default, metadata=RUNTIME)


def runtime_field() -> Any:
    """A required params field that is not hashed (params dataclasses have no defaults)."""
    return field(metadata=RUNTIME)


def hash_view(obj: Any) -> Any:
    """The semantic part of a params value: runtime fields dropped, file-naming fields replaced by a digest."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        view = {}
        for f in dataclasses.fields(obj):
            if f.metadata.get("hash", True) is False:
                continue
            value = getattr(obj, f.name)
            digest: Callable[[Any], str] | None = f.metadata.get("digest")
            view[f.name] = digest(value) if digest is not None and value else hash_view(value)
        return view
    if isinstance(obj, list | tuple):
        return [hash_view(v) for v in obj]
    if isinstance(obj, dict):
        return {k: hash_view(v) for k, v in obj.items()}
    return obj


def to_json(params: Any) -> Any:
    """Every field, runtime included: what spec.json stores so that a child can rebuild the params."""
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return dataclasses.asdict(params)
    return params


def type_name(params: Any) -> str | None:
    """``module:QualName`` of a params dataclass (None for a plain JSON mapping, as toy steps use)."""
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        cls = type(params)
        return f"{cls.__module__}:{cls.__qualname__}"
    return None


def rebuild(name: str | None, data: Any) -> Any:
    """The params dataclass ``name`` from its JSON (each config section validated again on the way)."""
    if name is None:
        return data
    module, _, qualname = name.partition(":")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    # dacite, not OmegaConf: params nest frozen dataclasses, which OmegaConf marks read-only and cannot merge
    # into. Strict: a key the dataclass lacks is an error, not ignored. Constructors run, so each config
    # section is validated again.
    try:
        return dacite.from_dict(cls, data, config=dacite.Config(strict=True))
    except dacite.DaciteError as e:
        raise ValueError(f"spec.json params do not fit {name}: {e}") from None
