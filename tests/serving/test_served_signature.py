"""ServedSignature.validate: the signature's checks, over inputs the wire checks already passed."""

from __future__ import annotations

import numpy as np
import pytest

from serving.errors import Code, ServingError
from serving.input_checks import InputChecks
from serving.limits import Limits
from serving.served_signature import ServedSignature, ServedTensor

DT_FLOAT, DT_INT32, DT_STRING = 1, 3, 7
PAIR = ServedSignature(
    "serving_pair",
    {
        "text": ServedTensor("text", DT_STRING, (None,)),
        "text_pair": ServedTensor("text_pair", DT_STRING, (None,)),
    },
    {"embedding": ServedTensor("embedding", DT_FLOAT, (None, 4))},
)
CHECKS = InputChecks(Limits(max_rows_per_request=8, max_text_chars=10))


def _strings(*values: bytes) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def test_inputs_that_skipped_the_wire_checks_are_refused() -> None:
    # A plain dict never went through TensorCodec: invalid UTF-8 must not reach TensorFlow.
    raw = {"text": _strings(b"\xff"), "text_pair": _strings(b"b")}
    with pytest.raises(ServingError) as info:
        PAIR.validate(raw, exact_dtypes=True)  # type: ignore[arg-type]
    assert info.value.code is Code.INTERNAL and "InputChecks" in info.value.message


def test_checked_inputs_get_rows_and_the_longest_text_in_bytes() -> None:
    inputs = CHECKS.check_inputs(
        {"text": _strings(b"ab", "日本".encode()), "text_pair": _strings(b"x", b"y")}
    )
    validated = PAIR.validate(inputs, exact_dtypes=True)
    assert validated.rows == 2
    assert validated.text_length == 6  # "日本": 6 UTF-8 bytes
    assert validated.inputs["text"].tolist() == [b"ab", "日本".encode()]


def test_batch_sizes_must_agree_across_inputs() -> None:
    inputs = CHECKS.check_inputs({"text": _strings(b"a", b"b"), "text_pair": _strings(b"x")})
    with pytest.raises(ServingError) as info:
        PAIR.validate(inputs, exact_dtypes=True)
    assert info.value.code is Code.INVALID_ARGUMENT
    assert "'text_pair' has 1 rows but other inputs have 2" in info.value.message


def test_the_wire_checks_run_in_the_codec_alone() -> None:
    # The limits are the codec's: the spec has none of its own to disagree with.
    with pytest.raises(ServingError) as info:
        CHECKS.check_inputs({"text": _strings(*[b"a"] * 9), "text_pair": _strings(*[b"b"] * 9)})
    assert "9 rows; the limit is 8" in info.value.message
    with pytest.raises(ServingError) as info:
        CHECKS.check_inputs({"text": _strings(b"x" * 11)})
    assert "11 characters; the limit is 10" in info.value.message
