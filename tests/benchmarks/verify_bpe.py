"""Byte-level BPE (RoBERTa-style) in-graph tokenizer: parity and speed (a script, not a test).

    python tests/benchmarks/verify_bpe.py [--random-texts 20000] [--repeats 5]

Trains a byte-level BPE on the vendored STS-B sentences (11 languages) and saves it as a
RoBERTa checkpoint's tokenizer (tests/support/byte_level_bpe_checkpoint.py), then prints:
the time to build the in-graph tokenizer from the reference; parity of the padded encoder
inputs (ids and mask) with the reference (``AutoTokenizer``) on seeded random texts over all
of Unicode, single and paired, and on all STS-B sentences; parity of the offsets on the random
texts; and the speed of the in-graph tokenizer (inside a tf.function) next to the
reference's on stsb-en-test.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import transformers  # noqa: E402

from models import contract  # noqa: E402
from models.tokenizers.bpe.byte_level_bpe_tokenizer import ByteLevelBpeTokenizer  # noqa: E402
from tests.support.byte_level_bpe_checkpoint import (  # noqa: E402
    random_unicode_texts,
    stsb_sentences,
    write_roberta_checkpoint,
)
from tests.support.data import STSB_EN  # noqa: E402

MAX_SEQ_LENGTH = 128
CHUNK = 4096


def _timed(function: Callable[[], object], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _matching_rows(
    call: Callable[..., dict[str, tf.Tensor]],
    reference: object,
    texts: list[str],
    pairs: list[str] | None,
) -> int:
    """Rows whose ids and mask equal the reference's (padding="longest", truncation)."""
    matching = 0
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        pair_chunk = None if pairs is None else pairs[start : start + CHUNK]
        args = [tf.constant(chunk)] + ([] if pair_chunk is None else [tf.constant(pair_chunk)])
        ours = call(*args)
        theirs = reference(  # type: ignore[operator]
            chunk, pair_chunk, truncation=True, max_length=MAX_SEQ_LENGTH, padding="longest"
        )
        want_ids = np.array(theirs["input_ids"])
        width = want_ids.shape[1]
        same = (ours[contract.INPUT_WORD_IDS].numpy()[:, :width] == want_ids).all(axis=1)
        same &= (
            ours[contract.INPUT_MASK].numpy()[:, :width] == np.array(theirs["attention_mask"])
        ).all(axis=1)
        matching += int(same.sum())
    return matching


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random-texts", type=int, default=20_000, help="seeded random texts")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is shown")
    args = parser.parse_args()

    checkpoint = write_roberta_checkpoint(Path(tempfile.mkdtemp(prefix="verify-bpe-")))
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(checkpoint))
    start = time.perf_counter()
    tokenizer = ByteLevelBpeTokenizer.from_checkpoint(
        checkpoint, max_seq_length=MAX_SEQ_LENGTH, pad_to_longest=True
    )
    seconds = time.perf_counter() - start
    print(f"build from the reference: {seconds:.1f} s (vocabulary {len(reference)})")

    single = tf.function(tokenizer.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
    paired = tf.function(
        tokenizer.__call__,
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)],
    )
    texts = random_unicode_texts(args.random_texts, seed=20_000)
    pairs = random_unicode_texts(args.random_texts, seed=20_001)
    sentences = list(stsb_sentences())
    for name, call, first, second in [
        ("random Unicode, single", single, texts, None),
        ("random Unicode, pairs", paired, texts, pairs),
        ("STS-B 11 languages, single", single, sentences, None),
        ("STS-B 11 languages, pairs", paired, sentences[0::2], sentences[1::2]),
    ]:
        matching = _matching_rows(call, reference, first, second)
        print(f"parity {name}: {matching}/{len(first)} ({100 * matching / len(first):.2f}%)")

    offsets = tf.function(
        tokenizer.tokenize_with_offsets, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    matching = 0
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        _, starts, ends = offsets(tf.constant(chunk))
        want = reference(chunk, add_special_tokens=False, return_offsets_mapping=True)
        for got_starts, got_ends, spans in zip(
            starts.to_list(), ends.to_list(), want["offset_mapping"], strict=True
        ):
            matching += list(zip(got_starts, got_ends, strict=True)) == [tuple(s) for s in spans]
    print(f"offsets random Unicode: {matching}/{len(texts)} ({100 * matching / len(texts):.2f}%)")

    with STSB_EN.open(newline="", encoding="utf-8") as handle:
        english = [text for row in csv.reader(handle) for text in row[:2]]
    tokenize = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    for batch_size in (32, len(english)):
        batches = [english[i : i + batch_size] for i in range(0, len(english), batch_size)]
        constants = [tf.constant(batch) for batch in batches]
        tokenize(constants[0])  # trace
        ours = _timed(lambda c=constants: [tokenize(batch) for batch in c], args.repeats)
        theirs = _timed(
            lambda b=batches: [reference(batch, add_special_tokens=False) for batch in b],
            args.repeats,
        )
        print(
            f"stsb-en-test {len(english)} sentences, batches of {batch_size}: in-graph "
            f"{len(english) / ours:,.0f}/s, reference {len(english) / theirs:,.0f}/s"
        )


if __name__ == "__main__":
    main()
