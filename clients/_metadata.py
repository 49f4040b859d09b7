"""What status and metadata answers say, as the clients return it: versions, signatures, tensors."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clients.protos import serving_apis_pb2 as apis
from clients.protos import tensor_pb2
from clients.tensor_dtypes import numpy_dtype


@dataclasses.dataclass(frozen=True)
class ModelVersionStatus:
    """One version's state as GetModelStatus / ``GET /v1/models/NAME`` report it."""

    version: int
    state: str  # START | LOADING | AVAILABLE | UNLOADING | END | UNKNOWN
    error_code: str = "OK"
    error_message: str = ""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A signature input or output: dtype name (``"DT_FLOAT"``) and shape (-1 = unknown dim,
    ``None`` = unknown rank)."""

    name: str
    dtype: str
    shape: tuple[int, ...] | None

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        return numpy_dtype(self.dtype)


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """GetModelMetadata's answer: the served version and its signatures by name."""

    model_name: str
    version: int
    signatures: Mapping[str, SignatureSpec]


def _tensor_spec(info: Any) -> TensorSpec:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(int(d.size) for d in shape.dim)
    return TensorSpec(name=info.name, dtype=tensor_pb2.DataType.Name(info.dtype), shape=dims)


def metadata_from_signature_map(
    spec: apis.ModelSpec, sigmap: apis.SignatureDefMap
) -> ModelMetadata:
    signatures = {
        key: SignatureSpec(
            method_name=sig.method_name,
            inputs={k: _tensor_spec(v) for k, v in sorted(sig.inputs.items())},
            outputs={k: _tensor_spec(v) for k, v in sorted(sig.outputs.items())},
        )
        for key, sig in sorted(sigmap.signature_def.items())
    }
    return ModelMetadata(
        model_name=spec.name,
        version=int(spec.version.value),
        signatures=signatures,
    )


def is_ready(statuses: Sequence[ModelVersionStatus]) -> bool:
    return any(s.state == "AVAILABLE" for s in statuses)


def single_output_name(
    metadata: ModelMetadata | None, signature_name: str, output_filter: Sequence[str]
) -> str | None:
    if len(output_filter) == 1:
        return output_filter[0]
    if metadata is not None and signature_name in metadata.signatures:
        outputs = metadata.signatures[signature_name].outputs
        if len(outputs) == 1:
            return next(iter(outputs))
    return None


def output_dtypes(metadata: ModelMetadata | None, signature_name: str) -> dict[str, np.dtype[Any]]:
    if metadata is None or signature_name not in metadata.signatures:
        return {}
    return {
        name: spec.numpy_dtype for name, spec in metadata.signatures[signature_name].outputs.items()
    }
