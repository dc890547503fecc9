"""Task sets for the neural experiments: the shallow teacher and binary image-pair tasks.

A :class:`TaskSet` is the one task iterator every retraining method consumes: per task a tuple
of tensors ``(inputs..., target)`` with the samples along the first axis. Image pairs come from
scikit-learn's bundled digits or from CIFAR-10, read from the batch files of its python version
by :func:`read_cifar10` (a restricted unpickler and shape, dtype and label checks; no
torchvision), and :func:`random_crop_flip` is the CIFAR-10 scripts' augmentation on tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DataMissingError",
    "TaskSet",
    "ShallowTeacher",
    "shallow_teacher",
    "PairTasks",
    "split_pairs",
    "load_digits_pairs",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CIFAR_FOLDER",
    "CIFAR_TRAIN_FILES",
    "CIFAR_TEST_FILE",
    "DataFormatError",
    "read_cifar_batch",
    "cifar_folder",
    "read_cifar10",
    "normalise_cifar",
    "load_cifar_pairs",
    "random_crop_flip",
    "CIFAR_BLACK",
]


class DataMissingError(FileNotFoundError):
    """Data or weights are not where the loader looks; the message says where to put them."""


@dataclass(frozen=True)
class TaskSet:
    """Per-task datasets, the common input of the retraining methods.

    Parameters
    ----------
    tasks : tuple of tuple of Tensor
        ``tasks[t] = (input_1, ..., input_m, target)``, every tensor with the task's samples
        along axis 0. The model is called as ``model(input_1, ..., input_m)``.
    """

    tasks: tuple[tuple[torch.Tensor, ...], ...]

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("tasks must hold at least one task")
        for t, tensors in enumerate(self.tasks):
            if len(tensors) < 2:
                raise ValueError(f"task {t} needs (inputs..., target), got {len(tensors)} tensors")
            sizes = {int(x.shape[0]) for x in tensors}
            if len(sizes) != 1:
                raise ValueError(f"task {t}'s tensors disagree on the sample count: {sizes}")

    @property
    def num_tasks(self) -> int:
        """T, the number of tasks."""
        return len(self.tasks)

    def size(self, task: int) -> int:
        """Number of samples of ``task``."""
        return int(self.tasks[task][0].shape[0])

    def to(self, device: str | torch.device) -> TaskSet:
        """Return a copy with every tensor on ``device``."""
        return TaskSet(tuple(tuple(x.to(device) for x in task) for task in self.tasks))

    def task(self, t: int) -> TaskSet:
        """Return the one-task set of task ``t``."""
        return TaskSet((self.tasks[t],))

    def batch(
        self, task: int, batch_size: int | None, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, ...]:
        """Draw a mini-batch of ``task`` without replacement (None or >= size: the full task)."""
        tensors = self.tasks[task]
        n = self.size(task)
        if batch_size is None or batch_size >= n:
            return tensors
        index = torch.randperm(n, generator=generator)[:batch_size].to(tensors[0].device)
        return tuple(x[index] for x in tensors)

    def batches(
        self, batch_size: int | None, generator: torch.Generator | None
    ) -> list[tuple[torch.Tensor, ...]]:
        """One mini-batch per task, in task order."""
        return [self.batch(t, batch_size, generator) for t in range(self.num_tasks)]


# ---------------------------------------------------------------------- shallow teacher
@dataclass(frozen=True)
class ShallowTeacher:
    """Ground truth f_t(x) = c*^T sigmoid((A* + U*_t U*_t^T) x) + noise.

    Attributes
    ----------
    A : Tensor of shape (d, d)
        A*, standard normal (or its symmetric part (G + G^T) / 2).
    U : Tensor of shape (T + 1, d, k)
        Standard normal offsets; the last one is the unseen task's.
    c : Tensor of shape (d,)
        Standard normal output weights.
    sigma : float
        Noise standard deviation.
    input_std : float
        Inputs are x ~ N(0, input_std^2 I).
    """

    A: torch.Tensor
    U: torch.Tensor
    c: torch.Tensor
    sigma: float
    input_std: float = 1.0

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self.A.shape[0])

    def weight(self, task: int) -> torch.Tensor:
        """A* + U*_t U*_t^T of shape (d, d)."""
        U = self.U[task]
        return self.A + U @ U.T

    def clean(self, task: int, X: torch.Tensor) -> torch.Tensor:
        """Noise-free outputs c*^T sigmoid(W*_t x) of shape (n,) for inputs ``X`` (n, d)."""
        return torch.sigmoid(X @ self.weight(task).T) @ self.c

    def sample(
        self, task: int, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``n`` samples ``(X (n, d), y (n,), clean (n,))`` of ``task``.

        ``clean`` is :meth:`clean` of ``X``, ``y = clean + sigma * noise``.
        """
        X = self.input_std * torch.randn(n, self.d, generator=generator)
        clean = self.clean(task, X)
        return X, clean + self.sigma * torch.randn(n, generator=generator), clean


def shallow_teacher(
    d: int,
    k: int,
    T: int,
    sigma: float,
    seed: int,
    *,
    symmetric_base: bool = False,
    input_std: float = 1.0,
) -> ShallowTeacher:
    """Draw a :class:`ShallowTeacher` with T retraining offsets and one unseen offset.

    Parameters
    ----------
    d, k, T : int
        Dimension, offset rank, retraining tasks.
    sigma : float
        Noise standard deviation (>= 0).
    seed : int
        Seed of A*, U* and c*.
    symmetric_base : bool, default False
        A* = (G + G^T) / 2 (the linear experiments' convention) instead of A* = G. The
        authors' shallow-network scripts draw A* = G.
    input_std : float, default 1.0
        Inputs x ~ N(0, input_std^2 I); the authors' scripts use 1. With 1 / sqrt(d) the
        pre-activations stay of order one for every d (at input_std = 1 the d = 20 network
        runs its sigmoids mostly saturated).

    Raises
    ------
    ValueError
        If d, k, T are not positive, k > d, sigma < 0 or input_std <= 0.
    """
    if d < 1 or k < 1 or T < 1 or k > d:
        raise ValueError(f"need d >= k >= 1 and T >= 1, got d={d}, k={k}, T={T}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if not input_std > 0:
        raise ValueError(f"input_std must be > 0, got {input_std}")
    g = torch.Generator().manual_seed(int(seed))
    G = torch.randn(d, d, generator=g)
    return ShallowTeacher(
        A=(G + G.T) / 2 if symmetric_base else G,
        U=torch.randn(T + 1, d, k, generator=g),
        c=torch.randn(d, generator=g),
        sigma=float(sigma),
        input_std=float(input_std),
    )


# ---------------------------------------------------------------------- image pair tasks
@dataclass(frozen=True)
class PairTasks:
    """Binary class-pair tasks: retraining tasks and the unseen task's train/test split.

    Attributes
    ----------
    retrain : TaskSet
        One task per retraining pair: (images (N, C, H, W), labels (N,) in {0., 1.}).
    new_train : TaskSet
        The unseen pair's fine-tuning pool (one task).
    new_test : TaskSet
        The unseen pair's held-out test samples (one task).
    """

    retrain: TaskSet
    new_train: TaskSet
    new_test: TaskSet


def _pair_task(
    images: np.ndarray, labels: np.ndarray, pair: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    # The paper's binary label is the class index mod 2 (so {8, 9} -> {0, 1}).
    keep = np.isin(labels, pair)
    return (
        torch.as_tensor(images[keep], dtype=torch.float32),
        torch.as_tensor(labels[keep] % 2, dtype=torch.float32),
    )


def split_pairs(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    retrain_pairs: tuple[tuple[int, int], ...],
    test_pair: tuple[int, int],
) -> PairTasks:
    """Build :class:`PairTasks` from (images, labels) train and test splits."""
    retrain = TaskSet(tuple(_pair_task(*train, pair) for pair in retrain_pairs))
    return PairTasks(
        retrain=retrain,
        new_train=TaskSet((_pair_task(*train, test_pair),)),
        new_test=TaskSet((_pair_task(*test, test_pair),)),
    )


def load_digits_pairs(
    retrain_pairs: tuple[tuple[int, int], ...],
    test_pair: tuple[int, int],
    test_fraction: float = 0.5,
    seed: int = 0,
) -> PairTasks:
    """Digit-pair tasks from scikit-learn's bundled 8x8 digits (no download).

    Parameters
    ----------
    retrain_pairs : tuple of (int, int)
        Classes of each retraining task, e.g. ((0, 1), (2, 3), (4, 5), (6, 7)).
    test_pair : (int, int)
        The unseen task's classes, e.g. (8, 9).
    test_fraction : float, default 0.5
        Fraction of the 1797 images held out as the test split (stratified by a seeded shuffle).
    seed : int, default 0
        Seed of the train/test shuffle.

    Returns
    -------
    PairTasks
        Images of shape (N, 1, 8, 8) scaled to [0, 1].
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0)[:, None].astype(np.float32)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    test_idx, train_idx = order[:n_test], order[n_test:]
    return split_pairs(
        (images[train_idx], labels[train_idx]),
        (images[test_idx], labels[test_idx]),
        retrain_pairs,
        test_pair,
    )


#: Per-channel CIFAR-10 training-set mean and standard deviation (the usual normalisation).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

#: Folder of the python version of CIFAR-10, and its batch files.
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
#: Image side, channels and classes of CIFAR-10.
CIFAR_SIDE, CIFAR_CHANNELS, CIFAR_CLASSES = 32, 3, 10

#: The only globals a CIFAR-10 batch pickle may name: numpy's array reconstruction (under its
#: NumPy 1 and NumPy 2 module names) and the codec Python 3 uses for protocol-2 bytes.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class DataFormatError(ValueError):
    """A data file exists but does not hold what its format promises."""


def _unpickle_batch(path: Path) -> dict:
    # A restricted unpickler: a pickle can run arbitrary code, so only the handful of globals
    # a CIFAR batch needs are resolved; anything else is a format error, not an execution.
    import pickle

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in _PICKLE_GLOBALS:
                raise DataFormatError(f"{path}: unexpected object {module}.{name} in the pickle")
            if module == "numpy.core.multiarray":  # NumPy 2 moved it (and warns on the old name)
                module = "numpy._core.multiarray" if hasattr(np, "_core") else module
            return super().find_class(module, name)

    try:
        with open(path, "rb") as handle:
            batch = Unpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"{path} is not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict):
        raise DataFormatError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    return batch


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file of the python version of CIFAR-10.

    The file is a pickled dict whose ``b"data"`` is a uint8 array of shape (N, 3072), each
    row an image as three row-major 32 x 32 planes (red, green, blue), and whose ``b"labels"``
    lists N class indices in 0..9.

    Parameters
    ----------
    path : path
        ``data_batch_<i>`` or ``test_batch``.

    Returns
    -------
    images : ndarray of uint8, shape (N, 3, 32, 32)
    labels : ndarray of int64, shape (N,)

    Raises
    ------
    DataMissingError
        If the file does not exist.
    DataFormatError
        If it is not such a dict: wrong keys, dtype, shape, label count or label range.
    """
    path = Path(path)
    if not path.is_file():
        raise DataMissingError(f"CIFAR-10 batch file not found: {path}")
    batch = _unpickle_batch(path)
    for key in (b"data", b"labels"):
        if key not in batch:
            raise DataFormatError(f"{path}: the batch dict has no {key!r} entry "
                                  f"(keys: {sorted(map(repr, batch))})")
    data = batch[b"data"]
    pixels = CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataFormatError(f"{path}: b'data' must be a uint8 array, got "
                              f"{getattr(data, 'dtype', type(data).__name__)}")
    if data.ndim != 2 or data.shape[1] != pixels:
        raise DataFormatError(f"{path}: b'data' must have shape (N, {pixels}), got {data.shape}")
    labels = np.asarray(batch[b"labels"])
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{path}: b'labels' must hold {data.shape[0]} integers, got "
                              f"shape {labels.shape} of {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= CIFAR_CLASSES):
        raise DataFormatError(f"{path}: labels must lie in 0..{CIFAR_CLASSES - 1}, got "
                              f"{labels.min()}..{labels.max()}")
    images = data.reshape(-1, CIFAR_CHANNELS, CIFAR_SIDE, CIFAR_SIDE)
    return images, labels.astype(np.int64)


def cifar_folder(data_dir: str | Path) -> Path:
    """The ``cifar-10-batches-py`` folder under ``data_dir``, checked to hold all six batches.

    Raises
    ------
    DataMissingError
        If the folder or one of its batch files is missing; the message says where to get the
        data and what to pass.
    """
    root = Path(data_dir).expanduser()
    folder = root / CIFAR_FOLDER
    missing = [name for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)
               if not (folder / name).is_file()]
    if missing:
        what = folder if not folder.is_dir() else f"{', '.join(missing)} in {folder}"
        raise DataMissingError(
            f"CIFAR-10 not found: expected {what}. Download the python version from "
            "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it into "
            f"{root} (it creates {CIFAR_FOLDER}/) and pass --data-dir {root}"
        )
    return folder


def read_cifar10(data_dir: str | Path) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Read CIFAR-10's five training batches and its test batch (no torchvision).

    Returns
    -------
    (train_images, train_labels), (test_images, test_labels)
        uint8 images of shape (N, 3, 32, 32) and int64 labels; N = 50000 and 10000 for the
        real data set.
    """
    folder = cifar_folder(data_dir)
    parts = [read_cifar_batch(folder / name) for name in CIFAR_TRAIN_FILES]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return train, read_cifar_batch(folder / CIFAR_TEST_FILE)


def normalise_cifar(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 3, H, W) to float32, scaled to [0, 1] and standardised per channel."""
    mean = np.asarray(CIFAR_MEAN, dtype=np.float32)[None, :, None, None]
    std = np.asarray(CIFAR_STD, dtype=np.float32)[None, :, None, None]
    return (images.astype(np.float32) / 255.0 - mean) / std


def load_cifar_pairs(
    data_dir: str | Path,
    retrain_pairs: tuple[tuple[int, int], ...],
    test_pair: tuple[int, int],
) -> PairTasks:
    """CIFAR-10 pair tasks read from a local copy of its python version (never downloads).

    Parameters
    ----------
    data_dir : path
        Folder holding ``cifar-10-batches-py`` (see :func:`read_cifar10`).
    retrain_pairs, test_pair
        As in :func:`load_digits_pairs`. The unseen pair's fine-tuning pool is its training
        images, its test set its test images.

    Raises
    ------
    DataMissingError
        If the files are not under ``data_dir``.
    DataFormatError
        If a file is not a CIFAR-10 batch.
    """
    (train_x, train_y), (test_x, test_y) = read_cifar10(data_dir)
    return split_pairs((normalise_cifar(train_x), train_y), (normalise_cifar(test_x), test_y),
                       retrain_pairs, test_pair)


def random_crop_flip(
    images: torch.Tensor, generator: torch.Generator, padding: int = 4,
    fill: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """Random-crop (after padding) and random horizontal flip, image by image.

    The augmentation of the authors' CIFAR-10 scripts (torchvision's ``RandomCrop(32,
    padding=4)`` then ``RandomHorizontalFlip()``), on a batch tensor.

    Parameters
    ----------
    images : Tensor of shape (B, C, H, W)
    generator : torch.Generator
        Source of the offsets and flips (CPU).
    padding : int, default 4
        Pixels added on each side before cropping back to H x W.
    fill : tuple of float, optional
        Per-channel value of the padding (default 0). For standardised CIFAR-10 images, the
        value of a black pixel is -mean / std.

    Returns
    -------
    Tensor of shape (B, C, H, W)
    """
    b, c, h, w = images.shape
    value = torch.zeros(c) if fill is None else torch.as_tensor(fill, dtype=images.dtype)
    padded = value.to(images.device)[None, :, None, None].expand(
        b, c, h + 2 * padding, w + 2 * padding).clone()
    padded[:, :, padding:padding + h, padding:padding + w] = images
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = dx[:, None] + torch.arange(w, device=images.device)
    cols = torch.where(flip[:, None], cols.flip(-1), cols)[:, None, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


#: Pixel value of a black (zero) pixel after :func:`normalise_cifar`, per channel.
CIFAR_BLACK = tuple(-m / s for m, s in zip(CIFAR_MEAN, CIFAR_STD, strict=True))
