"""Tests of the neural loaders: shallow teacher, digits / CIFAR-10 pairs, ConvAI2, RoBERTa."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny problems: threads only add contention
pytestmark = pytest.mark.torch

from lowrank_theory.neural.data import (  # noqa: E402
    DataMissingError,
    TaskSet,
    load_cifar_pairs,
    load_digits_pairs,
    shallow_teacher,
)

PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7))


def test_shallow_teacher_shapes_and_noise():
    """Teacher draws have the stated shapes; the residual of the clean model is sigma-sized."""
    teacher = shallow_teacher(d=5, k=2, T=3, sigma=0.1, seed=0)
    assert teacher.A.shape == (5, 5) and teacher.U.shape == (4, 5, 2) and teacher.c.shape == (5,)
    torch.testing.assert_close(teacher.A, teacher.A.T)
    X, y = teacher.sample(1, 4000, torch.Generator().manual_seed(0))
    assert X.shape == (4000, 5) and y.shape == (4000,)
    clean = torch.sigmoid(X @ teacher.weight(1).T) @ teacher.c
    assert abs(float((y - clean).std()) - 0.1) < 0.01
    with pytest.raises(ValueError, match="d >= k"):
        shallow_teacher(d=2, k=3, T=1, sigma=0.1, seed=0)
    with pytest.raises(ValueError, match="sigma"):
        shallow_teacher(d=2, k=1, T=1, sigma=-1.0, seed=0)


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


def test_cifar_missing_gives_one_clear_message(tmp_path):
    """Without torchvision or the files, the loader says what to install or where to put them."""
    with pytest.raises(DataMissingError) as info:
        load_cifar_pairs(tmp_path, PAIRS, (8, 9))
    message = str(info.value)
    assert "torchvision" in message or "cifar-10-batches-py" in message


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
    from lowrank_theory.neural.language import LanguageConfig, language_tasks, load_roberta

    with pytest.raises(DataMissingError, match="--model-dir"):
        load_roberta(None)
    with pytest.raises(DataMissingError, match="config.json"):
        load_roberta(tmp_path)
    with pytest.raises(DataMissingError, match="train_self_original.txt"):
        language_tasks(LanguageConfig.cpu(), str(tmp_path))
    with pytest.raises(DataMissingError, match="--data-dir"):
        language_tasks(LanguageConfig.paper(), None)


def test_convai2_groups_are_sized_by_the_config(tmp_path):
    """Largest groups first; small retraining groups are used whole; too few groups or an
    unseen group smaller than n + 1 is a DataMissingError, not a crash."""
    pytest.importorskip("transformers")
    import dataclasses

    from lowrank_theory.neural.language import LanguageConfig, language_tasks

    _write_convai2(tmp_path / "train_self_original.txt", personas=3, dialogues_per_persona=2)
    config = dataclasses.replace(LanguageConfig.cpu(), num_tasks=2, examples_per_task=4,
                                 n_finetune=2, n_test=100)
    groups, source = language_tasks(config, str(tmp_path))
    assert source == "convai2" and [len(g) for g in groups] == [4, 4, 6]
    with pytest.raises(DataMissingError, match="persona groups"):
        language_tasks(dataclasses.replace(config, num_tasks=3), str(tmp_path))
    with pytest.raises(DataMissingError, match="fewer than"):
        language_tasks(dataclasses.replace(config, n_finetune=6), str(tmp_path))
