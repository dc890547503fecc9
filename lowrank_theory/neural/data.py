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

#: Largest batch file read: the real ones hold 10,000 images, about 31 MB.
MAX_BATCH_BYTES = 256 * 2**20
#: Limits on a batch pickle's opcode stream, far above what the real files (about 20,000
#: opcodes, nesting depth 5) or the ones Python 3 writes (about 100,000) need, and far below what
#: exhausts the C stack, the memory or the patience of the unpickler.
MAX_OPCODES = 1_000_000
#: Deepest nesting of containers (a dict in a tuple in a list ...).
MAX_NESTING = 32
#: Memo entries, and the largest memo index (the C unpickler allocates up to the index).
MAX_MEMO = 1_000_000
#: Values on the unpickler's stack at once (Python batches appends by 1,000).
MAX_STACK = 100_000
#: Elements an object stands for, counting a shared reference once per use: the expansion a
#: "billion laughs" pickle hides in a few kilobytes.
MAX_ELEMENTS = 10_000_000
#: Longest dict key (the format's keys are b"data", b"labels", b"batch_label", b"filenames").
MAX_KEY_LENGTH = 64
#: Array element types a batch may hold (numpy's type codes); no object arrays.
_ARRAY_DTYPES = frozenset({"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "b1",
                           "|u1", "|i1", "<i8", "<i4", "<f8", "<f4", "|b1"})
#: The opcodes of protocols 2 to 4 that dicts, lists, tuples, ints, strings, bytes and numpy
#: arrays are written with. Everything else (instances, extensions, persistent ids, sets,
#: out-of-band buffers, the text opcodes of protocol 0) is refused.
_PICKLE_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "TUPLE",
    "TUPLE1", "TUPLE2", "TUPLE3", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "BINPUT",
    "LONG_BINPUT", "MEMOIZE", "BINGET", "LONG_BINGET", "NONE", "NEWTRUE", "NEWFALSE", "BININT",
    "BININT1", "BININT2", "LONG1", "BINFLOAT", "BINSTRING", "SHORT_BINSTRING", "BINBYTES",
    "SHORT_BINBYTES", "BINBYTES8", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "GLOBAL",
    "STACK_GLOBAL", "REDUCE", "BUILD",
})
_STRINGS = {"BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
            "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_INTS = {"BININT", "BININT1", "BININT2", "LONG1"}
#: Characters of a value quoted in a message.
_SHOWN = 40


class DataFormatError(ValueError):
    """A data file exists but does not hold what its format promises."""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


class _Node:
    """What the opcode scan knows of one object: its kind, nesting, size and small values.

    ``sealed`` is set once the object is stored inside another: from then on it may not
    change, so the nesting recorded for the objects holding it stays true.
    """

    __slots__ = ("kind", "depth", "size", "value", "children", "sealed")

    def __init__(self, kind: str, value: object = None, children: tuple = ()) -> None:
        self.kind, self.value, self.children, self.sealed = kind, value, children, False
        for child in children:
            child.sealed = True
        self.depth = 1 + max((c.depth for c in children), default=0) if kind == "tuple" else 0
        self.size = 1 + sum(c.size for c in children)


_MARK = object()


class _Scan:
    """Play a pickle's opcode stream on a model of the unpickler's stack and memo.

    Nothing is built: each value is a :class:`_Node`. Every limit above is checked as the
    stream goes, so a hostile file is refused after reading at most ``MAX_OPCODES`` opcodes.
    """

    def __init__(self) -> None:
        self.stack: list = []
        self.memo: dict[int, _Node] = {}
        self.marks = 0

    def fail(self, reason: str) -> None:
        raise DataFormatError(reason)

    def check(self, node: _Node) -> None:
        if node.depth > MAX_NESTING:
            self.fail(f"objects nested more than {MAX_NESTING} deep")
        if node.size > MAX_ELEMENTS:
            self.fail(f"an object of more than {MAX_ELEMENTS:,} elements (shared references "
                      "counted each time)")

    def push(self, node: _Node) -> None:
        self.check(node)
        if len(self.stack) >= MAX_STACK:
            self.fail(f"more than {MAX_STACK:,} values on the stack")
        self.stack.append(node)

    def pop(self) -> _Node:
        if not self.stack or self.stack[-1] is _MARK:
            self.fail("an opcode with too few values on the stack")
        return self.stack.pop()

    def pop_mark(self) -> list[_Node]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1:]
                del self.stack[i:]
                self.marks -= 1
                return items
        self.fail("a MARK is missing")
        raise AssertionError  # pragma: no cover - fail raised

    def top(self, kinds: tuple[str, ...]) -> _Node:
        if not self.stack or self.stack[-1] is _MARK or self.stack[-1].kind not in kinds:
            self.fail(f"an opcode applied to something other than a {' or '.join(kinds)}")
        return self.stack[-1]

    def grow(self, container: _Node, items: list[_Node]) -> None:
        # A container filled after it was stored elsewhere would let the objects that hold it
        # go deeper than their nodes say; pickle's own writer fills each container at once.
        if container.sealed:
            self.fail(f"a {container.kind} changed after it was stored in another object")
        for item in items:
            item.sealed = True
        container.depth = max(container.depth, 1 + max((c.depth for c in items), default=0))
        container.size += sum(c.size for c in items)
        self.check(container)

    def key(self, node: _Node) -> None:
        if node.kind not in ("bytes", "str"):
            self.fail(f"a dict key that is a {node.kind}, not a string")
        if node.value is None:
            self.fail(f"a dict key longer than {MAX_KEY_LENGTH} characters")

    def global_(self, module: object, name: object) -> _Node:
        if (module, name) not in _PICKLE_GLOBALS:
            self.fail(f"unexpected object {_short(module)[1:-1]}.{_short(name)[1:-1]}")
        return _Node("global", (module, name))

    def reduce(self, func: _Node, args: _Node) -> _Node:
        if func.kind != "global" or args.kind != "tuple":
            self.fail("a call of something other than numpy's array and dtype constructors")
        _, name = func.value
        values = [c.value for c in args.children]
        kinds = [c.kind for c in args.children]
        if name == "encode" and kinds == ["str", "str"] and values[1] == "latin1":
            # Python 3's spelling of protocol-2 bytes.
            return _Node("bytes", None if values[0] is None else values[0].encode("latin1"))
        if name == "dtype" and kinds[:1] in (["str"], ["bytes"]):
            code = values[0].decode("latin1") if isinstance(values[0], bytes) else values[0]
            if code not in _ARRAY_DTYPES:
                self.fail(f"an array of type {_short(code)}, not of numbers")
            return _Node("dtype", code)
        if (name == "_reconstruct" and len(args.children) == 3
                and args.children[0].kind == "global" and args.children[0].value[1] == "ndarray"
                and args.children[1].kind == "tuple" and [c.value for c in
                                                          args.children[1].children] == [0]):
            return _Node("ndarray", None)  # an empty array; BUILD gives it shape and data
        self.fail(f"an unexpected call of {name}")
        raise AssertionError  # pragma: no cover - fail raised

    def build(self, obj: _Node, state: _Node) -> None:
        if obj.kind == "ndarray":
            if state.kind != "tuple" or len(state.children) != 5:
                self.fail("an array whose state is not (version, shape, dtype, order, data)")
            shape = state.children[1]
            dims = [c.value for c in shape.children] if shape.kind == "tuple" else None
            if dims is None or not all(isinstance(n, int) and n >= 0 for n in dims):
                self.fail("an array whose shape is not a tuple of sizes")
            elements = 1
            for n in dims:
                elements *= n
            if elements > MAX_BATCH_BYTES:
                self.fail(f"an array claiming {elements:,} elements")
            if state.children[2].kind != "dtype" or state.children[4].kind not in (
                    "bytes", "str"):
                self.fail("an array whose dtype or data is not plain")
        elif obj.kind != "dtype" or state.kind != "tuple":
            self.fail(f"state set on a {obj.kind}")
        self.grow(obj, [state])

    def run(self, data: bytes) -> None:
        import io
        import pickletools

        for count, (opcode, arg, _) in enumerate(pickletools.genops(io.BytesIO(data))):
            op = opcode.name
            if count >= MAX_OPCODES:
                self.fail(f"more than {MAX_OPCODES:,} opcodes")
            if op not in _PICKLE_OPCODES:
                self.fail(f"the opcode {op}, which the format does not use")
            if count == 0 and (op != "PROTO" or not 2 <= arg <= 4):
                self.fail("not a pickle of protocol 2 to 4")
            if op in ("PROTO", "FRAME"):
                continue
            if op == "STOP":
                if len(self.stack) != 1 or self.stack[0] is _MARK or self.stack[0].kind != "dict":
                    self.fail("the pickle does not hold one dict")
                return
            if op == "MARK":
                self.marks += 1
                if self.marks > MAX_NESTING:
                    self.fail(f"MARKs nested more than {MAX_NESTING} deep")
                self.stack.append(_MARK)
            elif op in ("EMPTY_DICT", "EMPTY_LIST"):
                self.push(_Node("dict" if op == "EMPTY_DICT" else "list"))
            elif op in ("EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
                n = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}.get(op)
                items = self.pop_mark() if n is None else [self.pop() for _ in range(n)][::-1]
                self.push(_Node("tuple", None, tuple(items)))
            elif op in ("NONE", "NEWTRUE", "NEWFALSE", "BINFLOAT"):
                self.push(_Node("float" if op == "BINFLOAT" else "const",
                                {"NEWTRUE": True, "NEWFALSE": False}.get(op)))
            elif op in _INTS:
                self.push(_Node("int", arg))
            elif op in _STRINGS:
                kind = "str" if "UNICODE" in op else "bytes"
                short = len(arg) <= MAX_KEY_LENGTH
                self.push(_Node(kind, (arg.encode("latin1") if op.endswith("BINSTRING")
                                       else arg) if short else None))
            elif op in ("APPEND", "APPENDS"):
                items = [self.pop()] if op == "APPEND" else self.pop_mark()
                self.grow(self.top(("list",)), items)
            elif op in ("SETITEM", "SETITEMS"):
                items = [self.pop() for _ in range(2)][::-1] if op == "SETITEM" else self.pop_mark()
                if len(items) % 2:
                    self.fail("a dict item without its value")
                for key in items[::2]:
                    self.key(key)
                self.grow(self.top(("dict",)), items)
            elif op in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
                index = len(self.memo) if op == "MEMOIZE" else arg
                if index >= MAX_MEMO or len(self.memo) >= MAX_MEMO:
                    self.fail(f"a memo of more than {MAX_MEMO:,} entries")
                if not self.stack or self.stack[-1] is _MARK:
                    self.fail("a memo entry for nothing")
                self.memo[index] = self.stack[-1]
            elif op in ("BINGET", "LONG_BINGET"):
                if arg not in self.memo:
                    self.fail("a memo entry used before it was stored")
                self.push(self.memo[arg])
            elif op == "GLOBAL":
                module, _, name = arg.partition(" ")
                self.push(self.global_(module, name))
            elif op == "STACK_GLOBAL":
                name, module = self.pop(), self.pop()
                self.push(self.global_(module.value, name.value))
            elif op == "REDUCE":
                args = self.pop()
                self.push(self.reduce(self.pop(), args))
            elif op == "BUILD":
                state = self.pop()
                self.build(self.top(("ndarray", "dtype")), state)
        self.fail("the pickle ends without STOP")


def _check_pickle(data: bytes) -> None:
    """Refuse, with a :class:`DataFormatError`, a pickle outside the format of CIFAR batches.

    The opcode stream is read with :func:`pickletools.genops` and played on a model of the
    unpickler (:class:`_Scan`) before anything is unpickled: only the format's opcodes and
    globals, bounded nesting, memo, stack and expanded size. So no file can crash the reader
    (a key nested a million deep overflows the C stack when hashed), exhaust its memory (an
    array claiming 10^13 elements, shared references expanding a few kilobytes a millionfold),
    or run code.
    """
    try:
        _Scan().run(data)
    except DataFormatError:
        raise
    except (ValueError, TypeError, AttributeError, IndexError, UnicodeError) as exc:
        # genops' own complaints: an unknown opcode, a truncated argument.
        raise DataFormatError(f"not a valid pickle ({str(exc)[:120]})") from None


def _unpickle_batch(path: Path) -> dict:
    # A restricted unpickler, run only on a stream _check_pickle accepted: a pickle can run
    # arbitrary code, so only the handful of globals a CIFAR batch needs are resolved.
    import io
    import pickle

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in _PICKLE_GLOBALS:
                raise DataFormatError(f"{path}: unexpected object {module[:_SHOWN]}."
                                      f"{name[:_SHOWN]} in the pickle")
            if module == "numpy.core.multiarray":  # NumPy 2 moved it (and warns on the old name)
                module = "numpy._core.multiarray" if hasattr(np, "_core") else module
            return super().find_class(module, name)

    try:
        size = path.stat().st_size
        if size > MAX_BATCH_BYTES:
            raise DataFormatError(f"{path} has {size:,} bytes, more than a CIFAR-10 batch "
                                  f"({MAX_BATCH_BYTES:,} at most)")
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path} cannot be read ({exc.strerror or exc})") from None
    try:
        _check_pickle(data)
    except DataFormatError as exc:
        raise DataFormatError(f"{path} is not a CIFAR-10 python batch: {exc}") from None
    try:
        batch = Unpickler(io.BytesIO(data), encoding="bytes").load()
    except DataFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, OverflowError,
            MemoryError, RecursionError) as exc:
        raise DataFormatError(f"{path} is not a CIFAR-10 python batch "
                              f"({type(exc).__name__}: {str(exc)[:120]})") from None
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
        If it is not such a dict: wrong keys, dtype, shape, label count or label range; or
        not a pickle of the format's opcodes, globals and sizes (see :func:`_check_pickle`),
        checked before anything is unpickled. The message is short whatever the file holds.
    """
    path = Path(path)
    if not path.is_file():
        raise DataMissingError(f"CIFAR-10 batch file not found: {path}")
    batch = _unpickle_batch(path)
    for key in (b"data", b"labels"):
        if key not in batch:
            keys = sorted(_short(k) for k in list(batch)[:10])
            raise DataFormatError(f"{path}: the batch dict has no {key!r} entry "
                                  f"(keys: {', '.join(keys)}{', ...' if len(batch) > 10 else ''})")
    data = batch[b"data"]
    pixels = CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataFormatError(f"{path}: b'data' must be a uint8 array, got "
                              f"{getattr(data, 'dtype', type(data).__name__)}")
    if data.ndim != 2 or data.shape[1] != pixels:
        raise DataFormatError(f"{path}: b'data' must have shape (N, {pixels}), got {data.shape}")
    labels = batch[b"labels"]
    if isinstance(labels, list) and all(type(v) is int for v in labels):
        try:
            labels = np.asarray(labels, dtype=np.int64)
        except OverflowError:
            raise DataFormatError(f"{path}: b'labels' holds integers out of range") from None
    if not isinstance(labels, np.ndarray):
        raise DataFormatError(f"{path}: b'labels' must be a list of integers, got "
                              f"{type(labels).__name__}")
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
