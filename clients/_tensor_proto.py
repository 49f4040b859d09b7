"""numpy <-> TensorProto, laid out as ``tf.make_tensor_proto`` / ``tf.make_ndarray`` do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from clients.errors import InvalidInputError
from clients.protos import tensor_pb2
from clients.tensor_dtypes import DATATYPES, NUMPY_DTYPES


def encode_texts(texts: Iterable[str | bytes]) -> npt.NDArray[np.object_]:
    """A 1-D object array of UTF-8 bytes (the form a tf.string tensor takes in numpy)."""
    if isinstance(texts, str | bytes):
        raise TypeError("texts must be a sequence of strings, not a single string")
    out: list[bytes] = []
    for i, text in enumerate(texts):
        if isinstance(text, bytes):
            out.append(text)
        elif isinstance(text, str):
            try:
                out.append(text.encode("utf-8"))
            except UnicodeEncodeError as exc:  # lone surrogates cannot be sent to any server
                raise InvalidInputError(
                    "INVALID_ARGUMENT", f"text {i} is not valid Unicode: {exc.reason}"
                ) from exc
        else:
            raise TypeError(f"text {i} is {type(text).__name__}, expected str or bytes")
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


def first_leaf(value: Any) -> Any:
    while isinstance(value, list | tuple) and value:
        value = value[0]
    return value


def as_input_array(value: Any) -> npt.NDArray[Any]:
    """Coerce a predict input: str/bytes sequences become object arrays of UTF-8 bytes."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(first_leaf(value), str | bytes):
        # dtype=object: numpy's fixed-width bytes dtype would drop trailing NUL bytes.
        arr = np.array(value, dtype=object)
    else:
        arr = np.asarray(value)
    if arr.dtype.kind in "US":
        flat = encode_texts([str(v) if arr.dtype.kind == "U" else bytes(v) for v in arr.ravel()])
        return flat.reshape(arr.shape)
    if arr.dtype == object:
        flat = encode_texts(list(arr.ravel()))
        return flat.reshape(arr.shape)
    return arr


def to_tensor_proto(value: Any) -> tensor_pb2.TensorProto:
    """numpy -> TensorProto the way ``tf.make_tensor_proto`` lays it out (strings in
    ``string_val``, numbers as little-endian ``tensor_content``), so requests are byte-identical
    to the ones tensorflow-serving-api users send."""
    arr = as_input_array(value)
    proto = tensor_pb2.TensorProto()
    for size in arr.shape:
        proto.tensor_shape.dim.add(size=int(size))
    if arr.dtype == object:
        proto.dtype = tensor_pb2.DT_STRING
        proto.string_val.extend(arr.ravel().tolist())
        return proto
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    try:
        proto.dtype = DATATYPES[np.dtype(dtype.type)]  # type: ignore[assignment]
    except KeyError:
        raise TypeError(f"unsupported input dtype {arr.dtype}") from None
    # Same split as tf.make_tensor_proto: these go in *_val fields, the rest as raw bytes.
    if arr.dtype == np.bool_:
        proto.bool_val.extend(arr.ravel().tolist())
    elif arr.dtype == np.uint16:
        proto.int_val.extend(arr.ravel().tolist())
    elif arr.dtype.kind == "c":
        interleaved = np.stack([arr.real.ravel(), arr.imag.ravel()], axis=1).ravel().tolist()
        field = proto.scomplex_val if arr.dtype == np.complex64 else proto.dcomplex_val
        field.extend(interleaved)
    else:
        proto.tensor_content = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<")).tobytes()
    return proto


def _values_field(proto: tensor_pb2.TensorProto) -> Sequence[Any]:
    dt = proto.dtype
    if dt in (tensor_pb2.DT_FLOAT,):
        return proto.float_val
    if dt == tensor_pb2.DT_DOUBLE:
        return proto.double_val
    if dt in (
        tensor_pb2.DT_INT32,
        tensor_pb2.DT_INT16,
        tensor_pb2.DT_INT8,
        tensor_pb2.DT_UINT8,
        tensor_pb2.DT_UINT16,
    ):
        return proto.int_val
    if dt == tensor_pb2.DT_INT64:
        return proto.int64_val
    if dt == tensor_pb2.DT_BOOL:
        return proto.bool_val
    if dt == tensor_pb2.DT_UINT32:
        return proto.uint32_val
    if dt == tensor_pb2.DT_UINT64:
        return proto.uint64_val
    raise ValueError(f"unsupported output dtype {tensor_pb2.DataType.Name(dt)}")


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> npt.NDArray[Any]:
    """TensorProto -> numpy (strings as an object array of bytes), like ``tf.make_ndarray``."""
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == tensor_pb2.DT_STRING:
        strings = list(proto.string_val)
        if len(strings) not in (count, 1) and count:
            raise ValueError(f"string tensor has {len(strings)} values for shape {shape}")
        arr = np.empty(count, dtype=object)
        arr[:] = strings if len(strings) == count else strings * count
        return arr.reshape(shape)
    dtype = NUMPY_DTYPES.get(proto.dtype)
    if dtype is None:
        raise ValueError(f"unsupported output dtype {tensor_pb2.DataType.Name(proto.dtype)}")
    if proto.tensor_content:
        return (
            np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<"))
            .astype(dtype, copy=True)
            .reshape(shape)
        )
    if proto.dtype == tensor_pb2.DT_HALF:
        values: npt.NDArray[Any] = np.array(proto.half_val, dtype=np.uint16).view(np.float16)
    elif proto.dtype in (tensor_pb2.DT_COMPLEX64, tensor_pb2.DT_COMPLEX128):
        raw = proto.scomplex_val if proto.dtype == tensor_pb2.DT_COMPLEX64 else proto.dcomplex_val
        pairs = np.array(raw, dtype=np.float64).reshape(-1, 2)
        values = (pairs[:, 0] + 1j * pairs[:, 1]).astype(dtype)
    else:
        values = np.array(_values_field(proto), dtype=dtype)
    if values.size == count:
        return values.reshape(shape)
    if values.size == 0:
        return np.zeros(shape, dtype=dtype)
    # TF's compact form: the last value repeats to fill the shape.
    filled = np.empty(count, dtype=dtype)
    filled[: values.size] = values
    filled[values.size :] = values[-1]
    return filled.reshape(shape)
