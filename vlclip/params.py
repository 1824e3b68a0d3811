"""params.yaml is the only home of tunables; each stage reads its section into a frozen dataclass."""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def section(cls: type[T], params: dict[str, Any], name: str) -> T:
    """Build dataclass `cls` from `params[name]`; unknown or missing keys fail loudly with their names."""
    if name not in params:
        raise KeyError(f"params.yaml has no section {name!r}")
    return from_dict(cls, params[name], where=name)


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise KeyError(f"params.yaml {where}: unknown keys {sorted(unknown)} (known: {sorted(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, where=f"{where}.{key}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise KeyError(f"params.yaml {where}: {exc}") from None
