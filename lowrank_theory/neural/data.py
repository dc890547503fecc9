"""Task sets for the neural experiments: the shallow teacher and binary image-pair tasks.

A :class:`TaskSet` is the one task iterator every retraining method consumes: per task a tuple
of tensors ``(inputs..., target)`` with the samples along the first axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


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
        A* = (G + G^T) / 2, G standard normal (the paper's linear convention).
    U : Tensor of shape (T + 1, d, k)
        Standard normal offsets; the last one is the unseen task's.
    c : Tensor of shape (d,)
        Standard normal output weights.
    sigma : float
        Noise standard deviation.
    """

    A: torch.Tensor
    U: torch.Tensor
    c: torch.Tensor
    sigma: float

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self.A.shape[0])

    def weight(self, task: int) -> torch.Tensor:
        """A* + U*_t U*_t^T of shape (d, d)."""
        U = self.U[task]
        return self.A + U @ U.T

    def sample(
        self, task: int, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` samples ``(X (n, d), y (n,))`` of ``task``.

        Notes
        -----
        x ~ N(0, I/d): with standard normal A*, U* this keeps the pre-activations of order one
        for every d, so the sigmoid is neither linear nor saturated (the paper does not state
        its input scale; with x ~ N(0, I) the d = 20 network would be saturated).
        """
        X = torch.randn(n, self.d, generator=generator) / np.sqrt(self.d)
        clean = torch.sigmoid(X @ self.weight(task).T) @ self.c
        return X, clean + self.sigma * torch.randn(n, generator=generator)


def shallow_teacher(d: int, k: int, T: int, sigma: float, seed: int) -> ShallowTeacher:
    """Draw a :class:`ShallowTeacher` with T retraining offsets and one unseen offset.

    Raises
    ------
    ValueError
        If d, k, T are not positive, k > d, or sigma < 0.
    """
    if d < 1 or k < 1 or T < 1 or k > d:
        raise ValueError(f"need d >= k >= 1 and T >= 1, got d={d}, k={k}, T={T}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    g = torch.Generator().manual_seed(int(seed))
    G = torch.randn(d, d, generator=g)
    return ShallowTeacher(
        A=(G + G.T) / 2,
        U=torch.randn(T + 1, d, k, generator=g),
        c=torch.randn(d, generator=g),
        sigma=float(sigma),
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


def load_cifar_pairs(
    data_dir: str | Path,
    retrain_pairs: tuple[tuple[int, int], ...],
    test_pair: tuple[int, int],
) -> PairTasks:
    """CIFAR-10 pair tasks from a local copy read with torchvision (never downloads).

    Parameters
    ----------
    data_dir : path
        Folder holding ``cifar-10-batches-py`` (torchvision's ``CIFAR10(root=data_dir)``).

    Raises
    ------
    DataMissingError
        If torchvision is not installed or the files are not under ``data_dir``.
    """
    try:
        from torchvision.datasets import CIFAR10
    except ModuleNotFoundError as exc:
        raise DataMissingError(
            "the CIFAR-10 loader needs torchvision (pip install torchvision matching your "
            "torch); on a machine without it, run the digits experiment (--size cpu)"
        ) from exc
    root = Path(data_dir).expanduser()
    if not (root / "cifar-10-batches-py").is_dir():
        raise DataMissingError(
            f"CIFAR-10 not found: expected {root / 'cifar-10-batches-py'}. Download the python "
            "version from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it into that "
            "folder and pass --data-dir " + str(root)
        )
    mean = np.asarray(CIFAR_MEAN, dtype=np.float32)[None, :, None, None]
    std = np.asarray(CIFAR_STD, dtype=np.float32)[None, :, None, None]

    def split(train: bool) -> tuple[np.ndarray, np.ndarray]:
        ds = CIFAR10(root=str(root), train=train, download=False)
        images = ds.data.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        return (images - mean) / std, np.asarray(ds.targets, dtype=np.int64)

    return split_pairs(split(True), split(False), retrain_pairs, test_pair)
