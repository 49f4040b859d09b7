"""``SubBatches``: one batch run as several single-threaded parts in parallel, one per core.

Why: on CPU, TensorFlow spreads each op of one call over its intra-op threads, and an encoder
call is ~1,000 small ops (the packed encoder, MiniLM): the threads spend much of each op
starting and joining. Measured on the 2-core machine (all-MiniLM-L6-v2, stsb-en-test, batches
of 32): one call with TF's default threads ran 484 sentences/s in file order on 1.68 cores;
one call per thread with ``intra_op_parallelism=1`` ran 370/s on 1.0 core; two such calls in
parallel, each on half of the batch, ran 639/s on 1.86 cores (length-sorted: 527, 400, 721). A
lone text is faster single-threaded too (batch-1 p50 8.6 ms vs 11.2 ms).

So the worker runs TensorFlow with one intra-op thread and splits every batch into up to
``parts`` sub-batches of about equal cost (a row's cost: its text's bytes), runs them at once on
a thread pool and puts the rows of the answers back in the batch's order. Only a batch whose
outputs all have fixed trailing dimensions is split (embeddings, logits): a per-token output is
padded to the longest text of its call, and two calls would pad differently.

Example::

    parts = SubBatches(parts=2)
    outputs = parts.run(call, {"text": texts}, splittable=True)
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

Arrays = Mapping[str, np.ndarray]
Call = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def row_costs(inputs: Arrays) -> np.ndarray:
    """Per row, what it costs the encoder: the bytes of its string inputs (tokens grow with
    them), or 1 per row for inputs without strings."""
    rows = len(next(iter(inputs.values())))
    costs = np.ones(rows, dtype=np.int64)
    for array in inputs.values():
        if array.dtype.kind in "OSU" and array.ndim >= 1:
            per_row = np.array(
                [sum(len(v) for v in np.ravel(row)) for row in array], dtype=np.int64
            )
            costs += per_row
    return costs


def balanced_parts(costs: np.ndarray, parts: int) -> list[np.ndarray]:
    """Row indices of up to ``parts`` groups of about equal total cost (longest rows first,
    each to the cheapest group so far), each group in ascending row order."""
    parts = max(1, min(parts, len(costs)))
    groups: list[list[int]] = [[] for _ in range(parts)]
    load = [(0, g) for g in range(parts)]
    for row in np.argsort(-costs, kind="stable"):
        total, g = heapq.heappop(load)
        groups[g].append(int(row))
        heapq.heappush(load, (total + int(costs[row]), g))
    return [np.sort(np.array(g, dtype=np.int64)) for g in groups if g]


class SubBatches:
    """Runs a batch as up to ``parts`` sub-batches in parallel (``parts=1``: as one call)."""

    @classmethod
    def for_tensorflow(cls, tf: Any, *, intra_op: int = 0, slots: int = 1) -> SubBatches:
        """Sets TensorFlow's intra-op threads (before TF runs anything) and shares the cores
        out: ``intra_op`` 0 (``--tensorflow_intra_op_parallelism`` unset) -> one thread per
        part; N -> N threads per part; ``slots`` batches in flight (``num_batch_threads``)
        -> cores // (threads x slots) parts each. What the worker and the benches run."""
        threads = intra_op if intra_op > 0 else 1
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        cores = len(os.sched_getaffinity(0))
        return cls(parts=max(1, cores // (threads * max(1, slots))), threads=threads)

    def __init__(self, *, parts: int, threads: int = 1) -> None:
        self.parts = max(1, parts)
        self.threads = threads  # intra-op threads of each part's call (0: TF's default)
        self._pool = (
            ThreadPoolExecutor(max_workers=self.parts, thread_name_prefix="part")
            if self.parts > 1
            else None
        )

    def run(
        self, call: Call, inputs: dict[str, np.ndarray], *, splittable: bool
    ) -> dict[str, np.ndarray]:
        """``call(inputs)`` for the whole batch, or for its parts with the rows put back."""
        rows = len(next(iter(inputs.values()))) if inputs else 0
        if self._pool is None or not splittable or rows < 2:
            return call(inputs)
        groups = balanced_parts(row_costs(inputs), self.parts)
        if len(groups) == 1:
            return call(inputs)
        futures = [
            self._pool.submit(call, {name: array[g] for name, array in inputs.items()})
            for g in groups[1:]
        ]
        # The first part runs on the calling thread: one thread hop less.
        answers = [call({name: array[groups[0]] for name, array in inputs.items()})]
        answers += [f.result() for f in futures]
        merged: dict[str, np.ndarray] = {}
        for name, first in answers[0].items():
            out = np.empty((rows, *first.shape[1:]), dtype=first.dtype)
            for g, answer in zip(groups, answers, strict=True):
                out[g] = answer[name]
            merged[name] = out
        return merged

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
