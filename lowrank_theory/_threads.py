"""One BLAS thread for the small-matrix loops of the solvers.

The iterative solvers multiply matrices of side ``d`` (or of the reduced side ``m <= kT``)
thousands of times. At these sizes OpenBLAS's worker threads cost more to start and
synchronise than the arithmetic they share, and on a busy machine they also wait for cores:
on a 2-core machine under load, one thread was faster for every matrix product up to side 512
and every symmetric eigendecomposition up to side 1024 (up to 80 times faster at side 32).
The solvers therefore limit BLAS to one thread around their loops, once per solve, without
any environment variable; large problems keep the library's default.
"""

from __future__ import annotations

import contextlib
import functools
from typing import ContextManager

from threadpoolctl import ThreadpoolController

#: Largest matrix side for which a solver's loop runs on one BLAS thread: the sizes at which
#: one thread won every product and eigendecomposition on the 2-core machine under load.
#: Above it the arithmetic per call is large enough for several threads to pay off when
#: the cores are free.
SINGLE_THREAD_MAX_DIM = 512


@functools.cache
def _controller() -> ThreadpoolController:
    # Inspecting the loaded BLAS libraries takes about a millisecond: do it once per process,
    # so entering the limit costs microseconds.
    return ThreadpoolController()


def blas_threads_for(dim: int) -> ContextManager[object]:
    """Context manager: one BLAS thread when ``dim <= SINGLE_THREAD_MAX_DIM``, else no change.

    Parameters
    ----------
    dim : int
        The largest matrix side the loop inside works with.

    Examples
    --------
    >>> import numpy as np
    >>> with blas_threads_for(10):
    ...     float(np.eye(10).sum())
    10.0
    """
    if dim > SINGLE_THREAD_MAX_DIM:
        return contextlib.nullcontext()
    return _controller().limit(limits=1, user_api="blas")
