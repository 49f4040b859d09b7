"""Tiny random checkpoints of each BERT family and their Keras vs PyTorch outputs on ids.

Each family's tests describe it with a :class:`FamilyCase` (its transformers config and task
classes); :func:`write_checkpoint` saves a tiny perturbed model the way ``save_pretrained`` does,
:func:`keras_outputs` loads it through the strict loader into the family's encoder and head,
:func:`torch_outputs` runs transformers on the same ids.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from models import contract

TASK_CLASSES = ("base", "classification", "masked_lm")
TASK_OF = {
    "base": contract.TASK_EMBEDDING,
    "classification": contract.TASK_CLASSIFICATION,
    "masked_lm": contract.TASK_FILL_MASK,
    "token_classification": contract.TASK_TOKEN_CLASSIFICATION,
}
ID2LABEL = {0: "negative", 1: "neutral", 2: "positive"}


# transformers' class name of each task, after the family's prefix (DistilBert + Model).
_CLASS_SUFFIXES = {
    "base": "Model",
    "classification": "ForSequenceClassification",
    "masked_lm": "ForMaskedLM",
    "token_classification": "ForTokenClassification",
    "pretraining": "ForPreTraining",
}


@dataclasses.dataclass(frozen=True)
class FamilyCase:
    """One family as the tests build it: its transformers classes (``prefix`` + ``Config``,
    ``Model``, ``ForSequenceClassification``...), a tiny config, special ids, tokenizer."""

    prefix: str
    sizes: Mapping[str, Any]
    pad_id: int
    #: Whether the family's tokenizers emit token type ids (BERT, ALBERT, ELECTRA).
    uses_types: bool
    #: Saves the family's reference tokenizer into a directory and returns it.
    tokenizer: Callable[[Path], Any]

    def config(self, **kwargs: Any) -> Any:
        import transformers

        return getattr(transformers, f"{self.prefix}Config")(**self.sizes, **kwargs)

    def model_class(self, kind: str) -> Any:
        """transformers' class of ``kind`` (a key of ``TASK_OF``, or ``pretraining``)."""
        import transformers

        return getattr(transformers, self.prefix + _CLASS_SUFFIXES[kind])


def perturbed_model(case: FamilyCase, kind: str, *, seed: int = 0, **config_kwargs: Any) -> Any:
    """A random model of ``kind`` whose LayerNorms and biases are not the 1/0 init (a weight
    that is not loaded, or loaded into the wrong place, then shows in the outputs)."""
    import torch

    extra: dict[str, Any] = {}
    if kind in ("classification", "token_classification"):
        extra = {"id2label": ID2LABEL, "label2id": {v: k for k, v in ID2LABEL.items()}}
    config = case.config(**extra, **config_kwargs)
    torch.manual_seed(seed)
    model = case.model_class(kind)(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name.lower() or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)
            elif "relative_attention_bias" in name:
                param.mul_(10.0)  # make MPNet's bias matter at tiny scale
    return model


def write_checkpoint(directory: Path, model: Any) -> Path:
    model.save_pretrained(directory)
    return directory


def id_inputs(case: FamilyCase, *, vocab_size: int, pairs: bool, seed: int = 1) -> dict[str, Any]:
    """Five rows of random ids of different lengths, padded with the family's pad id."""
    rng = np.random.default_rng(seed)
    lengths = [23, 15, 4, 19, 2]
    ids = rng.integers(3, vocab_size, size=(len(lengths), max(lengths))).astype(np.int32)
    ids[ids == case.pad_id] = 3
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        ids[row, length:] = case.pad_id
        if pairs and case.uses_types:
            types[row, length // 2 : length] = 1
    return {contract.INPUT_WORD_IDS: ids, contract.INPUT_MASK: mask, contract.INPUT_TYPE_IDS: types}


def keras_outputs(directory: Path, task: str, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """``sequence_output`` and the task output (``embedding``/``logits``/``mlm_logits`` at every
    position) of the checkpoint loaded strictly into the family's Keras encoder and head."""
    encoder, head = _keras_model(str(directory), task)
    encoded = encoder(inputs)
    sequence = encoded[contract.SEQUENCE_OUTPUT]
    result = {contract.SEQUENCE_OUTPUT: np.asarray(sequence)}
    if task == contract.TASK_EMBEDDING:
        result[contract.EMBEDDING] = np.asarray(head(sequence, inputs[contract.INPUT_MASK]))
    elif task == contract.TASK_CLASSIFICATION:
        result[contract.LOGITS] = np.asarray(head(encoded[contract.POOLED_OUTPUT])[contract.LOGITS])
    elif task == contract.TASK_TOKEN_CLASSIFICATION:
        result[contract.TOKEN_LOGITS] = np.asarray(head(sequence)[contract.TOKEN_LOGITS])
    else:
        result[contract.MLM_LOGITS] = np.asarray(head(sequence))
    return result


@functools.cache
def _keras_model(directory: str, task: str) -> tuple[Any, Any]:
    from models.export.model_assembly import build_encoder_and_head
    from models.loading.checkpoint_loader import CheckpointLoader

    encoder, head, _ = build_encoder_and_head(CheckpointLoader(directory), task=task)
    return encoder, head


def torch_outputs(
    case: FamilyCase, model: Any, task: str, inputs: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The same outputs from transformers (mean pooling for the embedding, as
    sentence-transformers computes it)."""
    import torch

    feed = {
        "input_ids": torch.tensor(inputs[contract.INPUT_WORD_IDS], dtype=torch.long),
        "attention_mask": torch.tensor(inputs[contract.INPUT_MASK], dtype=torch.long),
    }
    if case.uses_types:
        feed["token_type_ids"] = torch.tensor(inputs[contract.INPUT_TYPE_IDS], dtype=torch.long)
    with torch.inference_mode():
        out = model(**feed, output_hidden_states=True)
    result = {contract.SEQUENCE_OUTPUT: out.hidden_states[-1].numpy()}
    if task == contract.TASK_EMBEDDING:
        hidden = out.last_hidden_state
        mask = feed["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
        result[contract.EMBEDDING] = pooled.numpy()
    elif task == contract.TASK_CLASSIFICATION:
        result[contract.LOGITS] = out.logits.numpy()
    elif task == contract.TASK_TOKEN_CLASSIFICATION:
        result[contract.TOKEN_LOGITS] = out.logits.numpy()
    else:
        result[contract.MLM_LOGITS] = out.logits.numpy()
    return result


def max_diffs(
    ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], mask: np.ndarray
) -> dict[str, float]:
    """Max abs difference per output; per-token outputs only at real (unpadded) tokens."""
    keep = mask.astype(bool)
    diffs = {}
    for key, value in theirs.items():
        diff = np.abs(ours[key] - value)
        diffs[key] = float(diff[keep].max() if diff.ndim == 3 else diff.max())
    return diffs


def assert_matches_torch(
    case: FamilyCase, directory: Path, model: Any, task: str, inputs: dict[str, Any]
) -> dict[str, float]:
    diffs = max_diffs(
        keras_outputs(directory, task, inputs),
        torch_outputs(case, model, task, inputs),
        inputs[contract.INPUT_MASK],
    )
    tolerance = 1e-5 if task == contract.TASK_EMBEDDING else 1e-4
    assert diffs[contract.SEQUENCE_OUTPUT] <= 1e-5, diffs
    assert max(diffs.values()) <= tolerance, diffs
    return diffs


# --- end-to-end exports (raw text in) ---------------------------------------------------------
def wordpiece_tokenizer(directory: Path, tokenizer_class: Any, **options: Any) -> Any:
    """Save ``tokenizer_class`` (a transformers WordPiece tokenizer) over the bundled MiniLM
    vocabulary into ``directory``, as a released checkpoint ships it; returns it. MPNet's
    vocab.txt is laid out as microsoft/mpnet-base's: ``<s> <pad> </s> <unk>``, BERT's words,
    then ``<mask>``."""
    from models.bundled import bundled_checkpoint

    directory.mkdir(parents=True, exist_ok=True)
    words = (bundled_checkpoint() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    if tokenizer_class is transformers_mpnet_tokenizer():
        words = ["<s>", "<pad>", "</s>", "<unk>", *words, "<mask>"]
    (directory / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    # from_pretrained reads vocab.txt as for a released checkpoint (the constructor, given a
    # vocab_file in transformers 5, may silently build an empty vocabulary).
    tokenizer = tokenizer_class.from_pretrained(str(directory), **options)
    tokenizer.save_pretrained(directory)
    return tokenizer


def transformers_mpnet_tokenizer() -> Any:
    import transformers

    return transformers.MPNetTokenizer


def with_wordpiece_tokenizer(directory: Path, tokenizer_class: Any, **options: Any) -> Path:
    wordpiece_tokenizer(directory, tokenizer_class, **options)
    return directory


def wordpiece_vocab_size() -> int:
    from models.bundled import bundled_checkpoint

    return len((bundled_checkpoint() / "vocab.txt").read_text(encoding="utf-8").splitlines())


def stsb_pairs(count: int) -> tuple[list[str], list[str]]:
    """The first ``count`` sentence pairs of STS-B's English test split."""
    import csv

    from tests.support.data import STSB_EN

    with STSB_EN.open(encoding="utf-8", newline="") as handle:
        rows = [row for row, _ in zip(csv.reader(handle), range(count), strict=False)]
    return [row[0] for row in rows], [row[1] for row in rows]


def stsb_parity(output: Path, checkpoint: Path, *, task: str, count: int) -> float:
    """Token parity, then the max abs output difference of an exported SavedModel against the
    PyTorch reference on ``count`` STS-B sentences alone and as pairs (fill-mask: with a mask
    in every sentence)."""
    import tensorflow as tf

    from models.export.export_verification import check_output_parity, check_token_parity
    from models.export.reference import TorchReference
    from models.loading.checkpoint_loader import CheckpointLoader

    loaded = tf.saved_model.load(str(output))
    loader = CheckpointLoader(checkpoint)  # sentence-transformers' pooling and normalization
    reference = TorchReference(
        loader.model_dir,
        task=task,
        max_seq_length=128,
        pooling_mode=loader.pooling_mode,
        normalize=loader.normalize,
    )
    firsts, seconds = stsb_pairs(count)
    assert check_token_parity(loaded, reference, firsts) == count
    assert check_token_parity(loaded, reference, firsts, pairs=seconds) == count
    if task == contract.TASK_FILL_MASK:
        mask = reference.tokenizer.mask_token
        firsts = [f"{t[: len(t) // 2]} {mask} {t[len(t) // 2 :]}" for t in firsts]
    common: dict[str, Any] = {
        "task": task,
        "mask_id": reference.tokenizer.mask_token_id,
        "id2label": tuple(ID2LABEL.values()) if task == contract.TASK_CLASSIFICATION else (),
    }
    single, _ = check_output_parity(loaded, reference, texts=firsts, **common)
    pair, _ = check_output_parity(loaded, reference, texts=firsts, pairs=seconds, **common)
    return max(single, pair)


def report_signatures(output: Path) -> list[str]:
    """The signatures an export's model card lists."""
    import json

    card = json.loads((output / contract.MODEL_CARD_FILE).read_text(encoding="utf-8"))
    return list(card["signatures"])


def as_sentence_transformers(directory: Path, *, pooling: str, normalize: bool) -> Path:
    """Add the files sentence-transformers saves (modules.json, 1_Pooling, 2_Normalize) to a
    saved Hugging Face model, making ``directory`` a sentence-transformers checkpoint."""
    import json

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (directory / "2_Normalize").mkdir()
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    (directory / "1_Pooling").mkdir()
    flags = {f"pooling_mode_{m}": m == pooling for m in ("cls_token", "mean_tokens", "max_tokens")}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(flags))
    return directory


# --- offline tokenizers and text parity (the reference tokenizer's ids into both models) ------
def _stsb_sentences(count: int) -> list[str]:
    firsts, seconds = stsb_pairs(count)
    return firsts + seconds


def bpe_tokenizer(directory: Path) -> Any:
    """RoBERTa's byte-level BPE trained on STS-B, saved in ``directory`` as released RoBERTa
    checkpoints ship it (``<mask>`` with lstrip); returns the reference tokenizer."""
    import transformers

    from tests.support.byte_level_bpe_checkpoint import write_roberta_checkpoint

    directory.mkdir(parents=True, exist_ok=True)
    write_roberta_checkpoint(directory, vocab_size=1000)
    return transformers.AutoTokenizer.from_pretrained(str(directory))


def sentencepiece_tokenizer(directory: Path, *, family: str) -> Any:
    """An XLM-R (``sentencepiece.bpe.model``) or ALBERT (``spiece.model``) tokenizer over a
    Unigram model trained on STS-B, converted by transformers as for released checkpoints."""
    import io

    import sentencepiece
    import transformers

    directory.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if family == "albert":
        options = {
            "pad_id": 0,
            "unk_id": 1,
            "bos_id": -1,
            "eos_id": -1,
            "control_symbols": "[CLS],[SEP],[MASK]",
        }
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_stsb_sentences(1500)),
        model_writer=model,
        model_type="unigram",
        vocab_size=800,
        hard_vocab_limit=False,
        minloglevel=2,
        **options,
    )
    name = "spiece.model" if family == "albert" else "sentencepiece.bpe.model"
    (directory / name).write_bytes(model.getvalue())
    tokenizer_class = (
        transformers.AlbertTokenizer if family == "albert" else transformers.XLMRobertaTokenizer
    )
    tokenizer = tokenizer_class.from_pretrained(str(directory))
    tokenizer.save_pretrained(directory)
    return tokenizer


def text_batches(
    tokenizer: Any, texts: list[str], pairs: list[str] | None, *, batch_size: int = 32
) -> list[dict[str, Any]]:
    """The reference tokenizer's ids, as the Keras encoder's inputs, in padded batches."""
    batches = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(
            texts[start : start + batch_size],
            pairs[start : start + batch_size] if pairs is not None else None,
            truncation=True,
            max_length=128,
            padding=True,
            return_tensors="np",
        )
        ids = encoded["input_ids"].astype(np.int32)
        types = encoded.get("token_type_ids")
        batches.append(
            {
                contract.INPUT_WORD_IDS: ids,
                contract.INPUT_MASK: encoded["attention_mask"].astype(np.int32),
                contract.INPUT_TYPE_IDS: (
                    np.zeros_like(ids) if types is None else types.astype(np.int32)
                ),
            }
        )
    return batches


def text_parity(
    case: FamilyCase, directory: Path, model: Any, task: str, tokenizer: Any, *, count: int
) -> float:
    """Max abs difference over PROBE_TEXTS and ``count`` STS-B sentences, alone and as pairs
    (fill-mask: with the tokenizer's mask token in every text), asserting the tolerances."""
    from models.export.export_verification import probe_pairs
    from models.probe_texts import PROBE_TEXTS

    batch_size = 32
    if task == contract.TASK_FILL_MASK:
        # Logits over the whole vocabulary at every position: fewer, smaller batches keep the
        # memory (and time) of a 30k-word vocabulary low.
        count, batch_size = min(count, 100), 8
    firsts, seconds = stsb_pairs(count)
    probe_firsts, probe_seconds = probe_pairs(list(PROBE_TEXTS))
    texts, partners = firsts + probe_firsts, seconds + probe_seconds
    if task == contract.TASK_FILL_MASK:
        mask = tokenizer.mask_token
        texts = [f"{t[: len(t) // 2]} {mask} {t[len(t) // 2 :]}" for t in texts]
    worst = 0.0
    for pairs in (None, partners):
        for inputs in text_batches(tokenizer, texts, pairs, batch_size=batch_size):
            worst = max(
                worst, max(assert_matches_torch(case, directory, model, task, inputs).values())
            )
    return worst


# --- the family table: every family the encoder tests check against transformers ---------------
def _wordpiece(tokenizer_class: str) -> Callable[[Path], Any]:
    def make(directory: Path) -> Any:
        import transformers

        return wordpiece_tokenizer(directory, getattr(transformers, tokenizer_class))

    return make


def _sentencepiece(family: str) -> Callable[[Path], Any]:
    return lambda directory: sentencepiece_tokenizer(directory, family=family)


_HIDDEN = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "max_position_embeddings": 130,
}
_ROBERTA_SIZES = {**_HIDDEN, "type_vocab_size": 1, "layer_norm_eps": 1e-5}
_ALBERT_SIZES = {**_HIDDEN, "embedding_size": 16, "num_hidden_layers": 4}

#: Tiny random checkpoints of every family, by name; ``electra`` factorizes its embeddings
#: (16, projected to 32), ``electra-32`` does not (no projection, as transformers does).
#: ALBERT shares one layer across all four, as released ALBERTs do.
FAMILY_CASES: dict[str, FamilyCase] = {
    "distilbert": FamilyCase(
        prefix="DistilBert",
        sizes={
            "dim": 32,
            "n_layers": 2,
            "n_heads": 4,
            "hidden_dim": 37,
            "max_position_embeddings": 130,
        },
        pad_id=0,
        uses_types=False,
        tokenizer=_wordpiece("DistilBertTokenizer"),
    ),
    "electra": FamilyCase(
        prefix="Electra",
        sizes={**_HIDDEN, "embedding_size": 16},
        pad_id=0,
        uses_types=True,
        tokenizer=_wordpiece("ElectraTokenizer"),
    ),
    "albert": FamilyCase(
        prefix="Albert",
        sizes={**_ALBERT_SIZES, "num_hidden_groups": 1, "inner_group_num": 1},
        pad_id=0,
        uses_types=True,
        tokenizer=_sentencepiece("albert"),
    ),
    "mpnet": FamilyCase(
        prefix="MPNet",
        sizes={**_HIDDEN, "max_position_embeddings": 300},
        pad_id=1,
        uses_types=False,
        tokenizer=_wordpiece("MPNetTokenizer"),
    ),
    "roberta": FamilyCase(
        prefix="Roberta",
        sizes=_ROBERTA_SIZES,
        pad_id=1,
        uses_types=False,
        tokenizer=bpe_tokenizer,
    ),
    "xlm-roberta": FamilyCase(
        prefix="XLMRoberta",
        sizes=_ROBERTA_SIZES,
        pad_id=1,
        uses_types=False,
        tokenizer=_sentencepiece("xlm-roberta"),
    ),
}
FAMILY_CASES["electra-32"] = dataclasses.replace(
    FAMILY_CASES["electra"], sizes={**_HIDDEN, "embedding_size": 32}
)
#: ALBERT with two groups of two layers (heads do not depend on the layer sharing).
ALBERT_GROUPED = dataclasses.replace(
    FAMILY_CASES["albert"],
    sizes={**_ALBERT_SIZES, "num_hidden_groups": 2, "inner_group_num": 2},
)
#: The families text parity runs on (electra-32 differs from electra only in its embeddings).
TEXT_FAMILIES = tuple(name for name in FAMILY_CASES if name != "electra-32")


class FamilyCheckpoints:
    """Each family's reference tokenizer and tiny checkpoints, made once on first use."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._tokenizers: dict[str, Any] = {}
        self._checkpoints: dict[tuple[str, str], tuple[Path, Any]] = {}

    def tokenizer(self, name: str) -> Any:
        if name not in self._tokenizers:
            self._tokenizers[name] = FAMILY_CASES[name].tokenizer(self._root / name / "tokenizer")
        return self._tokenizers[name]

    def checkpoint(self, name: str, kind: str) -> tuple[Path, Any]:
        """(directory, PyTorch model) of family ``name``'s ``kind`` checkpoint."""
        if (name, kind) not in self._checkpoints:
            vocab_size = len(self.tokenizer(name))
            model = perturbed_model(FAMILY_CASES[name], kind, vocab_size=vocab_size)
            self._checkpoints[name, kind] = (
                write_checkpoint(self._root / name / kind, model),
                model,
            )
        return self._checkpoints[name, kind]


# Constructor arguments each family's encoder adds to the shared tiny ones: a factorized
# embedding (ELECTRA, ALBERT; ALBERT sharing one layer six times), MPNet's bucket count,
# RoBERTa's padding index (positions count from it).
_ENCODER_EXTRAS: dict[str, dict[str, Any]] = {
    "bert": {},
    "distilbert": {},
    "electra": {"embedding_size": 4},
    "albert": {"embedding_size": 4, "num_layers": 6},
    "mpnet": {"relative_attention_num_buckets": 16},
    "roberta": {"pad_token_id": 3},
}
#: Families whose encoder class the encoder tests build directly.
ENCODER_FAMILIES = tuple(_ENCODER_EXTRAS)


def tiny_encoder(family: str, **overrides: Any) -> Any:
    """Family ``family``'s Keras encoder at a tiny size (random weights)."""
    from models.family import FAMILIES

    arguments: dict[str, Any] = {
        "vocab_size": 10,
        "hidden_size": 8,
        "num_layers": 1,
        "num_heads": 2,
        "intermediate_size": 8,
        **_ENCODER_EXTRAS[family],
        **overrides,
    }
    return FAMILIES[family].encoder_class(**arguments)
