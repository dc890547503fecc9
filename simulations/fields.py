"""Documented config fields: each field's meaning and allowed values, declared once.

A config class declares a field with :func:`param`; the metadata it records is what every
:class:`~lowrank_theory.simulations.configs.ExperimentConfig` enforces on construction
(:func:`check_fields`) and what :func:`field_specs` describes (``lowrank-theory describe``,
``docs/sweeps.md``). The scalar checks are the core's validators
(:mod:`lowrank_theory._validation`), so a config field and a function argument are refused in
the same words.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lowrank_theory._validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_int_tuple,
)

__all__ = ["param", "FieldSpec", "field_specs", "check_value", "check_fields"]


def param(default: Any, help: str, *, minimum: float | None = None, exclusive: bool = False,
          choices: Sequence[str] | None = None, increasing: bool = False,
          distinct: bool = False, note: str | None = None) -> Any:
    """A config field with its meaning and allowed values: the one source of both.

    The returned :func:`dataclasses.field` carries metadata that every
    :class:`ExperimentConfig` enforces on construction (the type of its annotation, then
    ``minimum``, ``choices``, ``increasing``, ``distinct``) and that :func:`field_specs`
    describes (``lowrank-theory describe``, ``docs/sweeps.md``).

    Parameters
    ----------
    default
        The default value (a tuple for a tuple field).
    help : str
        One line on what the field means.
    minimum : float, optional
        Smallest allowed value (of each item, for a tuple field).
    exclusive : bool
        ``minimum`` itself is not allowed (``> 0`` rather than ``>= 0``; float fields).
    choices : sequence of str, optional
        The allowed strings (of each item, for a tuple of names).
    increasing : bool
        A tuple field must be strictly increasing.
    distinct : bool
        A tuple field must not repeat an item.
    note : str, optional
        A condition involving other fields (``"<= d"``), checked by the config's
        ``_validate``; shown after the range.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> from lowrank_theory.simulations.configs import ExperimentConfig
    >>> @dataclass(frozen=True)
    ... class Toy(ExperimentConfig):
    ...     d: int = param(10, "dimension", minimum=1)
    ...     def _validate(self) -> None:
    ...         pass
    >>> Toy(d=0)
    Traceback (most recent call last):
    ValueError: d must be >= 1, got 0.
    >>> field_specs(Toy)
    [FieldSpec(name='d', type='int', default=10, range='an integer >= 1', help='dimension')]
    """
    meta: dict[str, Any] = {"help": help}
    if minimum is not None:
        meta["minimum"], meta["exclusive"] = minimum, exclusive
    if choices is not None:
        meta["choices"] = tuple(choices)
    if increasing:
        meta["increasing"] = True
    if distinct:
        meta["distinct"] = True
    if note is not None:
        meta["note"] = note
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldSpec:
    """What ``lowrank-theory describe`` says about one config field.

    Attributes
    ----------
    name, type : str
        The field and its type as annotated (``int``, ``tuple[int, ...]``).
    default
        Its default value.
    range : str
        The values it accepts, in words (``"an integer >= 1"``, ``"one of 'exact', 'lbfgs'"``).
    help : str
        One line on what it means.
    """

    name: str
    type: str
    default: Any
    range: str
    help: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (a tuple default becomes a list)."""
        return {"name": self.name, "type": self.type, "default": _jsonable(self.default),
                "range": self.range, "help": self.help}


@functools.cache
def _hints(config_type: type) -> dict[str, Any]:
    return typing.get_type_hints(config_type)


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in typing.get_args(hint))
        return f"tuple[{inner}]"
    return getattr(hint, "__name__", str(hint))


def _leaf(hint: Any) -> Any:
    """The scalar type at the bottom of a (nested) tuple annotation."""
    while typing.get_origin(hint) is tuple:
        hint = typing.get_args(hint)[0]
    return hint


def _range_text(hint: Any, meta: Mapping[str, Any]) -> str:
    leaf = _leaf(hint)
    if "choices" in meta:
        text = "one of " + ", ".join(repr(c) for c in meta["choices"])
    elif leaf is bool:
        text = "true or false"
    elif "minimum" in meta:
        word = "an integer" if leaf is int else "a finite number"
        text = f"{word} {'>' if meta.get('exclusive') else '>='} {meta['minimum']:g}"
    elif leaf is float:
        text = "a finite number"
    elif leaf is int:
        text = "an integer"
    else:
        text = "any text"
    if typing.get_origin(hint) is tuple:
        how = ("strictly increasing, " if meta.get("increasing") else
               "distinct, " if meta.get("distinct") else "")
        text = f"non-empty, {how}each {text}"
    return f"{text}; {meta['note']}" if "note" in meta else text


def field_specs(config_type: type) -> list[FieldSpec]:
    """The fields of ``config_type`` with their type, default, allowed values and meaning.

    Read from the class alone: its annotations and each field's :func:`param` metadata. A
    field declared without :func:`param` is described as ``"(no description)"``.

    Examples
    --------
    >>> from lowrank_theory.simulations.configs import PhaseConfig
    >>> [s.name for s in field_specs(PhaseConfig)]
    ['d', 'T', 'k', 'solver', 'restarts']
    >>> field_specs(PhaseConfig)[3].range
    "one of 'exact', 'lbfgs', 'paper'"
    """
    hints = typing.get_type_hints(config_type)
    return [FieldSpec(f.name, _type_name(hints[f.name]), f.default,
                      _range_text(hints[f.name], f.metadata),
                      f.metadata.get("help", "(no description)"))
            for f in dataclasses.fields(config_type)]


def check_value(name: str, hint: Any, meta: Mapping[str, Any], value: Any) -> None:
    """Check ``value`` against the annotation ``hint`` and the :func:`param` metadata.

    Scalars go through the core's validators (:mod:`lowrank_theory._validation`), so a config
    field and a function argument are refused in the same words.
    """
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple) or not value:
            raise TypeError(f"{name} must be a non-empty tuple, got {value!r}")
        variadic = len(args) == 2 and args[1] is Ellipsis
        if not variadic and len(args) != len(value):
            raise TypeError(f"{name} must be a tuple of {len(args)} values, got {value!r}")
        if meta.get("increasing") and variadic and args[0] is int:
            check_int_tuple(value, name, minimum=meta.get("minimum"))
            return
        for i, item in enumerate(value):
            check_value(f"{name}[{i}]", args[0] if variadic else args[i], meta, item)
        if meta.get("increasing") and list(value) != sorted(set(value)):
            raise ValueError(f"{name} must be strictly increasing, got {value}")
        if meta.get("distinct") and len(set(value)) != len(value):
            raise ValueError(f"{name} must not repeat an item, got {value}")
    elif hint is bool:
        check_bool(value, name)
    elif hint is int:
        check_int(value, name, minimum=meta.get("minimum"))
    elif hint is float:
        minimum = meta.get("minimum")
        check_float(value, name, minimum=None if minimum is None else float(minimum),
                    strict=meta.get("exclusive", False))
    elif hint is str:
        if "choices" in meta:
            check_choice(value, name, tuple(meta["choices"]))
        elif not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")


def check_fields(config: Any) -> None:
    """Check every field of the dataclass instance ``config`` against its :func:`param`."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        check_value(f.name, hints[f.name], f.metadata, getattr(config, f.name))
