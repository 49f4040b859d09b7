"""Wire formats <-> numpy, with the checks that must run before TensorFlow sees a request.

Both fronts decode through ``TensorCodec``: gRPC ``TensorProto`` and TF Serving's REST JSON
(row ``instances`` / columnar ``inputs``, ``{"b64": ...}`` strings). Every check here is a
property of the bytes on the wire, independent of the model: body size (also after gzip),
JSON nesting, NaN/Infinity, ragged arrays, base64 alphabet, UTF-8 validity, declared
TensorProto shape versus content, negative or overflowing dims, unsupported dtypes, rows
and characters per request. Those checks run here only: a decoded request is a
``CheckedInputs``, the only kind of inputs the core accepts, and the core does not repeat
them. Checks against the model's SignatureDef (input names, ranks, shapes) belong to the
core. Every failure is a ``ServingError`` naming the input.

Size errors (body or gzip bytes) are RESOURCE_EXHAUSTED, as gRPC's own message-size limit
answers; all other rejections are INVALID_ARGUMENT (retrying cannot help).

Example::

    codec = TensorCodec(Limits())
    inputs = codec.from_tensor_protos(request.inputs)  # CheckedInputs, for a PredictCall
    proto = codec.to_tensor_proto(np.asarray([0.5], np.float32))
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import json
import math
import re
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import orjson
from google.protobuf import unknown_fields

from clients.protos import tensor_pb2
from serving.core_api import CheckedInputs
from serving.errors import Code, ServingError
from serving.limits import Limits

# A TensorProto of higher rank is not a real tensor: numpy itself stops at 64 dims.
MAX_RANK = 32

_NUMPY_DTYPE: dict[int, np.dtype] = {
    tensor_pb2.DT_FLOAT: np.dtype("<f4"),
    tensor_pb2.DT_DOUBLE: np.dtype("<f8"),
    tensor_pb2.DT_HALF: np.dtype("<f2"),
    tensor_pb2.DT_INT8: np.dtype("i1"),
    tensor_pb2.DT_INT16: np.dtype("<i2"),
    tensor_pb2.DT_INT32: np.dtype("<i4"),
    tensor_pb2.DT_INT64: np.dtype("<i8"),
    tensor_pb2.DT_UINT8: np.dtype("u1"),
    tensor_pb2.DT_UINT16: np.dtype("<u2"),
    tensor_pb2.DT_UINT32: np.dtype("<u4"),
    tensor_pb2.DT_UINT64: np.dtype("<u8"),
    tensor_pb2.DT_BOOL: np.dtype("?"),
    tensor_pb2.DT_STRING: np.dtype(object),
}
# Where TensorProto keeps typed values per dtype (tensorflow/core/framework/tensor.proto).
_VALUE_FIELD: dict[int, str] = {
    tensor_pb2.DT_FLOAT: "float_val",
    tensor_pb2.DT_DOUBLE: "double_val",
    tensor_pb2.DT_HALF: "half_val",
    tensor_pb2.DT_INT8: "int_val",
    tensor_pb2.DT_INT16: "int_val",
    tensor_pb2.DT_INT32: "int_val",
    tensor_pb2.DT_UINT8: "int_val",
    tensor_pb2.DT_UINT16: "int_val",
    tensor_pb2.DT_INT64: "int64_val",
    tensor_pb2.DT_UINT32: "uint32_val",
    tensor_pb2.DT_UINT64: "uint64_val",
    tensor_pb2.DT_BOOL: "bool_val",
    tensor_pb2.DT_STRING: "string_val",
}
_VALUE_FIELDS = frozenset(_VALUE_FIELD.values()) | {
    "scomplex_val",
    "dcomplex_val",
    "resource_handle_val",
    "variant_val",
}
# TensorProto value fields textserve.wire's copy leaves out: they arrive as unknown fields.
_UNREAD_VALUE_FIELDS = {14: "resource_handle_val", 15: "variant_val"}
_DATATYPE_OF_NUMPY: dict[np.dtype, int] = {
    np.dtype(v).newbyteorder("="): k for k, v in _NUMPY_DTYPE.items() if k != tensor_pb2.DT_STRING
}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[list(b"[{")] = 1
_BRACKET_STEP[list(b"]}")] = -1
# JSON numbers a numeric dtype accepts (numpy dtype kinds after inference).
_JSON_KINDS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}
# Packed float/double fields serialize as raw little-endian bytes: building the wire form and
# merging it is ~100x faster than extending the repeated field element by element.
_PACKED_TAG = {tensor_pb2.DT_FLOAT: b"\x2a", tensor_pb2.DT_DOUBLE: b"\x32"}  # fields 5 and 6


def datatype_name(dtype: int) -> str:
    return (
        str(tensor_pb2.DataType.Name(dtype))
        if dtype in tensor_pb2.DataType.values()
        else str(dtype)
    )


def _invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def _shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


class TensorCodec:
    """Decodes and encodes tensors for the gRPC and REST fronts, enforcing ``Limits``."""

    def __init__(self, limits: Limits | None = None, *, strings_are_text: bool = True) -> None:
        self.limits = limits or Limits()
        # String tensors are text (UTF-8 and length checked); off to serve binary strings.
        self.strings_are_text = strings_are_text

    # ------------------------------------------------------------------ shared checks
    def check_inputs(self, arrays: Mapping[str, np.ndarray]) -> CheckedInputs:
        """``check_input`` on every input: how decoded arrays become a request's inputs."""
        return CheckedInputs(
            {name: self.check_input(name, array) for name, array in arrays.items()}
        )

    def check_input(self, name: str, array: np.ndarray) -> np.ndarray:
        """The checks every decoded input passes, whatever the wire format; returns ``array``.

        The server's only check of emptiness, rows per request, UTF-8 and text length.
        """
        if array.size == 0:
            raise _invalid(
                f"input '{name}' is empty (shape {_shape_text(array.shape)}): "
                "empty tensors are not served"
            )
        max_rows = self.limits.max_rows_per_request
        if array.ndim >= 1 and array.shape[0] > max_rows:
            raise _invalid(
                f"input '{name}' has {array.shape[0]} rows; the limit is {max_rows} "
                "per request (split the request)"
            )
        if array.dtype == object and self.strings_are_text:
            limit = self.limits.max_text_chars
            for index, value in enumerate(array.flat):
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _invalid(
                        f"input '{name}' element {index} is not valid UTF-8 text "
                        f"(byte {exc.start}: {exc.reason})"
                    ) from exc
                # len(bytes) >= len(chars): only count characters when the bytes could exceed.
                if len(value) > limit and len(text) > limit:
                    raise _invalid(
                        f"input '{name}' element {index} has {len(text)} characters; "
                        f"the limit is {limit}"
                    )
        return array

    # ------------------------------------------------------------------ gRPC TensorProto
    def from_tensor_protos(self, protos: Mapping[str, tensor_pb2.TensorProto]) -> CheckedInputs:
        """A PredictRequest's ``inputs``, decoded and checked."""
        return self.check_inputs(
            {name: self.from_tensor_proto(name, p) for name, p in protos.items()}
        )

    def from_tensor_proto(self, name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
        """A TensorProto as a numpy array (strings: object array of bytes), decoded only:
        ``from_tensor_protos`` adds ``check_input``.

        Unlike TensorFlow's own parser, content must match the declared shape exactly: TF
        repeats the last value (or zero) to fill a larger shape, which lets a few bytes
        declare gigabytes.
        """
        dtype = proto.dtype
        if dtype not in _NUMPY_DTYPE:
            raise _invalid(f"input '{name}' has unsupported dtype {datatype_name(dtype)}")
        if proto.tensor_shape.unknown_rank:
            raise _invalid(f"input '{name}' has an unknown rank; a request tensor needs a shape")
        dims = [d.size for d in proto.tensor_shape.dim]
        if len(dims) > MAX_RANK:
            raise _invalid(f"input '{name}' has rank {len(dims)}; the limit is {MAX_RANK}")
        if any(d < 0 for d in dims):
            raise _invalid(f"input '{name}' has a negative dimension in shape {_shape_text(dims)}")
        count = math.prod(dims)  # Python ints: no overflow while checking for one
        if count >= 2**63:
            raise _invalid(f"input '{name}' shape {_shape_text(dims)} overflows int64")
        numpy_dtype = _NUMPY_DTYPE[dtype]
        field = _VALUE_FIELD[dtype]
        if proto.tensor_content:
            if dtype == tensor_pb2.DT_STRING:
                raise _invalid(f"input '{name}': DT_STRING tensors cannot use tensor_content")
            expected = count * numpy_dtype.itemsize
            if len(proto.tensor_content) != expected:
                raise _invalid(
                    f"input '{name}' declares shape {_shape_text(dims)} ({count} elements, "
                    f"{expected} bytes of {datatype_name(dtype)}) but tensor_content holds "
                    f"{len(proto.tensor_content)} bytes"
                )
            array = np.frombuffer(proto.tensor_content, dtype=numpy_dtype).reshape(dims)
            return array.astype(numpy_dtype.newbyteorder("="), copy=False)
        given = [descriptor.name for descriptor, _ in proto.ListFields()] + [
            _UNREAD_VALUE_FIELDS.get(unknown.field_number, "")
            for unknown in unknown_fields.UnknownFieldSet(proto)
        ]
        for given_field in given:
            if given_field in _VALUE_FIELDS and given_field != field:
                raise _invalid(
                    f"input '{name}' is {datatype_name(dtype)}, whose values go in {field} "
                    f"or tensor_content, but it sets {given_field}"
                )
        values = getattr(proto, field)
        if len(values) != count:
            raise _invalid(
                f"input '{name}' declares shape {_shape_text(dims)} ({count} elements) but "
                f"holds {len(values)} values in {field}"
            )
        if dtype == tensor_pb2.DT_STRING:
            array = np.empty(count, dtype=object)
            array[:] = list(values)
        elif field == "int_val" and dtype != tensor_pb2.DT_INT32:
            wide = np.array(values, dtype=np.int64)
            info = np.iinfo(numpy_dtype)
            if wide.size and (wide.min() < info.min or wide.max() > info.max):
                raise _invalid(f"input '{name}' has values out of range for {datatype_name(dtype)}")
            array = wide.astype(numpy_dtype)
        elif field == "half_val":
            bits = np.array(values, dtype=np.int64)
            if bits.size and (bits.min() < 0 or bits.max() > 0xFFFF):
                raise _invalid(f"input '{name}' has half_val entries that are not 16-bit patterns")
            array = bits.astype(np.uint16).view(np.float16)
        else:
            array = np.array(values, dtype=numpy_dtype.newbyteorder("="))
        return array.reshape(dims)

    def to_tensor_proto(
        self, array: np.ndarray, *, as_tensor_content: bool = False
    ) -> tensor_pb2.TensorProto:
        """A numpy array as a new TensorProto (see ``fill_tensor_proto``)."""
        proto = tensor_pb2.TensorProto()
        self.fill_tensor_proto(proto, array, as_tensor_content=as_tensor_content)
        return proto

    def fill_tensor_proto(
        self, proto: tensor_pb2.TensorProto, array: np.ndarray, *, as_tensor_content: bool = False
    ) -> None:
        """Writes a numpy array into an empty TensorProto (e.g. ``response.outputs[name]``).

        Typed value fields by default, as tensorflow_model_server answers unless
        ``--enable_serialization_as_tensor_content``; ``tf.make_ndarray`` reads both.
        """
        array = np.asarray(array)
        for size in array.shape:
            proto.tensor_shape.dim.add().size = size
        if array.dtype.kind in "OSU":
            proto.dtype = tensor_pb2.DT_STRING
            proto.string_val.extend(
                v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in array.flat
            )
            return
        dtype = _DATATYPE_OF_NUMPY.get(array.dtype.newbyteorder("="))
        if dtype is None:
            raise ServingError(Code.INTERNAL, f"output dtype {array.dtype} has no TensorProto type")
        proto.dtype = dtype
        little = np.ascontiguousarray(array, dtype=_NUMPY_DTYPE[dtype])
        if as_tensor_content:
            proto.tensor_content = little.tobytes()
        elif dtype in _PACKED_TAG:
            payload = little.tobytes()
            proto.MergeFromString(_PACKED_TAG[dtype] + _varint(len(payload)) + payload)
        elif dtype == tensor_pb2.DT_HALF:
            proto.half_val.extend(little.view(np.uint16).ravel().tolist())
        else:
            getattr(proto, _VALUE_FIELD[dtype]).extend(array.ravel().tolist())

    # ------------------------------------------------------------------ REST bodies
    def read_body(self, body: bytes, content_encoding: str | None) -> bytes:
        """The request body, gunzipped (or inflated) within ``max_request_bytes``."""
        limit = self.limits.max_request_bytes
        if len(body) > limit:
            raise _too_big(len(body), limit)
        encoding = (content_encoding or "identity").strip().lower()
        if encoding == "identity":
            return body
        if encoding in ("gzip", "x-gzip"):
            wbits = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            wbits = zlib.MAX_WBITS
        else:
            raise _invalid(f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
        out = bytearray()
        data = body
        # Members one at a time (gzip allows concatenation), never inflating past the limit:
        # a gzip bomb stops at limit+1 bytes.
        while data:
            inflater = zlib.decompressobj(wbits)
            try:
                out += inflater.decompress(data, limit + 1 - len(out))
            except zlib.error as exc:
                raise _invalid(f"request body is not valid {encoding}: {exc}") from exc
            if len(out) > limit:
                raise _too_big(len(out), limit, after=encoding)
            if not inflater.eof:
                raise _invalid(f"request body is truncated {encoding} data")
            data = inflater.unused_data
        return bytes(out)

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
                raise _invalid(
                    f"JSON body is not valid UTF-8 at byte {bad.start}{_near(body, bad.start)}"
                ) from exc
            token = body[pos : pos + 9].lstrip(b"-")
            for name in ("NaN", "Infinity"):
                if token.startswith(name.encode()):
                    raise _invalid(
                        f"JSON body has {name} at char {pos}{_near(body, pos)}: NaN and "
                        "Infinity are not JSON numbers"
                    ) from exc
            raise _invalid(f"JSON body is malformed{_near(body, pos)}: {exc}") from exc
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
            raise _invalid(
                f"JSON body is nested {depth} levels deep; the limit is "
                f"{self.limits.max_json_depth}"
            )

    def predict_json_form(self, doc: Any) -> str:
        """Checks a parsed :predict body's shape; its format: ``"row"`` (``instances``) or
        ``"columnar"`` (``inputs``). The response uses the same one."""
        if not isinstance(doc, dict):
            raise _invalid("JSON body must be an object with 'instances' or 'inputs'")
        if not isinstance(doc.get("signature_name", ""), str):
            raise _invalid("'signature_name' must be a string")
        unknown = set(doc) - {"signature_name", "instances", "inputs"}
        if unknown:
            raise _invalid(f"unknown field(s) in request: {', '.join(sorted(unknown))}")
        if ("instances" in doc) == ("inputs" in doc):
            raise _invalid(
                "request must have exactly one of 'instances' (row format) or 'inputs' "
                "(columnar format)"
            )
        return "row" if "instances" in doc else "columnar"

    def decode_predict_json(self, doc: Any, input_dtypes: Mapping[str, int]) -> CheckedInputs:
        """The inputs of a :predict body that passed ``predict_json_form``.

        ``input_dtypes`` maps the signature's input names to DataType enums: JSON numbers and
        strings are read as the signature says, like TF Serving.
        """
        if self.predict_json_form(doc) == "row":
            arrays = self._decode_rows(doc["instances"], input_dtypes)
        else:
            arrays = self._decode_columns(doc["inputs"], input_dtypes)
        return self.check_inputs(arrays)

    def _single_input(self, input_dtypes: Mapping[str, int], form: str) -> str:
        if len(input_dtypes) != 1:
            raise _invalid(
                f"{form} must name each input (an object keyed by input name): the signature "
                f"has {len(input_dtypes)} inputs ({', '.join(sorted(input_dtypes))})"
            )
        return next(iter(input_dtypes))

    def _decode_rows(
        self, instances: Any, input_dtypes: Mapping[str, int]
    ) -> dict[str, np.ndarray]:
        if not isinstance(instances, list) or not instances:
            raise _invalid("'instances' must be a non-empty list")
        named = [_is_named(row) for row in instances]
        if not any(named):
            name = self._single_input(input_dtypes, "'instances'")
            return {name: self._json_to_array(name, instances, input_dtypes.get(name))}
        if not all(named):
            raise _invalid("'instances' mixes objects keyed by input name with bare values")
        keys = set(instances[0])
        for index, row in enumerate(instances):
            if set(row) != keys:
                raise _invalid(
                    f"instance {index} has inputs {sorted(row)} but instance 0 has {sorted(keys)}"
                )
        return {
            name: self._json_to_array(
                name, [row[name] for row in instances], input_dtypes.get(name)
            )
            for name in instances[0]
        }

    def _decode_columns(
        self, inputs: Any, input_dtypes: Mapping[str, int]
    ) -> dict[str, np.ndarray]:
        if _is_named(inputs):
            if not inputs:
                raise _invalid("'inputs' must name at least one input")
            return {
                name: self._json_to_array(name, value, input_dtypes.get(name))
                for name, value in inputs.items()
            }
        name = self._single_input(input_dtypes, "'inputs'")
        return {name: self._json_to_array(name, inputs, input_dtypes.get(name))}

    def _json_to_array(self, name: str, value: Any, dtype: int | None) -> np.ndarray:
        """One input's JSON value as an array of the signature's dtype (inferred if unknown)."""
        if dtype is None:
            dtype = _infer_datatype(value)
        if dtype not in _NUMPY_DTYPE:
            raise _invalid(f"input '{name}' has dtype {datatype_name(dtype)}, not served over JSON")
        try:
            with _gc_paused():
                if dtype == tensor_pb2.DT_STRING:
                    array = self._json_strings(name, value)
                else:
                    array = self._json_numbers(name, value, dtype)
        except ValueError as exc:  # numpy on ragged or >32-dim nesting
            raise _invalid(f"input '{name}' is ragged or malformed: {exc}") from exc
        if array.ndim > MAX_RANK:
            raise _invalid(f"input '{name}' has rank {array.ndim}; the limit is {MAX_RANK}")
        return array

    def _json_strings(self, name: str, value: Any) -> np.ndarray:
        array = np.array(value, dtype=object)
        out = np.empty(array.shape, dtype=object)
        flat_out = out.reshape(-1)
        for index, item in enumerate(array.flat):
            if isinstance(item, str):
                flat_out[index] = item.encode("utf-8")  # orjson already rejected surrogates
            elif isinstance(item, dict) and set(item) == {"b64"} and isinstance(item["b64"], str):
                try:
                    flat_out[index] = base64.b64decode(item["b64"], validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise _invalid(
                        f"input '{name}' element {index} is not valid base64: {exc}"
                    ) from exc
            elif isinstance(item, list):
                raise _invalid(f"input '{name}' is ragged: rows of different lengths")
            else:
                raise _invalid(
                    f"input '{name}' expects strings (DT_STRING) or {{\"b64\": ...}} objects; "
                    f"element {index} is {_json_type(item)}"
                )
        return out

    def _json_numbers(self, name: str, value: Any, dtype: int) -> np.ndarray:
        target = _NUMPY_DTYPE[dtype].newbyteorder("=")
        array = np.asarray(value)
        allowed = _JSON_KINDS[target.kind]
        if array.dtype.kind not in allowed:
            got = (
                "strings or objects" if array.dtype.kind in "OUS" else _KIND_NAME[array.dtype.kind]
            )
            if array.dtype.kind == "O" and any(isinstance(v, list) for v in array.flat):
                raise _invalid(f"input '{name}' is ragged: rows of different lengths")
            raise _invalid(f"input '{name}' expects {datatype_name(dtype)} values; got {got}")
        if target.kind in "iu" and array.size:
            info = np.iinfo(target)
            if array.min() < info.min or array.max() > info.max:
                raise _invalid(f"input '{name}' has values out of range for {datatype_name(dtype)}")
        with np.errstate(over="ignore"):  # overflow is reported below, as an error
            result = array.astype(target)
        if target.kind == "f" and not np.isfinite(result).all():
            raise _invalid(f"input '{name}' has values out of range for {datatype_name(dtype)}")
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
                raise _invalid(f"output '{n}' is a scalar: use the columnar ('inputs') format")
            if batch is None:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise _invalid(
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


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _too_big(size: int, limit: int, after: str | None = None) -> ServingError:
    where = f" after {after} decompression" if after else ""
    return ServingError(
        Code.RESOURCE_EXHAUSTED,
        f"request body is larger than the limit of {limit} bytes{where} "
        f"(got {'more than ' if after else ''}{size if not after else limit} bytes); "
        "split the request",
    )


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
