"""TensorFlow's DataType <-> numpy dtype: the one table, used by the clients and the server.

Values are native-order numpy dtypes (what arrays hold in memory); on the wire, typed bytes
(``tensor_content``) are little-endian: ``dtype.newbyteorder("<")``. DT_STRING is an
``object`` array of ``bytes``. No TensorFlow: the enum values come from the project's own
copy of ``types.proto`` (``clients.protos.tensor_pb2``).

Example::

    NUMPY_DTYPES[tensor_pb2.DT_FLOAT]        # dtype('float32')
    DATATYPES[np.dtype(np.int64)]             # tensor_pb2.DT_INT64
    datatype_name(tensor_pb2.DT_HALF)         # 'DT_HALF'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clients.protos import tensor_pb2

NUMPY_DTYPES: Mapping[int, np.dtype[Any]] = {
    tensor_pb2.DT_FLOAT: np.dtype(np.float32),
    tensor_pb2.DT_DOUBLE: np.dtype(np.float64),
    tensor_pb2.DT_HALF: np.dtype(np.float16),
    tensor_pb2.DT_INT8: np.dtype(np.int8),
    tensor_pb2.DT_INT16: np.dtype(np.int16),
    tensor_pb2.DT_INT32: np.dtype(np.int32),
    tensor_pb2.DT_INT64: np.dtype(np.int64),
    tensor_pb2.DT_UINT8: np.dtype(np.uint8),
    tensor_pb2.DT_UINT16: np.dtype(np.uint16),
    tensor_pb2.DT_UINT32: np.dtype(np.uint32),
    tensor_pb2.DT_UINT64: np.dtype(np.uint64),
    tensor_pb2.DT_BOOL: np.dtype(np.bool_),
    tensor_pb2.DT_COMPLEX64: np.dtype(np.complex64),
    tensor_pb2.DT_COMPLEX128: np.dtype(np.complex128),
    tensor_pb2.DT_STRING: np.dtype(object),
}
# numpy -> DataType for numeric arrays (an object array is DT_STRING by content, not dtype).
DATATYPES: Mapping[np.dtype[Any], int] = {
    dtype: datatype for datatype, dtype in NUMPY_DTYPES.items() if dtype.kind != "O"
}


def datatype_name(datatype: int) -> str:
    """``"DT_FLOAT"`` for 1; the bare number for a value types.proto does not define."""
    if datatype in tensor_pb2.DataType.values():
        return str(tensor_pb2.DataType.Name(datatype))
    return str(datatype)


def numpy_dtype(dtype_name: str) -> np.dtype[Any]:
    """numpy dtype for a TF dtype name (``"DT_FLOAT"`` -> float32; DT_STRING -> object)."""
    try:
        return NUMPY_DTYPES[tensor_pb2.DataType.Value(dtype_name)]
    except (KeyError, ValueError):
        raise ValueError(f"unsupported dtype {dtype_name}") from None
