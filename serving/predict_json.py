"""``PredictJson``: TF Serving's REST JSON for :predict, both ways, with its checks.

Strict JSON (no NaN/Infinity, valid UTF-8, no lone surrogates) within the nesting limit; row
(``instances``) and columnar (``inputs``) bodies read with the signature's dtypes, as TF
Serving does; ``{"b64": ...}`` strings; ragged arrays refused. Decoded inputs then pass
``InputChecks``. Answers use the request's format; NaN and Infinity as TF Serving writes them.

Example::

    codec = PredictJson(InputChecks(Limits()))
    doc = codec.parse_json(body)
    form = codec.predict_json_form(doc)  # "row" | "columnar"
    inputs = codec.decode_predict_json(doc, {"text": tensor_pb2.DT_STRING})
    answer = codec.encode_predict_json(result.outputs, form)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import orjson

from clients.protos import tensor_pb2
from clients.tensor_dtypes import datatype_name
from serving.core_api import CheckedInputs
from serving.input_checks import MAX_RANK, SERVED_DTYPES, InputChecks, invalid

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[list(b"[{")] = 1
_BRACKET_STEP[list(b"]}")] = -1
# JSON numbers a numeric dtype accepts (numpy dtype kinds after inference).
_JSON_KINDS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}


class PredictJson:
    """Parses :predict bodies into checked inputs and writes the answers."""

    def __init__(self, checks: InputChecks) -> None:
        self.checks = checks
        self.limits = checks.limits

    def parse_json(self, body: bytes) -> Any:
        """Strict JSON (no NaN/Infinity, valid UTF-8, no lone surrogates) within the depth limit."""
        try:
            with _gc_paused():
                doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            pos = exc.pos
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as bad:  # orjson reports these at char 0
                raise invalid(
                    f"JSON body is not valid UTF-8 at byte {bad.start}{_near(body, bad.start)}"
                ) from exc
            token = body[pos : pos + 9].lstrip(b"-")
            for name in ("NaN", "Infinity"):
                if token.startswith(name.encode()):
                    raise invalid(
                        f"JSON body has {name} at char {pos}{_near(body, pos)}: NaN and "
                        "Infinity are not JSON numbers"
                    ) from exc
            raise invalid(f"JSON body is malformed{_near(body, pos)}: {exc}") from exc
        self._check_depth(body)
        return doc

    def _check_depth(self, body: bytes) -> None:
        """Nesting depth of a body orjson accepted, in C-speed passes (no recursion, no regex:
        a regex over a 30 MB string costs seconds of the event loop).

        Strings are cut out (they may hold brackets), everything but brackets is deleted,
        and the running bracket count's maximum is the depth.
        """
        if b"\\" in body:
            # Escapes are 2-byte tokens read left to right: drop escaped backslashes first,
            # then escaped quotes; every quote left delimits a string.
            body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
        outside_strings = b"".join(body.split(b'"')[::2])
        brackets = outside_strings.translate(None, _NOT_BRACKETS)
        if len(brackets) <= 64:  # typical small request: a Python loop beats numpy's overhead
            depth = level = 0
            for byte in brackets:
                level += 1 if byte in b"[{" else -1
                depth = max(depth, level)
        else:
            steps = _BRACKET_STEP[np.frombuffer(brackets, dtype=np.uint8)]
            depth = int(np.cumsum(steps, dtype=np.int32).max())
        if depth > self.limits.max_json_depth:
            raise invalid(
                f"JSON body is nested {depth} levels deep; the limit is "
                f"{self.limits.max_json_depth}"
            )

    def predict_json_form(self, doc: Any) -> str:
        """Checks a parsed :predict body's shape; its format: ``"row"`` (``instances``) or
        ``"columnar"`` (``inputs``). The response uses the same one."""
        if not isinstance(doc, dict):
            raise invalid("JSON body must be an object with 'instances' or 'inputs'")
        if not isinstance(doc.get("signature_name", ""), str):
            raise invalid("'signature_name' must be a string")
        unknown = set(doc) - {"signature_name", "instances", "inputs"}
        if unknown:
            raise invalid(f"unknown field(s) in request: {', '.join(sorted(unknown))}")
        if ("instances" in doc) == ("inputs" in doc):
            raise invalid(
                "request must have exactly one of 'instances' (row format) or 'inputs' "
                "(columnar format)"
            )
        return "row" if "instances" in doc else "columnar"

    def decode_predict_json(self, doc: Any, input_dtypes: Mapping[str, int]) -> CheckedInputs:
        """The inputs of a :predict body that passed ``predict_json_form``.

        ``input_dtypes`` maps the signature's input names to DataType enums: JSON numbers and
        strings are read as the signature says, like TF Serving.
        """
        texts: set[str] = set()  # inputs made of JSON strings alone: UTF-8 and length checked
        if self.predict_json_form(doc) == "row":
            arrays = self._decode_rows(doc["instances"], input_dtypes, texts)
        else:
            arrays = self._decode_columns(doc["inputs"], input_dtypes, texts)
        return self.checks.check_inputs(arrays, texts_checked=texts)

    def _single_input(self, input_dtypes: Mapping[str, int], form: str) -> str:
        if len(input_dtypes) != 1:
            raise invalid(
                f"{form} must name each input (an object keyed by input name): the signature "
                f"has {len(input_dtypes)} inputs ({', '.join(sorted(input_dtypes))})"
            )
        return next(iter(input_dtypes))

    def _decode_rows(
        self, instances: Any, input_dtypes: Mapping[str, int], texts: set[str]
    ) -> dict[str, np.ndarray]:
        if not isinstance(instances, list) or not instances:
            raise invalid("'instances' must be a non-empty list")
        named = [_is_named(row) for row in instances]
        if not any(named):
            name = self._single_input(input_dtypes, "'instances'")
            return {name: self._json_to_array(name, instances, input_dtypes.get(name), texts)}
        if not all(named):
            raise invalid("'instances' mixes objects keyed by input name with bare values")
        keys = set(instances[0])
        for index, row in enumerate(instances):
            if set(row) != keys:
                raise invalid(
                    f"instance {index} has inputs {sorted(row)} but instance 0 has {sorted(keys)}"
                )
        return {
            name: self._json_to_array(
                name, [row[name] for row in instances], input_dtypes.get(name), texts
            )
            for name in instances[0]
        }

    def _decode_columns(
        self, inputs: Any, input_dtypes: Mapping[str, int], texts: set[str]
    ) -> dict[str, np.ndarray]:
        if _is_named(inputs):
            if not inputs:
                raise invalid("'inputs' must name at least one input")
            return {
                name: self._json_to_array(name, value, input_dtypes.get(name), texts)
                for name, value in inputs.items()
            }
        name = self._single_input(input_dtypes, "'inputs'")
        return {name: self._json_to_array(name, inputs, input_dtypes.get(name), texts)}

    def _json_to_array(
        self, name: str, value: Any, dtype: int | None, texts: set[str]
    ) -> np.ndarray:
        """One input's JSON value as an array of the signature's dtype (inferred if unknown);
        ``name`` joins ``texts`` when every element was a JSON string (checked here)."""
        if dtype is None:
            dtype = _infer_datatype(value)
        if dtype not in SERVED_DTYPES:
            raise invalid(f"input '{name}' has dtype {datatype_name(dtype)}, not served over JSON")
        try:
            with _gc_paused():
                if dtype == tensor_pb2.DT_STRING:
                    array, all_text = self._json_strings(name, value)
                    if all_text:
                        texts.add(name)
                else:
                    array = self._json_numbers(name, value, dtype)
        except ValueError as exc:  # numpy on ragged or >32-dim nesting
            raise invalid(f"input '{name}' is ragged or malformed: {exc}") from exc
        if array.ndim > MAX_RANK:
            raise invalid(f"input '{name}' has rank {array.ndim}; the limit is {MAX_RANK}")
        return array

    def _json_strings(self, name: str, value: Any) -> tuple[np.ndarray, bool]:
        """The strings as bytes, and whether all were JSON strings: then they are valid UTF-8
        (orjson rejected invalid bytes and lone surrogates) and their length is checked here,
        where the characters are already counted, so ``InputChecks`` does not decode them
        again."""
        array = np.array(value, dtype=object)
        out = np.empty(array.shape, dtype=object)
        flat_out = out.reshape(-1)
        limit = self.limits.max_text_chars if self.checks.strings_are_text else None
        all_text = True
        for index, item in enumerate(array.flat):
            if isinstance(item, str):
                if limit is not None and len(item) > limit:
                    raise self.checks.too_long(name, index, len(item))
                flat_out[index] = item.encode("utf-8")
            elif isinstance(item, dict) and set(item) == {"b64"} and isinstance(item["b64"], str):
                all_text = False
                try:
                    flat_out[index] = base64.b64decode(item["b64"], validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise invalid(
                        f"input '{name}' element {index} is not valid base64: {exc}"
                    ) from exc
            elif isinstance(item, list):
                raise invalid(f"input '{name}' is ragged: rows of different lengths")
            else:
                raise invalid(
                    f"input '{name}' expects strings (DT_STRING) or {{\"b64\": ...}} objects; "
                    f"element {index} is {_json_type(item)}"
                )
        return out, all_text

    def _json_numbers(self, name: str, value: Any, dtype: int) -> np.ndarray:
        target = SERVED_DTYPES[dtype].newbyteorder("=")
        array = np.asarray(value)
        allowed = _JSON_KINDS[target.kind]
        if array.dtype.kind not in allowed:
            got = (
                "strings or objects" if array.dtype.kind in "OUS" else _KIND_NAME[array.dtype.kind]
            )
            if array.dtype.kind == "O" and any(isinstance(v, list) for v in array.flat):
                raise invalid(f"input '{name}' is ragged: rows of different lengths")
            raise invalid(f"input '{name}' expects {datatype_name(dtype)} values; got {got}")
        if target.kind in "iu" and array.size:
            info = np.iinfo(target)
            if array.min() < info.min or array.max() > info.max:
                raise invalid(f"input '{name}' has values out of range for {datatype_name(dtype)}")
        with np.errstate(over="ignore"):  # overflow is reported below, as an error
            result = array.astype(target)
        if target.kind == "f" and not np.isfinite(result).all():
            raise invalid(f"input '{name}' has values out of range for {datatype_name(dtype)}")
        return result

    def encode_predict_json(self, outputs: Mapping[str, np.ndarray], form: str) -> bytes:
        """A PredictResult's outputs as TF Serving's JSON: ``predictions`` or ``outputs``."""
        names = list(outputs)
        if form == "columnar":
            if len(names) == 1:
                return _dumps({"outputs": _json_ready(names[0], outputs[names[0]])})
            return _dumps({"outputs": {n: _json_ready(n, outputs[n]) for n in names}})
        batch = None
        for n in names:
            array = outputs[n]
            if array.ndim == 0:
                raise invalid(f"output '{n}' is a scalar: use the columnar ('inputs') format")
            if batch is None:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise invalid(
                    f"output '{n}' has batch size {array.shape[0]}, expecting {batch}: "
                    "use the columnar ('inputs') format"
                )
        if len(names) == 1:
            return _dumps({"predictions": _json_ready(names[0], outputs[names[0]])})
        ready = {n: _json_ready(n, outputs[n]) for n in names}
        return _dumps({"predictions": [{n: ready[n][i] for n in names} for i in range(batch or 0)]})


_KIND_NAME = {"b": "booleans", "i": "integers", "u": "integers", "f": "floats", "c": "complex"}


_KEY_BEFORE = re.compile(rb'"([^"\\]{1,200})"\s*:')


def _near(body: bytes, pos: int) -> str:
    """' (in "key")': the last object key before ``pos``, naming the input a bad token is in."""
    keys = _KEY_BEFORE.findall(body, max(0, pos - 65536), pos)
    return f' (in "{keys[-1].decode(errors="replace")}")' if keys else ""


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while building a big JSON document's objects: they hold no cycles, and
    in a process with TensorFlow imported each full collection walks millions of objects
    (measured: parsing 1M floats took 2x longer with the collector on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _is_named(value: Any) -> bool:
    """An object keyed by input names (a ``{"b64": ...}`` object is a value, not a name map)."""
    return isinstance(value, dict) and set(value) != {"b64"}


def _json_type(item: Any) -> str:
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "a boolean"
    if isinstance(item, int | float):
        return "a number"
    if isinstance(item, dict):
        return "an object"
    return type(item).__name__


def _infer_datatype(value: Any) -> int:
    """A dtype for an input the signature does not list (the core then names the error)."""
    probe = value
    while isinstance(probe, list) and probe:
        probe = probe[0]
    if isinstance(probe, str | dict):
        return tensor_pb2.DT_STRING
    if isinstance(probe, bool):
        return tensor_pb2.DT_BOOL
    if isinstance(probe, int):
        return tensor_pb2.DT_INT64
    return tensor_pb2.DT_FLOAT


def _json_ready(name: str, array: np.ndarray) -> Any:
    """Something orjson serializes as TF Serving's JSON for this output."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        as_b64 = name.endswith("_bytes")
        flat: list[str | dict[str, str]] = []
        for v in array.flat:
            raw = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            if not as_b64:
                try:
                    flat.append(raw.decode("utf-8"))
                    continue
                except UnicodeDecodeError:
                    pass  # not text: b64 it rather than emit invalid JSON
            flat.append({"b64": base64.b64encode(raw).decode("ascii")})
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(array.shape).tolist()
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        # orjson writes null for NaN; TF Serving writes the NaN/Infinity tokens.
        return _NonFinite(array)
    if array.dtype.kind == "f" and array.dtype.itemsize not in (4, 8):
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)


class _NonFinite:
    """A float array holding NaN/Inf, serialized by the stdlib json (which writes NaN tokens)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __getitem__(self, index: int) -> _NonFinite:
        return _NonFinite(self.array[index])


def _default(value: Any) -> Any:
    if isinstance(value, _NonFinite):
        return orjson.Fragment(json.dumps(value.array.tolist(), allow_nan=True).encode())
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
