"""Named, independent random streams of one run of an experiment.

Each seed is split into named streams, so the ground truth of seed ``s`` is the same in every
configuration with the same shapes (paired comparisons across ``N`` or ``n``), and a run never
depends on which process ran it or what ran before.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

__all__ = ["stream_seeds"]


def stream_seeds(seed: int, names: Sequence[str]) -> dict[str, int]:
    """Independent integer seeds for the named random streams of one run.

    Parameters
    ----------
    seed : int
        The run's seed.
    names : sequence of str
        Stream names (``"family"``, ``"sample"``...).

    Returns
    -------
    dict
        ``name -> int`` from ``SeedSequence([seed, crc32(name)])``; a stream's seed depends
        only on the run seed and its name, not on the other streams requested.

    Examples
    --------
    >>> a = stream_seeds(0, ["family", "sample"])
    >>> a["family"] == stream_seeds(0, ["family"])["family"] != a["sample"]
    True
    """
    return {
        name: int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])
        for name in names
    }
