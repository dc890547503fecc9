"""Language experiment: ConvAI2 persona groups as tasks, 20-candidate next-utterance selection.

Each example is a dialogue context and 20 candidate replies, one correct; a RoBERTa encoder
scores every (context, candidate) pair (:class:`~lowrank_theory.neural.models.CandidateScorer`)
and is trained with cross-entropy over the candidates; the metric is hits@1. A task is a
persona group: every dialogue whose bot persona is the same set of profile sentences.

Data sources
------------
- Real (``--data-dir``): ParlAI's ConvAI2 / persona-chat text files, e.g.
  ``train_self_original.txt``; RoBERTa from a local ``roberta-base`` folder (``--model-dir``),
  read with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` (never downloads).
- Synthetic (``cpu`` size without ``--data-dir``): :func:`synthetic_dialogues` writes persona
  dialogues in the same structure, where the right reply must answer the question asked
  (shared across personas) and name the persona's own favourite (task-specific), with a tiny
  randomly initialised RoBERTa and a word-level tokenizer built from the data. It exercises
  the whole pipeline in minutes; its numbers are not ConvAI2 numbers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import DataMissingError

__all__ = [
    "NUM_CANDIDATES",
    "CONVAI2_FILES",
    "Example",
    "Dialogue",
    "parse_convai2",
    "persona_groups",
    "synthetic_dialogues",
    "word_tokenizer",
    "tiny_roberta",
    "load_roberta",
    "encode",
    "language_tasks",
]

#: Candidates per example in ConvAI2.
NUM_CANDIDATES = 20

#: ConvAI2 files looked for, in order, under ``--data-dir``.
CONVAI2_FILES = ("train_self_original.txt", "train_both_original.txt", "train.txt")


@dataclass(frozen=True)
class Example:
    """One selection problem: ``context``, ``candidates`` and the correct one's index."""

    context: str
    candidates: tuple[str, ...]
    label: int


@dataclass(frozen=True)
class Dialogue:
    """A dialogue: the bot's persona sentences and its selection problems, in order."""

    persona: tuple[str, ...]
    examples: tuple[Example, ...]


# ---------------------------------------------------------------------- ConvAI2 files
def parse_convai2(path: str | Path, context_turns: int = 3) -> list[Dialogue]:
    """Read a ParlAI ConvAI2 / persona-chat text file.

    The format: numbered lines, the number restarting at 1 for each dialogue;
    ``your persona: ...`` lines give the bot's persona; every other line is
    ``partner utterance<TAB>reply<TAB><TAB>cand_1|...|cand_20``.

    Parameters
    ----------
    path : path
        The file.
    context_turns : int, default 3
        How many of the latest utterances (partner's and the bot's replies) form the context.

    Returns
    -------
    list of Dialogue
        Examples whose reply is not among the candidates are skipped.

    Raises
    ------
    DataMissingError
        If the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise DataMissingError(f"ConvAI2 file not found: {path}")
    dialogues: list[Dialogue] = []
    persona: list[str] = []
    examples: list[Example] = []
    history: list[str] = []

    def close() -> None:
        if examples:
            dialogues.append(Dialogue(tuple(persona), tuple(examples)))

    for raw in path.read_text(encoding="utf-8").splitlines():
        number, _, text = raw.strip().partition(" ")
        if not number.isdigit():
            continue
        if int(number) == 1:
            close()
            persona, examples, history = [], [], []
        if text.startswith("your persona:"):
            persona.append(text[len("your persona:"):].strip())
            continue
        if text.startswith("partner's persona:"):
            continue
        fields = text.split("\t")
        if len(fields) < 4:
            continue
        utterance, reply, candidates = fields[0].strip(), fields[1].strip(), fields[3]
        history.append(utterance)
        cands = tuple(c.strip() for c in candidates.split("|"))
        if reply in cands:
            context = " ".join(history[-context_turns:])
            examples.append(Example(context, cands, cands.index(reply)))
        history.append(reply)
    close()
    return dialogues


def persona_groups(dialogues: Sequence[Dialogue]) -> list[list[Example]]:
    """Group examples by persona (the sorted set of its sentences), largest group first.

    Ties are broken by the persona text, so the order is deterministic.
    """
    groups: dict[tuple[str, ...], list[Example]] = {}
    for dialogue in dialogues:
        groups.setdefault(tuple(sorted(dialogue.persona)), []).extend(dialogue.examples)
    return [groups[key] for key in sorted(groups, key=lambda k: (-len(groups[k]), k))]


# ---------------------------------------------------------------------- synthetic dialogues
_TOPICS = {
    "what do you like to eat ?": ("i eat", ("pizza", "sushi", "tacos", "pasta", "salad",
                                            "curry", "steak", "noodles", "soup", "bread")),
    "what do you do for fun ?": ("i enjoy", ("hiking", "chess", "surfing", "painting",
                                             "dancing", "fishing", "running", "gaming",
                                             "reading", "singing")),
    "what music do you listen to ?": ("i listen to", ("jazz", "rock", "pop", "blues", "folk",
                                                      "metal", "opera", "reggae", "techno",
                                                      "country")),
}


def synthetic_dialogues(
    num_personas: int, examples_per_persona: int, seed: int = 0
) -> list[Dialogue]:
    """Persona-chat-like dialogues where the right reply depends on the persona.

    Each persona likes one item per topic. A question about a topic is answered by
    ``"<topic verb> <the persona's item>"``; the 19 distractors are the same phrase with other
    items, and phrases of the other topics. Recognising the topic is shared knowledge (the
    base); knowing the persona's items is per task (an adapter).

    Returns
    -------
    list of Dialogue
        One dialogue per persona, ``examples_per_persona`` examples each.
    """
    rng = np.random.default_rng(seed)
    questions = list(_TOPICS)
    dialogues = []
    for _ in range(num_personas):
        likes = {q: rng.integers(len(_TOPICS[q][1])) for q in questions}
        persona = tuple(f"{_TOPICS[q][0]} {_TOPICS[q][1][likes[q]]} ." for q in questions)
        examples = []
        for _ in range(examples_per_persona):
            q = questions[rng.integers(len(questions))]
            verb, items = _TOPICS[q]
            right = f"{verb} {items[likes[q]]} ."
            wrong_same = [f"{verb} {it} ." for i, it in enumerate(items) if i != likes[q]]
            wrong_other = [f"{_TOPICS[o][0]} {it} ." for o in questions if o != q
                           for it in _TOPICS[o][1]]
            picks = list(rng.choice(wrong_other, NUM_CANDIDATES - 1 - len(wrong_same),
                                    replace=False))
            candidates = [*wrong_same, *picks, right]
            order = rng.permutation(NUM_CANDIDATES)
            shuffled = tuple(candidates[i] for i in order)
            greeting = ("hi !", "hello there .", "hey , how are you ?")[rng.integers(3)]
            examples.append(
                Example(f"{greeting} {q}", shuffled, int(np.flatnonzero(order == NUM_CANDIDATES - 1)[0]))
            )
        dialogues.append(Dialogue(persona, tuple(examples)))
    return dialogues


# ---------------------------------------------------------------------- tokenizer and model
def word_tokenizer(texts: Sequence[str]):
    """A word-level RoBERTa-style fast tokenizer over the words of ``texts`` (no download).

    Pairs are encoded ``<s> A </s></s> B </s>`` as RoBERTa's.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    words = sorted({w for text in texts for w in text.split()} - set(specials))
    vocab = {tok: i for i, tok in enumerate([*specials, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>",
    )


def tiny_roberta(
    vocab_size: int, hidden: int = 32, layers: int = 2, heads: int = 2, max_length: int = 64
):
    """A randomly initialised small ``RobertaModel`` (no pooler) for tests and CPU runs."""
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=2 * hidden,
        max_position_embeddings=max_length + 4, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return RobertaModel(config, add_pooling_layer=False)


def load_roberta(model_dir: str | Path | None):
    """Load ``roberta-base`` (model and tokenizer) from a local folder, never downloading.

    Raises
    ------
    DataMissingError
        If transformers is missing, ``model_dir`` is None, or the folder lacks the files.
    """
    hint = (
        "put roberta-base in a local folder (e.g. on a machine with network: "
        "huggingface-cli download roberta-base --local-dir ~/models/roberta-base) and pass "
        "--model-dir ~/models/roberta-base"
    )
    # Offline before transformers is imported (huggingface_hub reads it at import); the
    # local_files_only flags below keep loading offline even if it was imported earlier.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer, RobertaModel
    except ModuleNotFoundError as exc:
        raise DataMissingError(
            "the language experiment needs transformers: pip install -e .[language]"
        ) from exc
    if model_dir is None:
        raise DataMissingError("the paper-size language experiment needs roberta-base: " + hint)
    folder = Path(model_dir).expanduser()
    if not (folder / "config.json").is_file():
        raise DataMissingError(f"no roberta-base under {folder} (config.json missing): " + hint)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = RobertaModel.from_pretrained(
            str(folder), local_files_only=True, add_pooling_layer=False
        )
    except OSError as exc:
        raise DataMissingError(f"could not load roberta-base from {folder} ({exc}): " + hint) from exc
    return model, tokenizer


def encode(examples: Sequence[Example], tokenizer: Any, max_length: int) -> tuple[torch.Tensor, ...]:
    """Tokenise (context, candidate) pairs: ``(input_ids, attention_mask, labels)``.

    Returns
    -------
    input_ids, attention_mask : LongTensor of shape (examples, candidates, max_length)
    labels : LongTensor of shape (examples,)
    """
    if not examples:
        raise ValueError("no examples to encode")
    contexts = [ex.context for ex in examples for _ in ex.candidates]
    candidates = [c for ex in examples for c in ex.candidates]
    enc = tokenizer(
        contexts, candidates, padding="max_length", truncation=True, max_length=max_length,
        return_tensors="pt",
    )
    shape = (len(examples), len(examples[0].candidates), max_length)
    return (
        enc["input_ids"].reshape(shape),
        enc["attention_mask"].reshape(shape),
        torch.tensor([ex.label for ex in examples], dtype=torch.long),
    )


# ---------------------------------------------------------------------- tasks
def language_tasks(
    num_tasks: int,
    examples_per_task: int,
    n_finetune: int,
    n_test: int,
    data_dir: str | Path | None,
    *,
    synthetic_fallback: bool = False,
    seed: int = 0,
) -> tuple[list[list[Example]], str]:
    """Return T + 1 persona groups (the last is the unseen task) and the data source's name.

    Retraining groups hold up to ``examples_per_task`` examples, the unseen group up to
    ``n_finetune + n_test`` (its first ``n_finetune`` are for fine-tuning, the rest for test).

    Parameters
    ----------
    num_tasks : int
        T, the retraining groups.
    examples_per_task, n_finetune, n_test : int
        Group sizes (see above).
    data_dir : path, optional
        Folder holding a ConvAI2 file (:data:`CONVAI2_FILES`).
    synthetic_fallback : bool, default False
        Without ``data_dir``, use :func:`synthetic_dialogues` instead of failing.
    seed : int
        Seed of the within-group shuffles.

    Raises
    ------
    DataMissingError
        If ConvAI2 is needed and absent, or the data have too few persona groups or examples.
    """
    need = examples_per_task
    last = n_finetune + n_test
    if data_dir is None:
        if not synthetic_fallback:
            raise DataMissingError(
                "the paper-size language experiment reads ConvAI2 from disk: pass --data-dir "
                "DIR holding train_self_original.txt (ParlAI's ConvAI2 / persona-chat files, "
                "e.g. from the ParlAI convai2 task archive)"
            )
        dialogues = synthetic_dialogues(num_tasks + 1, max(need, last), seed=0)
        groups, source = [list(d.examples) for d in dialogues], "synthetic"
    else:
        folder = Path(data_dir).expanduser()
        found = [folder / name for name in CONVAI2_FILES if (folder / name).is_file()]
        if not found:
            raise DataMissingError(
                f"no ConvAI2 file under {folder}: expected one of {', '.join(CONVAI2_FILES)} "
                "(ParlAI's persona-chat format); put it there or change --data-dir"
            )
        groups, source = persona_groups(parse_convai2(found[0])), "convai2"
    if len(groups) < num_tasks + 1:
        raise DataMissingError(
            f"the data hold {len(groups)} persona groups; the config needs "
            f"num_tasks + 1 = {num_tasks + 1}"
        )
    rng = np.random.default_rng(seed)
    chosen = []
    # Groups are used largest first; a retraining group smaller than examples_per_task is used
    # whole (persona-chat groups vary in size), the unseen group must cover n plus one test.
    for t, group in enumerate(groups[: num_tasks + 1]):
        unseen = t == num_tasks
        minimum = n_finetune + 1 if unseen else 1
        if len(group) < minimum:
            raise DataMissingError(
                f"persona group {t} has {len(group)} examples, fewer than the {minimum} needed"
            )
        chosen.append([group[i] for i in rng.permutation(len(group))[: last if unseen else need]])
    return chosen, source
