"""TF Serving's REST JSON: resource paths, predict bodies both ways, status and metadata bodies."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import json_format

from clients._grpc_messages import parse_status_response
from clients._metadata import (
    ModelMetadata,
    ModelVersionStatus,
    metadata_from_signature_map,
)
from clients._predict_arguments import check_version_choice
from clients._tensor_proto import as_input_array, first_leaf
from clients.errors import (
    InvalidInputError,
    TextServeError,
)
from clients.protos import serving_apis_pb2 as apis
from models import contract


def rest_model_path(
    model_name: str, *, version: int | None = None, version_label: str | None = None
) -> str:
    """``/v1/models/NAME[/versions/N|/labels/L]``, TF Serving's REST resource for a model."""
    check_version_choice(version, version_label)
    path = f"/v1/models/{model_name}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif version_label is not None:
        path += f"/labels/{version_label}"
    return path


def _json_value(arr: npt.NDArray[Any]) -> Any:
    if arr.dtype == object:
        return _json_strings(arr.tolist())
    if arr.dtype.kind == "c":
        raise TypeError("complex inputs have no TF Serving JSON form")
    return arr.tolist()


def _json_strings(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_strings(v) for v in value]
    assert isinstance(value, bytes)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        # TF Serving's JSON carries binary strings as {"b64": ...}.
        return {"b64": base64.b64encode(value).decode("ascii")}


def build_rest_predict_body(
    inputs: Mapping[str, Any], *, signature_name: str, row_format: bool = False
) -> dict[str, Any]:
    """TF Serving's predict JSON, columnar (``inputs``) by default or row (``instances``)."""
    if not inputs:
        raise ValueError("predict needs at least one input")
    arrays = {name: as_input_array(value) for name, value in inputs.items()}
    body: dict[str, Any] = {"signature_name": signature_name}
    if not row_format:
        body["inputs"] = {name: _json_value(arr) for name, arr in arrays.items()}
        return body
    lengths = {arr.shape[0] if arr.ndim else -1 for arr in arrays.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise ValueError("row format needs every input to share its first (batch) dimension")
    columns = {name: _json_value(arr) for name, arr in arrays.items()}
    n = lengths.pop()
    if len(columns) == 1:
        body["instances"] = next(iter(columns.values()))
    else:
        body["instances"] = [{name: col[i] for name, col in columns.items()} for i in range(n)]
    return body


def _decode_json_strings(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_json_strings(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise TextServeError("DATA_LOSS", f"bad base64 in response: {exc}") from exc
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TextServeError("DATA_LOSS", f"expected a string in the response, got {value!r:.80}")


def _json_to_array(value: Any, dtype: np.dtype[Any] | None) -> npt.NDArray[Any]:
    if (dtype is not None and dtype.kind == "O") or isinstance(first_leaf(value), str | dict):
        return np.array(_decode_json_strings(value), dtype=object)
    return np.asarray(value, dtype=dtype)


def parse_rest_predict_body(
    body: Any,
    *,
    output_dtypes: Mapping[str, np.dtype[Any]] | None = None,
    single_output_name: str | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Parse TF Serving's predict JSON (``outputs`` or ``predictions``).

    JSON carries no dtypes, so ``output_dtypes`` (from the signature's metadata) restore them.
    When the signature has a single output TF Serving omits its name; ``single_output_name``
    supplies it.
    """
    dtypes = output_dtypes or {}
    if not isinstance(body, dict):
        raise TextServeError("DATA_LOSS", "predict response is not a JSON object")
    if "outputs" in body:
        outputs = body["outputs"]
        columns = outputs if isinstance(outputs, dict) else None
    elif "predictions" in body:
        rows = body["predictions"]
        if not isinstance(rows, list):
            raise TextServeError("DATA_LOSS", "'predictions' is not a list")
        if rows and isinstance(rows[0], dict) and not set(rows[0]) == {"b64"}:
            columns = {name: [row[name] for row in rows] for name in rows[0]}
        else:
            columns, outputs = None, rows
    else:
        raise TextServeError("DATA_LOSS", f"predict response has no outputs: {str(body)[:200]}")
    if columns is None:
        if single_output_name is None:
            raise TextServeError("DATA_LOSS", "response has one unnamed output and no name known")
        columns = {single_output_name: outputs}
    return {name: _json_to_array(value, dtypes.get(name)) for name, value in columns.items()}


def parse_rest_status_body(body: Any) -> list[ModelVersionStatus]:
    response = apis.GetModelStatusResponse()
    try:
        json_format.ParseDict(body, response, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise TextServeError("DATA_LOSS", f"malformed status response: {exc}") from exc
    return parse_status_response(response)


def parse_rest_metadata_body(body: Any) -> ModelMetadata:
    spec = apis.ModelSpec()
    sigmap = apis.SignatureDefMap()
    try:
        json_format.ParseDict(body.get("model_spec", {}), spec, ignore_unknown_fields=True)
        packed = dict(body.get("metadata", {}).get(contract.SIGNATURE_DEF_FIELD, {}))
        packed.pop("@type", None)
        json_format.ParseDict(packed, sigmap, ignore_unknown_fields=True)
    except (json_format.ParseError, AttributeError, TypeError) as exc:
        raise TextServeError("DATA_LOSS", f"malformed metadata response: {exc}") from exc
    return metadata_from_signature_map(spec, sigmap)


def filter_outputs(
    outputs: dict[str, npt.NDArray[Any]], output_filter: Sequence[str]
) -> dict[str, npt.NDArray[Any]]:
    """TF Serving's REST API has no output_filter: the REST clients filter on arrival."""
    if not output_filter:
        return outputs
    missing = [name for name in output_filter if name not in outputs]
    if missing:
        raise InvalidInputError("INVALID_ARGUMENT", f"unknown outputs in output_filter: {missing}")
    return {name: outputs[name] for name in output_filter}


def parse_json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError as exc:
        raise TextServeError("DATA_LOSS", f"response is not JSON: {content[:200]!r}") from exc
