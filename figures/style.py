"""One plotting style for every figure: colour-blind-safe colours, readable sizes, no LaTeX.

Colours are the Okabe-Ito palette (distinguishable under the common colour-vision
deficiencies); each method also has its own line style and marker, so figures stay readable in
grey scale. Sequential maps use ``cividis``, designed for colour-vision deficiency.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib

__all__ = [
    "OKABE_ITO",
    "METHOD_STYLE",
    "REFERENCE_COLOR",
    "SEQUENTIAL_CMAP",
    "RC_PARAMS",
    "FORMATS",
    "method_style",
    "house_style",
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
}

#: Formats every figure is written in.
FORMATS: tuple[str, ...] = ("png", "pdf")


def method_style(method: str) -> dict[str, str]:
    """Return the colour / line style / marker of ``method`` (black solid for unknown ones)."""
    return METHOD_STYLE.get(method, {"color": OKABE_ITO["black"], "linestyle": "-", "marker": "."})


@contextlib.contextmanager
def house_style() -> Iterator[None]:
    """Context manager applying :data:`RC_PARAMS` (restored on exit)."""
    import matplotlib.pyplot as plt

    with plt.rc_context(RC_PARAMS):
        yield


def save_figure(fig, directory: str | Path, name: str,
                formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``directory/name.<format>`` for each format, close it, return the paths.

    Metadata that changes from run to run (creation date, software version) is left out, so
    the same table gives byte-identical PNG files.
    """
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = directory / f"{name}.{fmt}"
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        fig.savefig(path, format=fmt, metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths
