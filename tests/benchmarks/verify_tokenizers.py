"""Token parity and speed of every in-graph tokenizer against its reference (a script).

    python tests/benchmarks/verify_tokenizers.py [--random 20000] [--only NAME ...]

For each entry of :data:`LAYOUTS` (algorithm x layout; each builds its checkpoint offline)
prints the share of rows whose ids, mask and type ids equal the reference's
(``AutoTokenizer.from_pretrained``, ``truncation=True``):

- every STS-B sentence (11 languages, 30,338) and every pair (15,169) at max length 128;
- the probe corpus (models/probe_texts.py) and its neighbour pairs at max lengths 128 and 16;
- ``--random`` texts over all of Unicode (with the tokenizer's special tokens sprinkled in),
  single and as neighbour pairs;
- offsets (``tokenize_with_offsets``, where the tokenizer has it) against ``offset_mapping`` on
  the probe corpus and every STS-B sentence;

then the in-graph tokenizer's speed (inside a ``tf.function``) next to the reference's on
stsb-en-test (2,758 sentences) in batches of 32 and in one batch.

Adding a tokenizer is one entry in LAYOUTS: ``Layout(algorithm, name, build)`` where ``build``
writes (or returns) a checkpoint directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import transformers  # noqa: E402

from models import contract  # noqa: E402
from models.bundled import bundled_checkpoint  # noqa: E402
from models.tokenizers import text_tokenizer_from_checkpoint  # noqa: E402
from tests.models.tokenizers.corpora import (  # noqa: E402
    neighbour_pairs,
    probe_texts,
    random_texts,
    stsb_pairs,
)
from tests.models.tokenizers.unigram import unigram_checkpoints  # noqa: E402
from tests.support.byte_level_bpe_checkpoint import write_roberta_checkpoint  # noqa: E402
from tests.support.data import STSB_EN  # noqa: E402
from tests.support.wordpiece_checkpoint import write_wordpiece_checkpoint  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Layout:
    algorithm: str
    name: str
    build: Callable[[Path], Path]  # an empty directory -> the checkpoint directory


LAYOUTS = [
    Layout("WordPiece", "bert (bundled MiniLM)", lambda _: bundled_checkpoint()),
    Layout("WordPiece", "mpnet", lambda d: write_wordpiece_checkpoint(d, layout="mpnet")),
    Layout("WordPiece", "distilbert", lambda d: write_wordpiece_checkpoint(d, layout="distilbert")),
    Layout("WordPiece", "sequence", lambda d: write_wordpiece_checkpoint(d, layout="sequence")),
    Layout(
        "WordPiece",
        "no-normalizer",
        lambda d: write_wordpiece_checkpoint(d, layout="no-normalizer"),
    ),  # noqa: E501
    Layout("BPE", "roberta (byte-level)", lambda d: write_roberta_checkpoint(d, vocab_size=8000)),
    Layout("Unigram", "xlm-roberta", lambda d: unigram_checkpoints.xlmr_checkpoint(d)),
    Layout("Unigram", "albert", lambda d: unigram_checkpoints.albert_checkpoint(d)),
]

_CHUNK = 2048  # rows per call: bounds the padded arrays of long random texts


def row_parity(
    tokenizer: Any,
    reference: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    max_length: int,
) -> tuple[int, int, str]:
    """(rows equal to the reference, rows, first differing text)."""
    same, first_bad = 0, ""
    for start in range(0, len(texts), _CHUNK):
        batch = list(texts[start : start + _CHUNK])
        second = None if pairs is None else list(pairs[start : start + _CHUNK])
        feed = [tf.constant(batch)] + ([] if second is None else [tf.constant(second)])
        ours = tokenizer(*feed)
        theirs = reference(batch, second, truncation=True, max_length=max_length, padding=True)
        ids = np.array(theirs["input_ids"], np.int32)
        types = np.array(theirs.get("token_type_ids", np.zeros_like(ids)), np.int32)
        equal = np.ones(len(batch), bool)
        for key, want in (
            (contract.INPUT_WORD_IDS, ids),
            (contract.INPUT_MASK, np.array(theirs["attention_mask"], np.int32)),
            (contract.INPUT_TYPE_IDS, types),
        ):
            # Both pad to the longest row, so the shapes agree whenever every row does.
            got = ours[key].numpy()
            equal &= (got == want).all(axis=1) if got.shape == want.shape else False
        same += int(equal.sum())
        if not first_bad and not equal.all():
            row = int(np.flatnonzero(~equal)[0])
            first_bad = batch[row] + ("" if second is None else f" ||| {second[row]}")
    return same, len(texts), first_bad


def offset_parity(tokenizer: Any, reference: Any, texts: Sequence[str]) -> tuple[int, int, str]:
    same, first_bad = 0, ""
    for start in range(0, len(texts), _CHUNK):
        batch = list(texts[start : start + _CHUNK])
        ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(batch))
        theirs = reference(batch, add_special_tokens=False, return_offsets_mapping=True)
        rows = zip(ids.to_list(), starts.to_list(), ends.to_list(), strict=True)
        for row, (our_ids, our_starts, our_ends) in enumerate(rows):
            spans = list(zip(our_starts, our_ends, strict=True))
            want = [tuple(span) for span in theirs["offset_mapping"][row]]
            if our_ids == theirs["input_ids"][row] and spans == want:
                same += 1
            elif not first_bad:
                first_bad = batch[row]
    return same, len(texts), first_bad


def _line(label: str, result: tuple[int, int, str]) -> str:
    same, total, bad = result
    share = 100.0 * same / total if total else 100.0
    note = f"   first difference: {bad[:80]!r}" if bad else ""
    return f"  {label:<34} {share:8.3f}%  ({same:,} / {total:,}){note}"


def _speed(tokenizer: Any, reference: Any, texts: list[str], batch_size: int) -> str:
    graph = tf.function(tokenizer.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    tensors = [tf.constant(batch) for batch in batches]
    graph(tensors[0])  # trace once

    def best(function: Callable[[], object]) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return min(times)

    ours = best(lambda: [graph(batch) for batch in tensors])
    theirs = best(lambda: [reference(b, truncation=True, max_length=128) for b in batches])
    return (
        f"  speed, batches of {batch_size:<5}  in-graph {len(texts) / ours:9.0f} sentences/s"
        f"   reference {len(texts) / theirs:9.0f} sentences/s"
    )


def verify(layout: Layout, *, random_count: int) -> None:
    directory = layout.build(Path(tempfile.mkdtemp(prefix="verify-tokenizers-")))
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(directory))
    started = time.perf_counter()
    tokenizer = text_tokenizer_from_checkpoint(directory, max_seq_length=128, pad_to_longest=True)
    built = time.perf_counter() - started
    short = text_tokenizer_from_checkpoint(directory, max_seq_length=16, pad_to_longest=True)
    print(f"{layout.algorithm} / {layout.name}: {type(tokenizer).__name__}, built in {built:.1f} s")
    print(f"  layout {tokenizer.template.describe()}")

    pairs = stsb_pairs()
    sentences = [text for pair in pairs for text in pair]
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    probe = probe_texts()
    specials = [
        token for token in (reference.mask_token, reference.sep_token, reference.cls_token) if token
    ]
    randoms = random_texts(random_count, seed=20261203, specials=specials)
    print(_line("STS-B sentences", row_parity(tokenizer, reference, sentences, max_length=128)))
    print(_line("STS-B pairs", row_parity(tokenizer, reference, firsts, seconds, max_length=128)))
    for length, tok in ((128, tokenizer), (16, short)):
        print(_line(f"probe, max {length}", row_parity(tok, reference, probe, max_length=length)))
        print(
            _line(
                f"probe pairs, max {length}",
                row_parity(tok, reference, *neighbour_pairs(probe), max_length=length),
            )
        )
    print(
        _line(
            f"random x{random_count:,}", row_parity(tokenizer, reference, randoms, max_length=128)
        )
    )  # noqa: E501
    print(
        _line(
            f"random pairs x{random_count:,}",
            row_parity(tokenizer, reference, *neighbour_pairs(randoms), max_length=128),
        )
    )
    if hasattr(tokenizer, "tokenize_with_offsets"):
        print(
            _line("offsets, probe + STS-B", offset_parity(tokenizer, reference, probe + sentences))
        )  # noqa: E501
        print(_line("offsets, random", offset_parity(tokenizer, reference, randoms)))
    else:
        print("  offsets: not implemented for this tokenizer")
    english = [text for pair in stsb_pairs_of(STSB_EN) for text in pair]
    print(_speed(tokenizer, reference, english, 32))
    print(_speed(tokenizer, reference, english, len(english)))
    sys.stdout.flush()


def stsb_pairs_of(path: Path) -> list[tuple[str, str]]:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return [(row[0], row[1]) for row in csv.reader(handle)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random", type=int, default=20_000, help="random texts (and pairs)")
    parser.add_argument("--only", nargs="*", help="layout names to run (default: all)")
    args = parser.parse_args()
    print(
        f"TensorFlow {tf.__version__}, transformers {transformers.__version__}, "
        f"{os.cpu_count()} CPUs"
    )
    for layout in LAYOUTS:
        if args.only and layout.name not in args.only:
            continue
        verify(layout, random_count=args.random)


if __name__ == "__main__":
    main()
