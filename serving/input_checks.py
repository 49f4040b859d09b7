"""``InputChecks``: the checks every decoded input passes, whatever the wire format.

Emptiness, rows per request, UTF-8 validity and characters per text: properties of the request,
independent of the model. They run here only: a decoded request is a ``CheckedInputs``, the only
kind of inputs the core accepts, and the core does not repeat them. Checks against the model's
SignatureDef (input names, dtypes, ranks, shapes) are ``serving.served_signature``'s.

Example::

    checks = InputChecks(Limits())
    inputs = checks.check_inputs({"text": np.array([b"hello"], dtype=object)})
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from clients.tensor_dtypes import NUMPY_DTYPES
from serving.core_api import CheckedInputs
from serving.errors import Code, ServingError
from serving.limits import Limits

# A tensor of higher rank is not a real request: numpy itself stops at 64 dims.
MAX_RANK = 32
# The dtypes the server decodes from the wire: every DataType numpy holds but complex ones.
SERVED_DTYPES: Mapping[int, np.dtype] = {
    datatype: dtype for datatype, dtype in NUMPY_DTYPES.items() if dtype.kind != "c"
}


def invalid(message: str) -> ServingError:
    """INVALID_ARGUMENT: a request no retry can fix."""
    return ServingError(Code.INVALID_ARGUMENT, message)


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


class InputChecks:
    """Enforces ``Limits`` on decoded inputs; ``strings_are_text=False`` serves binary strings."""

    def __init__(self, limits: Limits | None = None, *, strings_are_text: bool = True) -> None:
        self.limits = limits or Limits()
        # String tensors are text (UTF-8 and length checked); off to serve binary strings.
        self.strings_are_text = strings_are_text

    def check_inputs(
        self, arrays: Mapping[str, np.ndarray], *, texts_checked: Collection[str] = ()
    ) -> CheckedInputs:
        """``check_input`` on every input: how decoded arrays become a request's inputs.

        ``texts_checked``: inputs whose strings the decoder already knows to be valid UTF-8
        within ``max_text_chars`` (they were JSON strings), so they are not decoded again.
        """
        return CheckedInputs(
            {
                name: self.check_input(name, array, text_checked=name in texts_checked)
                for name, array in arrays.items()
            }
        )

    def too_long(self, name: str, index: int, chars: int) -> ServingError:
        return invalid(
            f"input '{name}' element {index} has {chars} characters; "
            f"the limit is {self.limits.max_text_chars}"
        )

    def check_input(
        self, name: str, array: np.ndarray, *, text_checked: bool = False
    ) -> np.ndarray:
        """The checks every decoded input passes, whatever the wire format; returns ``array``.

        The server's only check of emptiness, rows per request, UTF-8 and text length.
        """
        if array.size == 0:
            raise invalid(
                f"input '{name}' is empty (shape {shape_text(array.shape)}): "
                "empty tensors are not served"
            )
        max_rows = self.limits.max_rows_per_request
        if array.ndim >= 1 and array.shape[0] > max_rows:
            raise invalid(
                f"input '{name}' has {array.shape[0]} rows; the limit is {max_rows} "
                "per request (split the request)"
            )
        if array.dtype == object and self.strings_are_text and not text_checked:
            limit = self.limits.max_text_chars
            for index, value in enumerate(array.flat):
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise invalid(
                        f"input '{name}' element {index} is not valid UTF-8 text "
                        f"(byte {exc.start}: {exc.reason})"
                    ) from exc
                # len(bytes) >= len(chars): only count characters when the bytes could exceed.
                if len(value) > limit and len(text) > limit:
                    raise self.too_long(name, index, len(text))
        return array
