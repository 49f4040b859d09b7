"""``SubBatches``: a batch run as parallel parts answers every row exactly as one call would."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from serving.sub_batches import SubBatches, balanced_parts, row_costs


def test_parts_hold_every_row_once_and_balance_the_bytes() -> None:
    lengths = np.array([400, 10, 10, 10, 10, 200, 190, 5, 5, 300])
    groups = balanced_parts(lengths, 2)
    rows = np.sort(np.concatenate(groups))
    assert list(rows) == list(range(len(lengths)))
    totals = sorted(int(lengths[g].sum()) for g in groups)
    assert totals == [550, 590]  # longest first, each onto the cheaper part
    assert all(list(g) == sorted(g) for g in groups)


def test_row_costs_are_the_bytes_of_the_string_inputs() -> None:
    texts = np.array([b"abc", b"", "é".encode()], dtype=object)
    assert list(row_costs({"text": texts})) == [4, 1, 3]
    assert list(row_costs({"ids": np.zeros((3, 5), np.int32)})) == [1, 1, 1]


def echo_with_thread_names(names: set[str]) -> object:
    def call(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names.add(threading.current_thread().name)
        texts = part["text"]
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        return {"echo": texts.copy(), "vector": np.stack([lengths, -lengths], axis=1)}

    return call


@pytest.mark.parametrize("rows", [2, 3, 7, 32])
def test_split_answers_equal_one_call_row_for_row(rows: int) -> None:
    texts = np.array([b"t%d" % i + b"x" * (i * 7 % 23) for i in range(rows)], dtype=object)
    parts = SubBatches(parts=2)
    try:
        names: set[str] = set()
        call = echo_with_thread_names(names)
        whole = call({"text": texts})  # type: ignore[operator]
        names.clear()
        split = parts.run(call, {"text": texts}, splittable=True)  # type: ignore[arg-type]
        assert list(split["echo"]) == list(whole["echo"])
        np.testing.assert_array_equal(split["vector"], whole["vector"])
        assert len(names) == 2  # two parts ran on two threads
    finally:
        parts.close()


def test_unsplittable_single_row_and_one_part_run_as_one_call() -> None:
    texts = np.array([b"a", b"bb", b"ccc"], dtype=object)
    calls: list[int] = []

    def call(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(len(part["text"]))
        return {"echo": part["text"]}

    two, one = SubBatches(parts=2), SubBatches(parts=1)
    try:
        two.run(call, {"text": texts}, splittable=False)
        two.run(call, {"text": texts[:1]}, splittable=True)
        one.run(call, {"text": texts}, splittable=True)
        assert calls == [3, 1, 3]
    finally:
        two.close()
        one.close()


def test_a_failing_part_fails_the_batch() -> None:
    def call(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if b"bad" in list(part["text"]):
            raise ValueError("bad row")
        return {"echo": part["text"]}

    parts = SubBatches(parts=2)
    try:
        with pytest.raises(ValueError, match="bad row"):
            parts.run(
                call, {"text": np.array([b"ok", b"bad", b"fine"], dtype=object)}, splittable=True
            )
    finally:
        parts.close()


def test_for_tensorflow_shares_the_cores_out() -> None:
    # A stand-in for the tensorflow module: its thread pools are per process and fixed once TF
    # has run anything, so this test only records what would be set.
    set_threads: list[int] = []
    tf = SimpleNamespace(
        config=SimpleNamespace(
            threading=SimpleNamespace(set_intra_op_parallelism_threads=set_threads.append)
        )
    )
    cores = len(os.sched_getaffinity(0))
    cases = [({}, 1, cores), ({"intra_op": 2}, 2, max(1, cores // 2))]
    cases.append(({"slots": 2}, 1, max(1, cores // 2)))
    for kwargs, threads, parts in cases:
        sub = SubBatches.for_tensorflow(tf, **kwargs)
        try:
            assert (set_threads[-1], sub.threads, sub.parts) == (threads, threads, parts), kwargs
        finally:
            sub.close()
