"""How much padding the batcher's length grouping saves (a script, not a test).

    python tests/benchmarks/bench_length_grouping.py [--batches 400]

Replays a queue of single-text requests drawn from tests/data/stsb/stsb-en-test.csv: the
batcher takes a batch, the queue refills to its depth, again. For each policy, prints the
padded tokens per real token (the model pads each batch to its longest text; real token counts
from the bundled model's reference tokenizer) and the mean rows per batch:

- arrival order (``--length_grouping=false``);
- fixed byte-length buckets 64/128/256/512/1024 (the scheme before the planner);
- the planner the server runs (``serving.batcher._plan_batch``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import transformers  # noqa: E402

from models.bundled import bundled_checkpoint  # noqa: E402
from serving.batcher import _Item, _plan_batch  # noqa: E402

_BUCKET_BYTES = (64, 128, 256, 512, 1024)
Policy = Callable[[list[_Item], int], list[_Item]]


def _bucket(length: int) -> int:
    return next((i for i, limit in enumerate(_BUCKET_BYTES) if length <= limit), 5)


def arrival(queue: list[_Item], rows: int) -> list[_Item]:
    return queue[:rows]


def buckets(queue: list[_Item], rows: int) -> list[_Item]:
    head = queue[0]
    b0 = _bucket(head.length)
    same_or_shorter = [it for it in queue if _bucket(it.length) <= b0]
    order = sorted(same_or_shorter, key=lambda it: (it is not head, b0 - _bucket(it.length)))
    return order[:rows]


def planned(queue: list[_Item], rows: int) -> list[_Item]:
    return _plan_batch(queue, queue[0], rows, 4096)[:rows]


def replay(policy: Policy, tokens: list[int], texts: list[str], depth: int, rows: int, n: int):  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()
    rng = random.Random(0)
    queue: list[_Item] = []
    seq = real = padded = taken = 0
    for _ in range(n):
        while len(queue) < depth:
            i = rng.randrange(len(texts))
            future = loop.create_future()
            queue.append(_Item({"i": i}, 1, len(texts[i].encode()), 1e12, seq, future, False))  # type: ignore[dict-item]
            seq += 1
        batch = policy(queue, rows)
        chosen = {id(it) for it in batch}
        queue = [it for it in queue if id(it) not in chosen]
        counts = [tokens[it.inputs["i"]] for it in batch]  # type: ignore[index]
        real += sum(counts)
        padded += max(counts) * len(counts)
        taken += len(counts)
    loop.close()
    return padded / real, taken / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batches", type=int, default=400)
    args = p.parse_args()
    path = (REPO / "tests/data/stsb/stsb-en-test.csv").resolve()
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))  # sentence1,sentence2,score; no header row
    texts = [r[0] for r in rows] + [r[1] for r in rows]
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(bundled_checkpoint()))
    tokens = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    print(f"{len(texts)} STS-B sentences, {sum(tokens) / len(tokens):.1f} tokens on average")
    print("| max_batch_size | queued | arrival order | length buckets | planned |")
    print("| --- | --- | --- | --- | --- |")
    for max_rows in (16, 32, 64):
        for depth in (32, 128):
            cells = []
            for policy in (arrival, buckets, planned):
                ratio, mean_rows = replay(policy, tokens, texts, depth, max_rows, args.batches)
                cells.append(f"{ratio:.2f} ({mean_rows:.0f} rows)")
            print(f"| {max_rows} | {depth} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
