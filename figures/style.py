"""One plotting style for every figure: colour-blind-safe colours, readable sizes, no LaTeX.

Colours are the Okabe-Ito palette (distinguishable under the common colour-vision
deficiencies); each method also has its own line style and marker, so figures stay readable in
grey scale. Sequential maps use ``cividis``, designed for colour-vision deficiency.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

__all__ = [
    "OKABE_ITO",
    "METHOD_STYLE",
    "REFERENCE_COLOR",
    "SEQUENTIAL_CMAP",
    "RC_PARAMS",
    "FORMATS",
    "ALL_FORMATS",
    "method_style",
    "load_style",
    "user_style",
    "house_style",
    "SizeProbe",
    "ProbedSize",
    "canvas",
    "save_figure",
]

#: The Okabe-Ito palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: Colour, line style and marker of each method in every figure.
METHOD_STYLE: dict[str, dict[str, str]] = {
    "LoRA-ML": {"color": OKABE_ITO["blue"], "linestyle": "-", "marker": "o"},
    "SR": {"color": OKABE_ITO["vermillion"], "linestyle": "--", "marker": "s"},
    "SR (authors)": {"color": OKABE_ITO["orange"], "linestyle": "-.", "marker": "D"},
    "oracle": {"color": OKABE_ITO["bluish_green"], "linestyle": ":", "marker": "^"},
}
#: Colour of reference lines (rates, floors).
REFERENCE_COLOR = "#555555"
#: Sequential colour map for heat maps.
SEQUENTIAL_CMAP = "cividis"

#: Matplotlib settings of the house style.
RC_PARAMS: dict[str, object] = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=[OKABE_ITO[c] for c in (
        "blue", "vermillion", "bluish_green", "orange", "reddish_purple", "sky_blue", "black")]),
    "lines.linewidth": 1.6,
    "text.usetex": False,
    "mathtext.fontset": "dejavusans",
    "pdf.fonttype": 42,
    # SVG keeps its text as text (editable, searchable) rather than paths.
    "svg.fonttype": "none",
    "svg.hashsalt": "lowrank-theory",  # fixed ids: the same table gives the same SVG bytes
}

#: Formats every figure is written in unless told otherwise.
FORMATS: tuple[str, ...] = ("png", "pdf")
#: Formats a figure can be written in.
ALL_FORMATS: tuple[str, ...] = ("png", "pdf", "svg")

# A user's style (rc parameters from an .mplstyle file) applied on top of the house style
# while :func:`user_style` is active; a context variable, so it ends with its block.
_USER_STYLE: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "user_style", default=None)


def method_style(method: str) -> dict[str, str]:
    """Return the colour / line style / marker of ``method`` (black solid for unknown ones)."""
    return METHOD_STYLE.get(method, {"color": OKABE_ITO["black"], "linestyle": "-", "marker": "."})


def load_style(path: str | os.PathLike) -> dict[str, Any]:
    """Read the rc parameters of a matplotlib style file (``.mplstyle``).

    Raises
    ------
    ValueError
        If the file cannot be read, or a line is not a valid rc parameter; the message names
        the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"style file {path} does not exist (give a .mplstyle file)")
    # matplotlib reports a bad line on its logger (and skips it): collect those reports.
    bad: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: bad.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("matplotlib")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            params = matplotlib.rc_params_from_file(path, use_default_template=False)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"style file {path} cannot be read: {exc}") from None
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    bad += [str(w.message) for w in caught]
    if bad:
        raise ValueError(f"style file {path}: {bad[0].strip().splitlines()[0]}")
    return dict(params)


@contextlib.contextmanager
def user_style(style: Mapping[str, Any] | str | os.PathLike | None) -> Iterator[None]:
    """Apply ``style`` (rc parameters, or a style file) over the house style inside the block.

    Every figure drawn inside it uses the house style (:data:`RC_PARAMS`) updated with
    ``style``; ``None`` changes nothing.
    """
    params = {} if style is None else (
        dict(style) if isinstance(style, Mapping) else load_style(style))
    token = _USER_STYLE.set(params)
    try:
        yield
    finally:
        _USER_STYLE.reset(token)


@contextlib.contextmanager
def house_style() -> Iterator[None]:
    """Context manager applying :data:`RC_PARAMS`, then any :func:`user_style` (restored on exit)."""
    import matplotlib.pyplot as plt

    with plt.rc_context({**RC_PARAMS, **(_USER_STYLE.get() or {})}):
        yield


class SizeProbe:
    """Passed as ``fig`` to a drawing function, it stops the drawing at :func:`canvas`.

    :func:`lowrank_theory.figures.facets.faceted` learns a block's size this way before it lays
    the blocks out, without drawing one twice.
    """

    facet_keys: tuple[str, ...] = ()


class ProbedSize(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by :func:`canvas` with the size a drawing function asked for."""

    def __init__(self, size: tuple[float, float]):
        super().__init__(size)
        self.size = size


def canvas(fig, size: tuple[float, float]):
    """The figure to draw into: a new one of ``size`` inches, or ``fig`` (a subfigure).

    A subfigure records ``size`` as ``fig.requested_size``, for the figure that holds it
    (:func:`lowrank_theory.figures.facets.faceted`); a :class:`SizeProbe` raises
    :class:`ProbedSize` with it.
    """
    import matplotlib.pyplot as plt

    if fig is None:
        return plt.figure(figsize=size, layout="constrained")
    if isinstance(fig, SizeProbe):
        raise ProbedSize(size)
    fig.requested_size = size
    return fig


def save_figure(fig, directory: str | Path, name: str,
                formats: Sequence[str] = FORMATS, dpi: float | None = None) -> list[Path]:
    """Write ``fig`` as ``directory/name.<format>`` for each format, close it, return the paths.

    ``dpi`` sets the resolution of raster formats (default: ``savefig.dpi`` of the style, 150).
    Metadata that changes from run to run (creation date, software version) is left out, so
    the same table gives byte-identical PNG and SVG files.
    """
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    with house_style():
        for fmt in formats:
            path = directory / f"{name}.{fmt}"
            metadata = {"CreationDate": None} if fmt == "pdf" else (
                {"Date": None} if fmt == "svg" else {"Software": None})
            fig.savefig(path, format=fmt, metadata=metadata,
                        **({} if dpi is None else {"dpi": dpi}))
            paths.append(path)
    plt.close(fig)
    return paths
