"""Independent numerical tools for the tests (not part of the library)."""

import numpy as np


def taylor_slope(f, grad_dot, x_shape_list, rng, hs=None):
    """Log-log slope of the first-order Taylor remainder |f(x + h v) - f(x) - h <g, v>|.

    ``f`` maps a list of arrays to a float and ``grad_dot(v)`` gives ``<grad f(x), v>``.
    A correct gradient gives slope ~2 (pymanopt's check_gradient idea); a wrong one gives ~1.
    """
    hs = np.logspace(-1, -5, 9) if hs is None else hs
    vs = [rng.standard_normal(s) for s in x_shape_list]
    g = grad_dot(vs)
    f0 = f([0.0 * v for v in vs])
    rem = np.array([abs(f([h * v for v in vs]) - f0 - h * g) for h in hs])
    keep = rem > 1e-11 * max(1.0, abs(f0))  # drop round-off dominated points
    slope = np.polyfit(np.log(hs[keep]), np.log(rem[keep]), 1)[0]
    return slope, int(keep.sum())
