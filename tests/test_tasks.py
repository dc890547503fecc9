import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory.tasks import TaskFamily


def test_random_family_shapes_and_paper_construction(global_random_seed):
    fam = lt.TaskFamily.random(d=7, k=2, T=4, sigma=0.3, seed=global_random_seed)
    assert fam.A_star.shape == (7, 7) and fam.U_star.shape == (4, 7, 2)
    assert (fam.d, fam.k, fam.T, fam.sigma) == (7, 2, 4, 0.3)
    np.testing.assert_allclose(fam.A_star, fam.A_star.T)  # (G + G^T)/2 is symmetric
    np.testing.assert_allclose(fam.W_star[1], fam.A_star + fam.U_star[1] @ fam.U_star[1].T)


def test_seed_determinism():
    a = lt.TaskFamily.random(d=5, k=1, T=3, seed=4).sample(20, seed=9)
    b = lt.TaskFamily.random(d=5, k=1, T=3, seed=4).sample(20, seed=9)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.Y, b.Y)


def test_sample_follows_the_model():
    """Large-sample moments approach Sigma and W* Sigma, and the noise has variance sigma^2."""
    S = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]])
    fam = lt.TaskFamily.random(d=3, k=1, T=2, sigma=0.5, seed=0, Sigma=S)
    data = fam.sample(200_000, seed=1)
    for t in range(2):
        X, Y = data.X[t], data.Y[t]
        np.testing.assert_allclose(X.T @ X / data.n, S, atol=0.03)
        resid = Y - X @ fam.W_star[t].T
        np.testing.assert_allclose(resid.var(axis=0), 0.25, rtol=0.02)


def test_orthonormal_and_collinear_constructions():
    fam = lt.TaskFamily.orthonormal(d=9, k=2, T=4, scale=2.0, seed=0)
    Ucat = np.concatenate(list(fam.U_star), axis=1)
    np.testing.assert_allclose(Ucat.T @ Ucat, 4.0 * np.eye(8), atol=1e-12)
    col = lt.TaskFamily.collinear(d=6, k=1, T=3, seed=0)
    assert np.linalg.matrix_rank(np.concatenate(list(col.U_star), axis=1)) == 1


def test_from_spectrum_sets_offset_eigenvalues():
    spec = np.array([[3.0, 1.0], [2.0, 0.5]])
    fam = lt.TaskFamily.from_spectrum(spec, d=6, base_spectrum=np.arange(6.0), seed=0)
    for t in range(2):
        eig = np.linalg.eigvalsh(fam.offsets[t])[-2:]
        np.testing.assert_allclose(np.sort(eig), np.sort(spec[t]), atol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(fam.A_star), np.arange(6.0), atol=1e-12)


def test_new_task_keeps_base_and_covariance():
    S = np.diag([1.0, 2.0, 3.0])
    fam = lt.TaskFamily.random(d=3, k=1, T=2, seed=0, Sigma=S)
    new = fam.new_task(seed=5)
    assert new.T == 1 and new.k == 1
    np.testing.assert_array_equal(new.A_star, fam.A_star)
    np.testing.assert_array_equal(new.Sigma, S)
    fixed = fam.new_task(U=np.ones((3, 1)))
    np.testing.assert_array_equal(fixed.U_star[0], np.ones((3, 1)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(A_star=np.eye(3), U_star=np.ones((2, 4, 1))), "U_star must have shape"),
        (dict(A_star=np.ones((3, 2)), U_star=np.ones((2, 3, 1))), "square"),
        (dict(A_star=np.eye(2), U_star=np.ones((2, 2, 3))), "k <= d"),
        (dict(A_star=np.eye(2), U_star=np.ones((0, 2, 1))), "at least one task"),
        (dict(A_star=np.eye(2) * np.nan, U_star=np.ones((1, 2, 1))), "NaN"),
        (dict(A_star=np.eye(2), U_star=np.ones((1, 2, 1)), sigma=-1.0), "sigma"),
        (dict(A_star=np.eye(2), U_star=np.ones((1, 2, 1)), Sigma=-np.eye(2)), "positive definite"),
        (dict(A_star=np.eye(2), U_star=np.ones((1, 2, 1)), Sigma=np.ones((2, 2))), "positive definite"),
        (dict(A_star=np.eye(2), U_star=np.ones((1, 2, 1)), Sigma=np.array([[1, 1], [0, 1.0]])), "symmetric"),
        (dict(A_star=np.eye(2), U_star=np.ones((1, 2, 1)), Sigma=np.eye(3)), "Sigma must have shape"),
    ],
)
def test_family_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lt.TaskFamily(**kwargs)


def test_constructor_argument_errors():
    with pytest.raises(ValueError, match="k must be <= 3"):
        lt.TaskFamily.random(d=3, k=4, T=2)
    with pytest.raises(ValueError, match="T must be >= 1"):
        lt.TaskFamily.random(d=3, k=1, T=0)
    with pytest.raises(TypeError, match="d must be an integer"):
        lt.TaskFamily.random(d=3.5, k=1, T=2)
    with pytest.raises(ValueError, match="k\\*T <= d"):
        lt.TaskFamily.orthonormal(d=3, k=2, T=2)
    fam = lt.TaskFamily.random(d=3, k=1, T=2, seed=0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        fam.sample(0)
    with pytest.raises(TypeError, match="seed"):
        fam.sample(5, seed="x")


def test_taskdata_validation():
    with pytest.raises(ValueError, match="Y must have the shape"):
        lt.TaskData(np.zeros((2, 5, 3)), np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="X must have shape"):
        lt.TaskData(np.zeros((5, 3)), np.zeros((5, 3)))


# --------------------------------------------------------------------------- immutability
def test_family_keeps_read_only_copies_of_its_arrays():
    A, U, S = np.eye(3), np.ones((2, 3, 1)), np.diag([1.0, 2.0, 3.0])
    fam = lt.TaskFamily(A, U, 0.1, S)
    A[0, 0] = np.nan  # the caller's arrays are not the family's
    U[0] = 5.0
    S[0, 0] = -1.0
    assert np.isfinite(fam.A_star).all() and fam.U_star.max() == 1.0 and fam.Sigma[0, 0] == 1.0
    for arr in (fam.A_star, fam.U_star, fam.Sigma):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = np.nan
    # A family built from another's (read-only, owned) arrays shares nothing writable either.
    again = lt.TaskFamily(fam.A_star, fam.U_star)
    assert not again.A_star.flags.writeable


def test_sample_is_read_only_and_the_caller_cannot_change_it():
    X = np.ones((2, 4, 3))
    data = lt.TaskData(X, X.copy())
    X[:] = np.nan
    assert np.isfinite(data.X).all()
    drawn = lt.TaskFamily.random(d=3, k=1, T=2, seed=0).sample(5, seed=1)
    for arr in (data.X, data.Y, drawn.X, drawn.Y):
        with pytest.raises(ValueError, match="read-only"):
            arr[0, 0, 0] = 1.0


# --------------------------------------------------------------------------- input checks
def test_complex_arrays_are_refused_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="U_star must be real"):
            lt.TaskFamily(np.eye(2), np.ones((1, 2, 1)) * (1 + 1e-3j))
        with pytest.raises(TypeError, match="A_star must be real"):
            lt.TaskFamily(np.eye(2) + 0j, np.ones((1, 2, 1)))


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(sigma=1e200), "sigma"),
    (dict(A_star=np.eye(2) * 1e160), "A_star"),
    (dict(U_star=np.ones((1, 2, 1)) * 1e80), "U_star"),
])
def test_scales_whose_losses_overflow_are_refused(kwargs, name):
    args = dict(A_star=np.eye(2), U_star=np.ones((1, 2, 1))) | kwargs
    with pytest.raises(ValueError, match=f"^{name}(=|: ).* overflow.*(use|keep) .* (<=|below)"):
        lt.TaskFamily(**args)
    lt.TaskFamily(np.eye(2), np.ones((1, 2, 1)), sigma=1e100)  # large but finite losses: fine


def test_new_task_of_a_family_with_per_task_covariances_needs_sigma():
    S = np.stack([np.eye(3), 2 * np.eye(3)])
    fam = lt.TaskFamily.random(d=3, k=1, T=2, seed=0, Sigma=S)
    with pytest.raises(ValueError, match="pass Sigma="):
        fam.new_task(seed=1)
    new = fam.new_task(seed=1, Sigma=3 * np.eye(3))
    np.testing.assert_array_equal(new.Sigma, 3 * np.eye(3))
    with pytest.raises(ValueError, match="Sigma must be symmetric"):
        fam.new_task(seed=1, Sigma=np.triu(np.ones((3, 3))))
    # A shared covariance is inherited; an explicit one overrides it.
    shared = lt.TaskFamily.random(d=3, k=1, T=2, seed=0, Sigma=2 * np.eye(3))
    np.testing.assert_array_equal(shared.new_task(seed=1).Sigma, 2 * np.eye(3))


def test_allocations_above_max_bytes_are_refused_with_the_override():
    with pytest.raises(ValueError, match="about 8.94 GiB, above max_bytes=2 GiB; pass max_bytes=None"):
        lt.TaskFamily.random(d=20000, k=1, T=3)
    for make in (lt.TaskFamily.random, lt.TaskFamily.collinear):
        with pytest.raises(ValueError, match="max_bytes"):
            make(d=100, k=1, T=2, max_bytes=10_000)
        assert make(d=100, k=1, T=2, seed=0, max_bytes=None).d == 100
    fam = lt.TaskFamily.random(d=10, k=1, T=2, seed=0)
    with pytest.raises(ValueError, match="sample\\(n=10000000\\)"):
        fam.sample(10_000_000)
    assert fam.sample(100, seed=0, max_bytes=None).n == 100


def test_new_task_refuses_a_factor_of_another_rank_unless_k_says_so():
    """A U with 2 columns for a rank-1 family is refused with the shape and the k to pass (it
    used to give a rank-2 task silently); with k=2 it is the new task's offset, and k alone
    draws a random offset of that rank."""
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=0)
    U = np.arange(8.0).reshape(4, 2)
    with pytest.raises(ValueError, match=r"U has 2 columns.*k=1 \(the family's\).*\(4, 1\).*k=2"):
        fam.new_task(U=U)
    new = fam.new_task(U=U, k=2)
    assert new.k == 2
    np.testing.assert_array_equal(new.W_star[0], fam.A_star + U @ U.T)
    assert fam.new_task(seed=1, k=3).U_star.shape == (1, 4, 3)
    with pytest.raises(ValueError, match="U has 1 columns, but the new task's rank is k=2;"):
        fam.new_task(U=U[:, :1], k=2)
    with pytest.raises(ValueError, match="k must be <= 4"):
        fam.new_task(seed=1, k=5)


# --------------------------------------------------------------------------- read-only views
def _array_attributes(obj):
    return [getattr(obj, name) for name in ("A_star", "U_star", "Sigma", "X", "Y")
            if getattr(obj, name, None) is not None]


def test_no_array_of_a_family_or_sample_can_be_made_writeable():
    """flags.writeable = True raises on every array a TaskFamily or TaskData shows, on the
    memory below it (.base), and on a pickled copy; a plain read-only array, the control,
    lets the flag be set back, which is how the old copies could be written to."""
    import pickle

    fam = lt.TaskFamily.random(d=3, k=1, T=2, seed=0, Sigma=np.diag([1.0, 2.0, 3.0]))
    data = fam.sample(4, seed=1)
    objects = [fam, data, pickle.loads(pickle.dumps(fam)), pickle.loads(pickle.dumps(data))]
    arrays = [a for obj in objects for a in _array_attributes(obj)]
    assert len(arrays) == 10
    for arr in arrays:
        for view in (arr, arr.base):
            if isinstance(view, np.ndarray):
                with pytest.raises(ValueError, match="WRITEABLE"):
                    view.flags.writeable = True
        with pytest.raises(ValueError, match="read-only"):
            arr[(0,) * arr.ndim] = 1.0
    np.testing.assert_array_equal(objects[2].A_star, fam.A_star)
    control = np.ones(3)
    control.flags.writeable = False
    control.flags.writeable = True  # an owning array lets its flag be set back
    control[0] = 2.0
    assert control[0] == 2.0


def test_task_data_refuses_a_family_that_is_not_one():
    """family="fam" raises a TypeError naming the argument (it was an AttributeError)."""
    X = np.ones((2, 4, 3))
    with pytest.raises(TypeError, match="family must be the TaskFamily the sample came from"):
        lt.TaskData(X, X, family="fam")
    with pytest.raises(ValueError, match=r"family has \(T, d\) = \(3, 3\)"):
        lt.TaskData(X, X, family=lt.TaskFamily.random(d=3, k=1, T=3, seed=0))
    assert lt.TaskData(X, X, family=lt.TaskFamily.random(d=3, k=1, T=2, seed=0)).family.T == 2


def test_overflowing_and_underflowing_scales_name_the_argument_and_the_fix():
    """sigma = 1e150 and data scaled by 1e150 are refused naming sigma / X with a bound or a
    rescaling (they ended in numpy's "array must not contain infs or NaNs"); data scaled by
    1e-160 is refused as an underflow (it was refused as "singular, use more samples").
    Controls: the largest accepted sigma, and data scaled by 1e100 or 1e-100, are accepted."""
    with pytest.raises(ValueError, match=r"^sigma=1e\+150 overflows: .* use sigma <= 1.83e\+144"):
        lt.TaskFamily.random(d=10, k=1, T=3, sigma=1e150, seed=0)
    lt.TaskFamily.random(d=10, k=1, T=3, sigma=1.8e144, seed=0)
    data = lt.TaskFamily.random(d=4, k=1, T=3, seed=0).sample(20, seed=1)
    with pytest.raises(ValueError, match=r"^X: data scaled to ~\de\+150 overflow .* rescale"):
        lt.TaskData(data.X * 1e150, data.Y)
    with pytest.raises(ValueError, match=r"^Y: data scaled to ~\de\+150 overflow"):
        lt.TaskData(data.X, data.Y * 1e150)
    with pytest.raises(ValueError, match=r"^X: rescale the data \(its scale ~\de-16\d underflows.* multiply X by"):
        lt.TaskData(data.X * 1e-160, data.Y * 1e-160)
    with pytest.raises(ValueError, match=r"Sigma: rescale the covariance \(its scale ~\de-3\d\d underflows"):
        lt.TaskFamily.random(d=4, k=1, T=3, seed=0, Sigma=1e-300 * np.eye(4))
    for scale in (1e100, 1e-100):
        lt.TaskData(data.X * scale, data.Y * scale)


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("Sigma", [None, "shared", "per task"])
def test_save_load_round_trip(tmp_path, Sigma):
    """A saved family loads back equal, array for array (identity, shared and per-task
    covariances), and samples the same data from the same seed."""
    rng = np.random.default_rng(0)
    cov = {None: None, "shared": np.diag([1.0, 10.0, 100.0]),
           "per task": np.stack([np.diag([1.0, 2.0, 3.0]), np.diag([4.0, 5.0, 6.0])])}[Sigma]
    fam = TaskFamily.random(d=3, k=2, T=2, sigma=0.3, seed=rng, Sigma=cov)
    back = TaskFamily.load(fam.save(tmp_path / "fam.npz"))
    for name in ("A_star", "U_star", "Sigma"):
        a, b = getattr(fam, name), getattr(back, name)
        assert (a is None and b is None) or np.array_equal(a, b)
    assert back.sigma == fam.sigma
    assert np.array_equal(back.sample(5, seed=1).Y, fam.sample(5, seed=1).Y)


def test_save_writes_the_name_given(tmp_path):
    """save writes exactly the path given (numpy would append .npz to a bare name)."""
    path = TaskFamily.random(d=2, k=1, T=1, seed=0).save(tmp_path / "family")
    assert path == tmp_path / "family" and path.is_file()
    assert TaskFamily.load(path).d == 2


def test_load_refuses_bad_files_naming_them(tmp_path):
    """Missing, not an archive, missing or extra arrays, pickled objects, and arrays the
    constructor refuses (a non-SPD covariance, a wrong shape): each error names the file."""
    with pytest.raises(FileNotFoundError, match="no such file"):
        TaskFamily.load(tmp_path / "none.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not an archive")
    with pytest.raises(ValueError, match=r"junk\.npz is not a family file"):
        TaskFamily.load(junk)
    cases = {
        "missing": ({"A_star": np.eye(2)}, r"missing \['U_star', 'sigma'\]"),
        "extra": ({"A_star": np.eye(2), "U_star": np.ones((1, 2, 1)), "sigma": 0.1,
                   "W": np.eye(2)}, r"unexpected \['W'\]"),
        "indefinite": ({"A_star": np.eye(2), "U_star": np.ones((1, 2, 1)), "sigma": 0.1,
                        "Sigma": np.diag([1.0, -1.0])}, "positive definite"),
        "shape": ({"A_star": np.eye(2), "U_star": np.ones((1, 3, 1)), "sigma": 0.1}, "U_star"),
        "pickled": ({"A_star": np.array([None, 1], dtype=object), "U_star": np.ones((1, 2, 1)),
                     "sigma": 0.1}, "not a family file"),
    }
    for name, (arrays, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=message) as exc:
            TaskFamily.load(path)
        assert str(path) in str(exc.value), name
