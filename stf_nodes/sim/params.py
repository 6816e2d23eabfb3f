"""Configs as ROS 2 parameters.

Station configs are frozen dataclasses whose fields map one-to-one onto the parameters in
``config/factory.yaml``: a scalar or tuple field ``name`` is the parameter ``name``; a nested
config field ``motor`` contributes ``motor.<field>``. ROS parameters are scalars or flat lists,
so tuples become lists. ``to_parameters`` gives the defaults a node declares;
``from_parameters`` builds a config back from whatever the node read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, TypeVar, get_type_hints

ParameterValue = bool | int | float | str | list[bool] | list[int] | list[float] | list[str]

# Parameters every node has that are not part of a station config.
NODE_PARAMETERS = frozenset({'use_sim_time'})

C = TypeVar('C', bound='ParameterConfig')


@dataclass(frozen=True)
class Doc:
    """What a config field means, for its parameter's descriptor: written into the field's
    type as ``Annotated[float, Doc('supply voltage', unit='V', low=0.0)]``."""

    description: str
    unit: str = ''
    low: float | None = None
    high: float | None = None


class ParameterConfig:
    """Mixin for frozen config dataclasses: conversion from and to flat parameter dicts."""

    @classmethod
    def from_parameters(cls: type[C], parameters: Mapping[str, ParameterValue]) -> C:
        """Build a config from defaults overridden by ``parameters``; unknown names raise."""
        config = cls()
        nested: dict[str, dict[str, ParameterValue]] = {}
        updates: dict[str, Any] = {}
        known = {f.name: getattr(config, f.name) for f in fields(config)}  # type: ignore[arg-type]
        for name, value in parameters.items():
            head, dot, rest = name.partition('.')
            if name in NODE_PARAMETERS:
                continue
            if head not in known or bool(dot) != is_dataclass(known[head]):
                raise ValueError(f'unknown parameter {name!r} for {cls.__name__}')
            if dot:
                nested.setdefault(head, {})[rest] = value
            else:
                updates[name] = _coerce(name, known[name], value)
        for head, sub in nested.items():
            updates[head] = type(known[head]).from_parameters(sub)
        return replace(config, **updates)  # type: ignore[type-var]

    @classmethod
    def parameter_docs(cls) -> dict[str, Doc]:
        """The ``Doc`` of every parameter, by the names ``to_parameters`` gives."""
        docs: dict[str, Doc] = {}
        for name, hint in get_type_hints(cls, include_extras=True).items():
            if isinstance(hint, type) and issubclass(hint, ParameterConfig):
                docs.update({f'{name}.{k}': v for k, v in hint.parameter_docs().items()})
            else:
                docs[name] = next(
                    m for m in getattr(hint, '__metadata__', ()) if isinstance(m, Doc)
                )
        return docs

    def to_parameters(self) -> dict[str, ParameterValue]:
        """Flat parameter dict (dotted names for nested configs, lists for tuples)."""
        out: dict[str, ParameterValue] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, ParameterConfig):
                out.update({f'{f.name}.{k}': v for k, v in value.to_parameters().items()})
            else:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _coerce(name: str, default: Any, value: ParameterValue) -> Any:
    """Convert ``value`` to the type of the field's default (ints are accepted for floats)."""
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f'parameter {name!r} must be a list')
        kind = type(default[0]) if default else str
        return tuple(kind(v) for v in value)
    if isinstance(default, bool) != isinstance(value, bool) or isinstance(value, list):
        raise ValueError(f'parameter {name!r} must be a {type(default).__name__}')
    return type(default)(value)
