"""``TensorProtoCodec``: gRPC's TensorProto <-> numpy, with the checks that must run first.

Declared shape versus content, negative or overflowing dims, unsupported dtypes and value
fields that do not match the dtype are refused before numpy allocates anything; decoded
inputs then pass ``InputChecks``. Every failure is a ``ServingError`` naming the input.

Example::

    codec = TensorProtoCodec(InputChecks(Limits()))
    inputs = codec.from_tensor_protos(request.inputs)  # CheckedInputs, for a PredictCall
    proto = codec.to_tensor_proto(np.asarray([0.5], np.float32))
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from google.protobuf import unknown_fields

from clients.protos import tensor_pb2
from clients.tensor_dtypes import DATATYPES, datatype_name
from serving.core_api import CheckedInputs
from serving.errors import Code, ServingError
from serving.input_checks import MAX_RANK, SERVED_DTYPES, InputChecks, invalid, shape_text

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


# Packed float/double fields serialize as raw little-endian bytes: building the wire form and
# merging it is ~100x faster than extending the repeated field element by element.
_PACKED_TAG = {tensor_pb2.DT_FLOAT: b"\x2a", tensor_pb2.DT_DOUBLE: b"\x32"}  # fields 5 and 6


class TensorProtoCodec:
    """Decodes request TensorProtos (checked) and encodes response ones."""

    def __init__(self, checks: InputChecks) -> None:
        self.checks = checks

    def from_tensor_protos(self, protos: Mapping[str, tensor_pb2.TensorProto]) -> CheckedInputs:
        """A PredictRequest's ``inputs``, decoded and checked."""
        return self.checks.check_inputs(
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
        if dtype not in SERVED_DTYPES:
            raise invalid(f"input '{name}' has unsupported dtype {datatype_name(dtype)}")
        if proto.tensor_shape.unknown_rank:
            raise invalid(f"input '{name}' has an unknown rank; a request tensor needs a shape")
        dims = [d.size for d in proto.tensor_shape.dim]
        if len(dims) > MAX_RANK:
            raise invalid(f"input '{name}' has rank {len(dims)}; the limit is {MAX_RANK}")
        if any(d < 0 for d in dims):
            raise invalid(f"input '{name}' has a negative dimension in shape {shape_text(dims)}")
        count = math.prod(dims)  # Python ints: no overflow while checking for one
        if count >= 2**63:
            raise invalid(f"input '{name}' shape {shape_text(dims)} overflows int64")
        numpy_dtype = SERVED_DTYPES[dtype].newbyteorder("<")  # typed bytes are little-endian
        field = _VALUE_FIELD[dtype]
        if proto.tensor_content:
            if dtype == tensor_pb2.DT_STRING:
                raise invalid(f"input '{name}': DT_STRING tensors cannot use tensor_content")
            expected = count * numpy_dtype.itemsize
            if len(proto.tensor_content) != expected:
                raise invalid(
                    f"input '{name}' declares shape {shape_text(dims)} ({count} elements, "
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
                raise invalid(
                    f"input '{name}' is {datatype_name(dtype)}, whose values go in {field} "
                    f"or tensor_content, but it sets {given_field}"
                )
        values = getattr(proto, field)
        if len(values) != count:
            raise invalid(
                f"input '{name}' declares shape {shape_text(dims)} ({count} elements) but "
                f"holds {len(values)} values in {field}"
            )
        if dtype == tensor_pb2.DT_STRING:
            array = np.empty(count, dtype=object)
            array[:] = list(values)
        elif field == "int_val" and dtype != tensor_pb2.DT_INT32:
            wide = np.array(values, dtype=np.int64)
            info = np.iinfo(numpy_dtype)
            if wide.size and (wide.min() < info.min or wide.max() > info.max):
                raise invalid(f"input '{name}' has values out of range for {datatype_name(dtype)}")
            array = wide.astype(numpy_dtype)
        elif field == "half_val":
            bits = np.array(values, dtype=np.int64)
            if bits.size and (bits.min() < 0 or bits.max() > 0xFFFF):
                raise invalid(f"input '{name}' has half_val entries that are not 16-bit patterns")
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
        dtype = DATATYPES.get(array.dtype.newbyteorder("="))
        if dtype is None or dtype not in SERVED_DTYPES:
            raise ServingError(Code.INTERNAL, f"output dtype {array.dtype} has no TensorProto type")
        proto.dtype = dtype
        little = np.ascontiguousarray(array, dtype=SERVED_DTYPES[dtype].newbyteorder("<"))
        if as_tensor_content:
            proto.tensor_content = little.tobytes()
        elif dtype in _PACKED_TAG:
            payload = little.tobytes()
            proto.MergeFromString(_PACKED_TAG[dtype] + _varint(len(payload)) + payload)
        elif dtype == tensor_pb2.DT_HALF:
            proto.half_val.extend(little.view(np.uint16).ravel().tolist())
        else:
            getattr(proto, _VALUE_FIELD[dtype]).extend(array.ravel().tolist())


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
