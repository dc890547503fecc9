"""Tests of the neural loaders: shallow teacher, digits / CIFAR-10 pairs, ConvAI2, RoBERTa."""

import pickle
import struct
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny problems: threads only add contention
pytestmark = pytest.mark.torch

from lowrank_theory.neural.data import (  # noqa: E402
    CIFAR_MEAN,
    CIFAR_STD,
    DataFormatError,
    DataMissingError,
    TaskSet,
    load_cifar_pairs,
    load_digits_pairs,
    random_crop_flip,
    read_cifar10,
    read_cifar_batch,
    shallow_teacher,
)

PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7))


def test_shallow_teacher_shapes_and_noise():
    """Teacher draws have the stated shapes; the residual of the clean model is sigma-sized;
    the authors' convention (A* = G, x ~ N(0, I)) is the default."""
    teacher = shallow_teacher(d=5, k=2, T=3, sigma=0.1, seed=0)
    assert teacher.A.shape == (5, 5) and teacher.U.shape == (4, 5, 2) and teacher.c.shape == (5,)
    assert not torch.allclose(teacher.A, teacher.A.T)
    X, y, clean = teacher.sample(1, 4000, torch.Generator().manual_seed(0))
    assert X.shape == (4000, 5) and y.shape == clean.shape == (4000,)
    assert abs(float(X.std()) - 1.0) < 0.03
    torch.testing.assert_close(clean, torch.sigmoid(X @ teacher.weight(1).T) @ teacher.c)
    assert abs(float((y - clean).std()) - 0.1) < 0.01
    symmetric = shallow_teacher(d=5, k=2, T=3, sigma=0.1, seed=0, symmetric_base=True,
                                input_std=0.5)
    torch.testing.assert_close(symmetric.A, symmetric.A.T)
    X, _, _ = symmetric.sample(0, 4000, torch.Generator().manual_seed(0))
    assert abs(float(X.std()) - 0.5) < 0.02
    with pytest.raises(ValueError, match="d >= k"):
        shallow_teacher(d=2, k=3, T=1, sigma=0.1, seed=0)
    with pytest.raises(ValueError, match="sigma"):
        shallow_teacher(d=2, k=1, T=1, sigma=-1.0, seed=0)
    with pytest.raises(ValueError, match="input_std"):
        shallow_teacher(d=2, k=1, T=1, sigma=0.1, seed=0, input_std=0.0)


def test_taskset_validation_and_batches():
    with pytest.raises(ValueError, match="disagree"):
        TaskSet(((torch.zeros(3, 2), torch.zeros(4)),))
    with pytest.raises(ValueError, match="at least one"):
        TaskSet(())
    tasks = TaskSet(((torch.arange(10.0)[:, None], torch.arange(10.0)),))
    x, y = tasks.batch(0, 4, torch.Generator().manual_seed(0))
    assert x.shape == (4, 1) and torch.equal(x[:, 0], y)  # rows stay paired
    assert len(set(y.tolist())) == 4  # without replacement
    assert tasks.batch(0, None, None)[0].shape == (10, 1)


def test_digits_pairs():
    """Bundled digits: 4 retraining pairs and {8, 9}, labels = class mod 2, disjoint splits."""
    pairs = load_digits_pairs(PAIRS, (8, 9), test_fraction=0.5, seed=0)
    assert pairs.retrain.num_tasks == 4
    for images, labels in pairs.retrain.tasks:
        assert images.shape[1:] == (1, 8, 8) and images.dtype == torch.float32
        assert set(labels.unique().tolist()) == {0.0, 1.0}
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    n_train, n_test = pairs.new_train.size(0), pairs.new_test.size(0)
    assert n_train + n_test == 354  # 174 eights + 180 nines in the bundled set
    assert 140 < n_train < 215
    train_rows = {tuple(x.flatten().tolist()) for x in pairs.new_train.tasks[0][0]}
    test_rows = {tuple(x.flatten().tolist()) for x in pairs.new_test.tasks[0][0]}
    assert len(train_rows & test_rows) < 5  # (a few digit images are exact duplicates)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_pairs(PAIRS, (8, 9), test_fraction=1.0)


# ---------------------------------------------------------------------- CIFAR-10
def _write_batch(path, images, labels, protocol=2, overrides=None):
    """Write one batch in the python version's on-disk format: a pickled dict with bytes keys,
    b'data' uint8 (N, 3072) (three row-major 32 x 32 planes per row) and b'labels'."""
    import pickle

    batch = {b"batch_label": b"fixture", b"labels": [int(v) for v in labels],
             b"data": images.reshape(len(images), -1), b"filenames": [b"x.png"] * len(images)}
    batch.update(overrides or {})
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=protocol)


def _write_cifar(root, per_batch=20, protocol=2, seed=0):
    """A tiny CIFAR-10 copy: five training batches and a test batch, every class present."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        labels = np.arange(per_batch) % 10
        _write_batch(folder / name, images, labels, protocol=protocol)
        written[name] = (images, labels)
    return folder, written


@pytest.mark.parametrize("protocol", [2, 4])
def test_read_cifar10_reads_the_python_batches(tmp_path, protocol):
    """Rows are unpacked as (red, green, blue) row-major planes, batches concatenated in file
    order, labels kept; the pair tasks hold the right images, normalised per channel."""
    _, written = _write_cifar(tmp_path, protocol=protocol)
    (train_x, train_y), (test_x, test_y) = read_cifar10(tmp_path)
    assert train_x.shape == (100, 3, 32, 32) and train_x.dtype == np.uint8
    assert test_x.shape == (20, 3, 32, 32) and train_y.dtype == np.int64
    first = written["data_batch_1"][0]
    row = first.reshape(20, -1)[3]
    # pixel (channel c, row r, column q) sits at c * 1024 + r * 32 + q of the flat row
    for c, r, q in [(0, 0, 0), (1, 5, 7), (2, 31, 31)]:
        assert train_x[3, c, r, q] == row[c * 1024 + r * 32 + q]
    np.testing.assert_array_equal(train_x[20:40], written["data_batch_2"][0])
    np.testing.assert_array_equal(test_y, written["test_batch"][1])

    pairs = load_cifar_pairs(tmp_path, ((0, 1), (2, 3)), (8, 9))
    assert pairs.retrain.num_tasks == 2 and pairs.retrain.size(0) == 20  # 2 classes x 10
    images, labels = pairs.new_train.tasks[0]
    assert set(labels.tolist()) == {0.0, 1.0} and images.shape == (20, 3, 32, 32)
    keep = np.isin(train_y, (8, 9))
    raw = train_x[keep][0, 1, 2, 3]
    expected = (raw / 255.0 - CIFAR_MEAN[1]) / CIFAR_STD[1]
    assert float(images[0, 1, 2, 3]) == pytest.approx(expected, rel=1e-5)
    assert pairs.new_test.size(0) == 4  # two 8s and two 9s in the 20 test images


@pytest.mark.parametrize("case, match", [
    ({b"data": np.zeros((2, 3072), dtype=np.int16)}, "uint8"),
    ({b"data": np.zeros((2, 3000), dtype=np.uint8)}, "shape"),
    ({b"labels": [0, 10]}, "0..9"),
    ({b"labels": [0]}, "2 integers"),
])
def test_cifar_reader_rejects_malformed_batches(tmp_path, case, match):
    """Wrong dtype, shape, label range or label count: a DataFormatError naming the file."""
    path = tmp_path / "data_batch_1"
    images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    _write_batch(path, images, [0, 1], overrides=case)
    with pytest.raises(DataFormatError, match=match) as info:
        read_cifar_batch(path)
    assert str(path) in str(info.value)


def test_cifar_reader_refuses_foreign_pickles(tmp_path):
    """A pickle that names any other global (here os.system) is refused, never executed;
    a dict without b'data', or not a pickle at all, is a format error too."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (__import__("os").system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataFormatError, match="posix.system|os.system|unexpected object"):
        read_cifar_batch(path)
    assert not (tmp_path / "pwned").exists()
    path.write_bytes(pickle.dumps({b"labels": [1]}, protocol=2))
    with pytest.raises(DataFormatError, match="no b'data'"):
        read_cifar_batch(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match="not a CIFAR-10 python batch"):
        read_cifar_batch(path)


# The python version of CIFAR-10 was pickled by Python 2's cPickle (protocol 2): its strings
# are BINSTRING opcodes, its array the (_reconstruct, BUILD) pair of NumPy 1. Python 3 cannot
# write that stream, so these helpers write it opcode by opcode.
def _py2_str(text):
    data = text if isinstance(text, bytes) else text.encode("latin1")
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data  # SHORT_BINSTRING
    return b"T" + struct.pack("<I", len(data)) + data  # BINSTRING


def _int(n):
    return b"K" + bytes([n]) if 0 <= n < 256 else b"J" + struct.pack("<i", n)


def _py2_batch(images, labels):
    """A batch exactly as cPickle wrote CIFAR-10's: dict, uint8 array, list of ints."""
    n = len(images)
    array = (b"cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03" + _int(0)
             + b"\x85q\x04" + _py2_str("b") + b"\x87q\x05Rq\x06(" + _int(1) + _int(n)
             + b"M" + struct.pack("<H", 3072) + b"\x86q\x07cnumpy\ndtype\nq\x08"
             + _py2_str("u1") + _int(0) + _int(1) + b"\x87q\tRq\n(" + _int(3) + _py2_str("|")
             + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"tq\x0bb\x89"
             + _py2_str(images.reshape(n, -1).tobytes()) + b"tq\x0cb")
    return (b"\x80\x02}q\x00(" + _py2_str("data") + b"q\x01" + array + _py2_str("labels")
            + b"q\r]q\x0e(" + b"".join(_int(int(v)) for v in labels) + b"e"
            + _py2_str("batch_label") + _py2_str("training batch 1 of 5") + b"u.")


def test_cifar_reader_reads_the_python2_stream_of_the_real_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(_py2_batch(images, [3, 1, 4, 1]))
    read_images, labels = read_cifar_batch(path)
    np.testing.assert_array_equal(read_images, images)
    assert labels.tolist() == [3, 1, 4, 1]


def _nested_key(depth):
    # {((...((),)...),): 1}: a key of tuples nested `depth` deep, 1 byte per level.
    return b"\x80\x02}" + b")" + b"\x85" * depth + _int(1) + b"s."


def _reconstructed(shape_bytes, state=b""):
    return (b"\x80\x02}" + _py2_str("data") + b"cnumpy.core.multiarray\n_reconstruct\n"
            b"cnumpy\nndarray\n" + shape_bytes + b"\x85" + _py2_str("b") + b"\x87R" + state
            + b"s.")


def _shared_references(levels=12):
    # labels = L11, L_i = [L_(i-1)] * 10: a few hundred bytes standing for 10^12 integers.
    out = b"\x80\x02}" + _py2_str("labels") + b"](" + _int(1) * 10 + b"eq\x00"
    for i in range(1, levels):
        out += b"](" + (b"h" + bytes([i - 1])) * 10 + b"eq" + bytes([i])
    return out + b"s."


#: Hostile batch files: each must be refused with a short DataFormatError, quickly, before
#: the unpickler could crash (C stack), exhaust the memory or run anything.
HOSTILE = {
    "key-nested-1e6": (_nested_key(10**6), "nested more than"),
    "key-nested-1e4": (_nested_key(10**4), "nested more than"),
    "array-shape-1e13": (_reconstructed(b"\x8a\x06" + (10**13).to_bytes(6, "little")),
                         "unexpected call"),
    "object-array-1e13": (_reconstructed(_int(0), b"(" + _int(1) + b"\x8a\x06"
                                         + (10**13).to_bytes(6, "little") + b"\x85"
                                         + b"cnumpy\ndtype\n" + _py2_str("O8") + _int(0)
                                         + _int(1) + b"\x87R\x89]tb"), "type 'O8'"),
    "shared-references": (_shared_references(), "more than 10,000,000 elements"),
    "key-50MB": (b"\x80\x04}X" + struct.pack("<I", 50_000_000) + b"k" * 50_000_000 + _int(1)
                 + b"s.", "key longer than"),
    "memo-index-4e9": (b"\x80\x02}r" + struct.pack("<I", 4_000_000_000) + b".", "memo"),
    "instance": (b"\x80\x02}" + _py2_str("data") + b"c__builtin__\nobject\n)\x81s.",
                 "NEWOBJ|unexpected object"),
    "set": (pickle.dumps({b"data": {1, 2}}, protocol=4), "EMPTY_SET"),
    "protocol-5-buffer": (pickle.dumps({b"data": np.zeros(3, np.uint8)}, protocol=5),
                          "protocol 2 to 4"),
    "protocol-0": (pickle.dumps({b"data": 1}, protocol=0), "protocol 2 to 4"),
    "truncated": (pickle.dumps({b"data": np.zeros(3, np.uint8)}, protocol=2)[:-5],
                  "not a valid pickle"),
    "two-values": (b"\x80\x02}" + b"}" + b".", "does not hold one dict"),
    "not-a-dict": (b"\x80\x02]" + b".", "does not hold one dict"),
    "key-not-a-string": (b"\x80\x02}" + _int(1) + _int(2) + b"s.", "not a string"),
    "list-changed-after-use": (b"\x80\x02}" + _py2_str("labels") + b"]q\x00" + b"\x85"
                               + b"s" + b"h\x00" + _int(1) + b"a0" + b".",
                               "changed after it was stored"),
}


@pytest.mark.parametrize("data, match", list(HOSTILE.values()), ids=list(HOSTILE))
def test_cifar_reader_refuses_hostile_pickles_quickly_with_a_short_message(tmp_path, data,
                                                                           match):
    """Validated before unpickling: every hostile file is a DataFormatError naming the file,
    under 300 characters, in well under a second (the old reader segfaulted, hit the
    recursion limit, or ran out of memory after 12 s)."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match=match) as info:
        read_cifar_batch(path)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert message.startswith(str(path)) and len(message) < 300, message[:500]


def test_cifar_reader_caps_the_file_size(tmp_path, monkeypatch):
    import lowrank_theory.neural.data as data

    path = tmp_path / "data_batch_1"
    _write_batch(path, np.zeros((2, 3, 32, 32), dtype=np.uint8), [0, 1])
    monkeypatch.setattr(data, "MAX_BATCH_BYTES", path.stat().st_size - 1)
    with pytest.raises(DataFormatError, match="more than a CIFAR-10 batch"):
        read_cifar_batch(path)


def test_cifar_reader_names_missing_keys_briefly(tmp_path):
    """A batch without b'data' lists a few of its keys, each cut short."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"k" * 60 + bytes([i]): 1 for i in range(50)}, protocol=4))
    with pytest.raises(DataFormatError, match="no b'data' entry") as info:
        read_cifar_batch(path)
    assert len(str(info.value)) < 600 and str(info.value).endswith(", ...)")


def test_cifar_missing_gives_one_clear_message(tmp_path):
    """No folder, or a folder missing a batch: one DataMissingError that says where the data
    go and what to pass."""
    with pytest.raises(DataMissingError, match="cifar-10-batches-py") as info:
        load_cifar_pairs(tmp_path, PAIRS, (8, 9))
    assert "--data-dir" in str(info.value) and "cs.toronto.edu" in str(info.value)
    folder, _ = _write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataMissingError, match="data_batch_3"):
        read_cifar10(tmp_path)


def test_random_crop_flip_moves_whole_windows():
    """Each output image is a 32 x 32 window of the padded image, possibly mirrored: with no
    padding an image is kept or flipped; with padding the exposed border holds the fill."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 8, 8, generator=g)
    same = random_crop_flip(images, torch.Generator().manual_seed(1), padding=0)
    for x, out in zip(images, same, strict=True):
        assert torch.equal(out, x) or torch.equal(out, x.flip(-1))
    assert any(not torch.equal(o, x) for o, x in zip(same, images, strict=True))
    fill = (-1.0, -2.0, -3.0)
    moved = random_crop_flip(images, torch.Generator().manual_seed(2), padding=2, fill=fill)
    padded = torch.tensor(fill)[:, None, None].expand(3, 12, 12).clone()
    for x, out in zip(images, moved, strict=True):
        padded[:, 2:10, 2:10] = x
        windows = [padded[:, i:i + 8, j:j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(out, w) or torch.equal(out, w.flip(-1)) for w in windows)
    again = random_crop_flip(images, torch.Generator().manual_seed(2), padding=2, fill=fill)
    assert torch.equal(moved, again)


# ---------------------------------------------------------------------- ConvAI2
def _write_convai2(path, personas=3, dialogues_per_persona=2, turns=3):
    """Write a tiny ConvAI2 file in ParlAI's format (persona lines, then utterance lines)."""
    lines = []
    for p in range(personas):
        for dlg in range(dialogues_per_persona):
            n = 1
            for fact in (f"i like colour{p} .", f"my pet is animal{p} ."):
                lines.append(f"{n} your persona: {fact}")
                n += 1
            for turn in range(turns):
                reply = f"i say thing{p} number{turn} ."
                cands = [f"distractor{j} word{turn} ." for j in range(19)] + [reply]
                lines.append(f"{n} hello {dlg} how are you {turn} ?\t{reply}\t\t{'|'.join(cands)}")
                n += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_parse_convai2_and_persona_groups(tmp_path):
    pytest.importorskip("transformers")
    from lowrank_theory.neural.language import parse_convai2, persona_groups

    path = tmp_path / "train_self_original.txt"
    _write_convai2(path)
    dialogues = parse_convai2(path, context_turns=2)
    assert len(dialogues) == 6
    assert dialogues[0].persona == ("i like colour0 .", "my pet is animal0 .")
    ex = dialogues[0].examples[1]
    assert len(ex.candidates) == 20 and ex.candidates[ex.label] == "i say thing0 number1 ."
    # The context is the previous reply and the current partner utterance.
    assert ex.context == "i say thing0 number0 . hello 0 how are you 1 ?"
    groups = persona_groups(dialogues)
    assert [len(g) for g in groups] == [6, 6, 6]
    with pytest.raises(DataMissingError, match="not found"):
        parse_convai2(tmp_path / "missing.txt")


def test_synthetic_dialogues_are_well_formed():
    pytest.importorskip("transformers")
    from lowrank_theory.neural.language import NUM_CANDIDATES, synthetic_dialogues

    dialogues = synthetic_dialogues(3, 10, seed=0)
    for d in dialogues:
        for ex in d.examples:
            assert len(ex.candidates) == NUM_CANDIDATES == len(set(ex.candidates))
            assert ex.candidates[ex.label] in d.persona  # the persona's own answer


def test_tiny_roberta_scorer_and_local_load(tmp_path):
    """A tiny random RoBERTa scores (batch, 20) candidates; a saved copy loads offline."""
    pytest.importorskip("transformers")
    from lowrank_theory.neural.language import (
        encode,
        load_roberta,
        synthetic_dialogues,
        tiny_roberta,
        word_tokenizer,
    )
    from lowrank_theory.neural.models import CandidateScorer

    examples = list(synthetic_dialogues(1, 3, seed=0)[0].examples)
    texts = [e.context for e in examples] + [c for e in examples for c in e.candidates]
    tokenizer = word_tokenizer(texts)
    ids, mask, labels = encode(examples, tokenizer, max_length=24)
    assert ids.shape == mask.shape == (3, 20, 24) and labels.shape == (3,)
    encoder = tiny_roberta(len(tokenizer), hidden=16, layers=1, max_length=24)
    scores = CandidateScorer(encoder)(ids, mask)
    assert scores.shape == (3, 20)

    encoder.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tok = load_roberta(tmp_path)
    assert loaded_tok(texts[0])["input_ids"] == tokenizer(texts[0])["input_ids"]
    torch.testing.assert_close(CandidateScorer(loaded).encoder(ids[0], mask[0]).last_hidden_state,
                               encoder(ids[0], mask[0]).last_hidden_state)


def test_missing_roberta_and_convai2_messages(tmp_path):
    pytest.importorskip("transformers")
    from lowrank_theory.neural.language import language_tasks, load_roberta

    with pytest.raises(DataMissingError, match="--model-dir"):
        load_roberta(None)
    with pytest.raises(DataMissingError, match="config.json"):
        load_roberta(tmp_path)
    with pytest.raises(DataMissingError, match="train_self_original.txt"):
        language_tasks(4, 48, 16, 64, str(tmp_path), synthetic_fallback=True)
    with pytest.raises(DataMissingError, match="--data-dir"):
        language_tasks(10, 128, 32, 128, None)


def test_convai2_groups_are_sized_by_the_config(tmp_path):
    """Largest groups first; small retraining groups are used whole; too few groups or an
    unseen group smaller than n + 1 is a DataMissingError, not a crash."""
    pytest.importorskip("transformers")
    from lowrank_theory.neural.language import language_tasks

    _write_convai2(tmp_path / "train_self_original.txt", personas=3, dialogues_per_persona=2)
    groups, source = language_tasks(2, 4, 2, 100, str(tmp_path))
    assert source == "convai2" and [len(g) for g in groups] == [4, 4, 6]
    with pytest.raises(DataMissingError, match="persona groups"):
        language_tasks(3, 4, 2, 100, str(tmp_path))
    with pytest.raises(DataMissingError, match="fewer than"):
        language_tasks(2, 4, 6, 100, str(tmp_path))
