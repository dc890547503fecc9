"""Summary reprs for result objects: shapes and key numbers, never whole matrices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["summary_repr"]


def _value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"<array {value.shape}>" if value.ndim else _value(value.item())
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, np.ndarray) for v in value):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"<{len(value)} values>"
    return repr(value)


def summary_repr(name: str, fields: Mapping[str, Any]) -> str:
    """``name(key=value, ...)`` with arrays shown by shape and floats to 4 significant digits.

    Examples
    --------
    >>> summary_repr("Fit", {"A": np.zeros((3, 3)), "loss": 1 / 3, "converged": True})
    'Fit(A=<array (3, 3)>, loss=0.3333, converged=True)'
    """
    return f"{name}(" + ", ".join(f"{k}={_value(v)}" for k, v in fields.items()) + ")"
