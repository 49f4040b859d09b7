"""In-graph Unigram tokenizer parity and speed against the reference (a script, not a test).

    python tests/benchmarks/verify_unigram.py [--texts 20000] [--repeats 5]

Trains the test checkpoints (sentencepiece on STS-B: XLM-R, ALBERT, multilingual-MiniLM in
the released tokenizer.json form), then prints for each: token-id parity with the reference
(Hugging Face fast tokenizer) on ``--texts`` seeded random Unicode texts, alone (tokenize) and
as pairs (packed with specials, max_seq_length 128); offsets parity (ids and code-point spans
of ``tokenize_with_offsets`` equal to the reference's ``offset_mapping``) on the random texts
and on every STS-B sentence of the 11 languages; and the time to tokenize stsb-en-test
(2,758 sentences, batches of 32 and one batch) inside a tf.function next to the reference.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tensorflow as tf  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from models import contract  # noqa: E402
from models.tokenizers.unigram.unigram_tokenizer import UnigramTokenizer  # noqa: E402
from tests.models.tokenizers.unigram import unigram_checkpoints  # noqa: E402

MAX_SEQ_LENGTH = 128
BATCH = 512


def _timed(function: Callable[[], object], repeats: int) -> float:
    return statistics.median(timeit.repeat(function, number=1, repeat=repeats))


def _parity(tokenizer: UnigramTokenizer, reference: object, texts: list[str]) -> tuple[int, int]:
    """(texts equal alone, pairs equal packed) out of len(texts) each."""
    tokenize = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    call = tf.function(tokenizer.__call__, input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    seconds = texts[1:] + texts[:1]
    single = pairs = 0
    for start in range(0, len(texts), BATCH):
        first, second = texts[start : start + BATCH], seconds[start : start + BATCH]
        want = reference(first, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        got = tokenize(tf.constant(first)).to_list()
        single += sum(g == w for g, w in zip(got, want, strict=True))
        packed = call(tf.constant(first), tf.constant(second))
        want_pairs = reference(  # type: ignore[operator]
            first, second, truncation=True, max_length=MAX_SEQ_LENGTH
        )
        ids = packed[contract.INPUT_WORD_IDS].numpy()
        lengths = packed[contract.INPUT_MASK].numpy().sum(axis=1)
        pairs += sum(
            ids[row, : lengths[row]].tolist() == expected
            for row, expected in enumerate(want_pairs["input_ids"])
        )
    return single, pairs


def _offsets_parity(tokenizer: UnigramTokenizer, reference: object, texts: list[str]) -> int:
    """How many texts have the reference's ids AND offset_mapping (code points)."""
    spans = tf.function(
        tokenizer.tokenize_with_offsets, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    equal = 0
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        want = reference(  # type: ignore[operator]
            batch, add_special_tokens=False, return_offsets_mapping=True
        )
        ids, starts, ends = (values.to_list() for values in spans(tf.constant(batch)))
        for row in range(len(batch)):
            got = (ids[row], list(zip(starts[row], ends[row], strict=True)))
            expected = (
                want["input_ids"][row],
                [tuple(span) for span in want["offset_mapping"][row]],
            )
            equal += got == expected
    return equal


def _run_graph(call: Callable[[tf.Tensor], object], tensors: list[tf.Tensor]) -> None:
    for batch in tensors:
        call(batch)


def _run_reference(reference: Callable[..., object], batches: list[list[str]]) -> None:
    for batch in batches:
        reference(batch, truncation=True, max_length=MAX_SEQ_LENGTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=20_000, help="random Unicode texts")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is shown")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="verify-unigram-"))
    xlmr = unigram_checkpoints.xlmr_checkpoint(root / "xlmr")
    checkpoints = {
        "xlmr": xlmr,
        "albert": unigram_checkpoints.albert_checkpoint(root / "albert"),
        "multilingual-minilm (released tokenizer.json)": (
            unigram_checkpoints.multilingual_minilm_checkpoint(root / "legacy", xlmr, verbatim=True)
        ),
    }
    texts = unigram_checkpoints.random_texts(args.texts, seed=20261203)
    english = unigram_checkpoints.stsb_sentences("stsb-en-test.csv")
    stsb = unigram_checkpoints.stsb_sentences()
    print(f"{len(texts):,} random Unicode texts (pairs: each with the next); stsb-en-test "
          f"{len(english):,} sentences; median of {args.repeats} runs")  # fmt: skip
    for name, path in checkpoints.items():
        reference = AutoTokenizer.from_pretrained(path)
        start = time.perf_counter()
        tokenizer = UnigramTokenizer.from_checkpoint(path, max_seq_length=MAX_SEQ_LENGTH)
        built = time.perf_counter() - start
        single, pairs = _parity(tokenizer, reference, texts)
        print(f"\n{name}: built in {built:.1f} s, {len(tokenizer.vocab):,} pieces")
        print(f"  parity alone  {single:,}/{len(texts):,} ({100 * single / len(texts):.2f}%)")
        print(f"  parity paired {pairs:,}/{len(texts):,} ({100 * pairs / len(texts):.2f}%)")
        for corpus, corpus_texts in (("random", texts), ("stsb 11 languages", stsb)):
            spans = _offsets_parity(tokenizer, reference, corpus_texts)
            print(
                f"  offsets parity ({corpus}) {spans:,}/{len(corpus_texts):,} "
                f"({100 * spans / len(corpus_texts):.2f}%)"
            )
        call = tf.function(tokenizer.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
        for size in (32, len(english)):
            batches = [english[i : i + size] for i in range(0, len(english), size)]
            tensors = [tf.constant(batch) for batch in batches]
            call(tensors[0])
            ours = _timed(functools.partial(_run_graph, call, tensors), args.repeats)
            theirs = _timed(functools.partial(_run_reference, reference, batches), args.repeats)
            print(
                f"  stsb-en batch {size:>5}: in-graph {len(english) / ours:,.0f} sentences/s, "
                f"reference {len(english) / theirs:,.0f} sentences/s"
            )


if __name__ == "__main__":
    main()
