"""SignatureRunner (the worker's TF Session per version) answers exactly what the SavedModel's
own signature functions answer, tells splittable signatures apart, and runs concurrent calls
(the worker's sub-batches) without mixing them up."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)

from models import contract
from serving.signature_runner import SignatureRunner

TEXTS = [
    "A man is playing a harp.",
    "",
    "Straße İstanbul café 東京 ☃",
    "a much longer sentence, with punctuation; and numbers 12345 " * 4,
]
PAIRS = ["second segment", "x", "", "pair"]


@pytest.fixture(scope="module")
def runner(exported_minilm: Path) -> Iterator[SignatureRunner]:
    loaded = SignatureRunner.load(tf, str(exported_minilm / "1"), intra_op=1, inter_op=0)
    yield loaded
    loaded.close()


def _strings(values: list[str]) -> np.ndarray:
    return np.array([v.encode() for v in values], dtype=object)


def test_every_signature_answers_as_the_saved_model_function(
    runner: SignatureRunner, exported_minilm: Path
) -> None:
    functions = tf.saved_model.load(str(exported_minilm / "1")).signatures
    text, pair = _strings(TEXTS), _strings(PAIRS)
    cases = {
        contract.SERVING_DEFAULT: {contract.TEXT: text},
        contract.SERVING_PAIR: {contract.TEXT: text, contract.TEXT_PAIR: pair},
        contract.PREPROCESS: {contract.TEXT: text},
    }
    cases[contract.ENCODE] = runner.run(contract.PREPROCESS, {contract.TEXT: text})
    for name, inputs in cases.items():
        ours = runner.run(name, inputs)
        theirs = functions[name](**{k: tf.constant(v) for k, v in inputs.items()})
        assert sorted(ours) == sorted(theirs), name
        for key, value in theirs.items():
            np.testing.assert_array_equal(ours[key], value.numpy(), err_msg=f"{name}/{key}")


def test_only_outputs_with_fixed_trailing_dims_are_splittable(runner: SignatureRunner) -> None:
    assert runner.splittable(contract.SERVING_DEFAULT)  # embedding [batch, 384]
    assert runner.splittable(contract.SERVING_PAIR)
    assert not runner.splittable(contract.ENCODE)  # sequence_output [batch, seq, 384]
    assert not runner.splittable(contract.PREPROCESS)  # padded to the longest text of a call
    assert "__saved_model_init_op" not in runner  # the loader runs it; never a request


def test_concurrent_runs_each_get_their_own_answer(runner: SignatureRunner) -> None:
    batches = [_strings(TEXTS[i:] + TEXTS[:i]) for i in range(len(TEXTS))] * 3
    expected = [runner.run(contract.SERVING_DEFAULT, {contract.TEXT: b}) for b in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(
            pool.map(lambda b: runner.run(contract.SERVING_DEFAULT, {contract.TEXT: b}), batches)
        )
    for got, want in zip(answers, expected, strict=True):
        np.testing.assert_array_equal(got[contract.EMBEDDING], want[contract.EMBEDDING])


def test_unknown_signature_or_input_and_bad_shapes_raise(runner: SignatureRunner) -> None:
    with pytest.raises(KeyError):
        runner.run("no_such_signature", {contract.TEXT: _strings(["x"])})
    with pytest.raises(KeyError):
        runner.run(contract.SERVING_DEFAULT, {"no_such_input": _strings(["x"])})
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        runner.run(contract.SERVING_DEFAULT, {contract.TEXT: np.array([[b"x"]], dtype=object)})
