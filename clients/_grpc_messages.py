"""TF Serving's gRPC request and response messages, built and parsed (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt

from clients._metadata import ModelMetadata, ModelVersionStatus, metadata_from_signature_map
from clients._predict_arguments import check_version_choice
from clients._tensor_proto import from_tensor_proto, to_tensor_proto
from clients.errors import TextServeError
from clients.protos import serving_apis_pb2 as apis
from models import contract


def model_spec(
    model_name: str,
    *,
    signature_name: str = "",
    version: int | None = None,
    version_label: str | None = None,
) -> apis.ModelSpec:
    check_version_choice(version, version_label)
    spec = apis.ModelSpec(name=model_name, signature_name=signature_name)
    if version is not None:
        spec.version.value = version
    elif version_label is not None:
        spec.version_label = version_label
    return spec


def build_predict_request(
    model_name: str,
    inputs: Mapping[str, Any],
    *,
    signature_name: str,
    version: int | None = None,
    version_label: str | None = None,
    output_filter: Sequence[str] = (),
) -> apis.PredictRequest:
    if not inputs:
        raise ValueError("predict needs at least one input")
    request = apis.PredictRequest(
        model_spec=model_spec(
            model_name, signature_name=signature_name, version=version, version_label=version_label
        ),
        output_filter=list(output_filter),
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(to_tensor_proto(value))
    return request


def parse_predict_response(response: apis.PredictResponse) -> dict[str, npt.NDArray[Any]]:
    return {name: from_tensor_proto(tensor) for name, tensor in response.outputs.items()}


def build_metadata_request(
    model_name: str, *, version: int | None = None, version_label: str | None = None
) -> apis.GetModelMetadataRequest:
    return apis.GetModelMetadataRequest(
        model_spec=model_spec(model_name, version=version, version_label=version_label),
        metadata_field=[contract.SIGNATURE_DEF_FIELD],
    )


def build_status_request(
    model_name: str, *, version: int | None = None, version_label: str | None = None
) -> apis.GetModelStatusRequest:
    return apis.GetModelStatusRequest(
        model_spec=model_spec(model_name, version=version, version_label=version_label)
    )


def parse_status_response(response: apis.GetModelStatusResponse) -> list[ModelVersionStatus]:
    return [
        ModelVersionStatus(
            version=int(s.version),
            state=apis.ModelVersionStatus.State.Name(s.state),
            error_code=apis.ErrorCode.Name(s.status.error_code),
            error_message=s.status.error_message,
        )
        for s in response.model_version_status
    ]


def parse_metadata_response(response: apis.GetModelMetadataResponse) -> ModelMetadata:
    sigmap = apis.SignatureDefMap()
    if contract.SIGNATURE_DEF_FIELD in response.metadata:
        packed = response.metadata[contract.SIGNATURE_DEF_FIELD]
        # The Any names tensorflow.serving.SignatureDefMap; our SignatureDefMap has the same
        # wire format, so its bytes are unpacked directly (Any.Unpack would check the name).
        if not packed.type_url.endswith("tensorflow.serving.SignatureDefMap"):
            raise TextServeError("DATA_LOSS", f"unexpected metadata type {packed.type_url}")
        sigmap.ParseFromString(packed.value)
    return metadata_from_signature_map(response.model_spec, sigmap)
