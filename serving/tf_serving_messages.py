"""TF Serving's answer messages, built once: gRPC sends them, REST sends their JSON mapping.

Example::

    response = metadata_response(api.metadata(ref, ["signature_def"]))
"""

from __future__ import annotations

from collections.abc import Sequence

from clients.protos import serving_apis_pb2 as apis
from models import contract
from serving.core_api import ServableMetadata, VersionStatus


def signature_def_map(metadata: ServableMetadata) -> apis.SignatureDefMap:
    """The version's SignatureDefs, as GetModelMetadata answers them."""
    signature_map = apis.SignatureDefMap()
    for name, blob in metadata.signature_defs.items():
        signature_map.signature_def[name].MergeFromString(blob)
    return signature_map


def metadata_response(metadata: ServableMetadata) -> apis.GetModelMetadataResponse:
    """GetModelMetadataResponse as TF Serving fills it: name, version, packed SignatureDefMap."""
    response = apis.GetModelMetadataResponse()
    response.model_spec.name = metadata.model_name
    response.model_spec.version.value = metadata.version
    packed = response.metadata[contract.SIGNATURE_DEF_FIELD]
    # Any.Pack() would name this project's copy of the message; TF Serving's clients check it.
    packed.type_url = contract.SIGNATURE_DEF_MAP_TYPE_URL
    packed.value = signature_def_map(metadata).SerializeToString()
    return response


def status_response(statuses: Sequence[VersionStatus]) -> apis.GetModelStatusResponse:
    response = apis.GetModelStatusResponse()
    for status in statuses:
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = apis.ModelVersionStatus.State.Value(status.state)
        entry.status.error_code = status.error_code
        entry.status.error_message = status.error_message
    return response
