"""The one interface both fronts (gRPC, REST) call: request logic is written once, behind it.

The engine (model manager, batcher, TF worker) implements ``InferenceCore``; the fronts only
decode the wire format into ``PredictCall``, call the core, and encode the result or the
``ServingError`` it raised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np

from serving.errors import Code


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """Which servable: a version number, a version label, or neither (latest available)."""

    name: str
    version: int | None = None
    label: str | None = None


class CheckedInputs(Mapping[str, np.ndarray]):
    """Decoded request inputs that passed the wire checks, made only by ``TensorCodec``.

    The checks every input needs whatever the model (non-empty, rows per request, UTF-8 and
    characters per text) live in ``TensorCodec.check_input`` alone; the core serves only
    inputs of this type, so no front can skip them and the core does not repeat them.
    Strings are ``object`` arrays of bytes.
    """

    __slots__ = ("_arrays",)

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._arrays = dict(arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


@dataclasses.dataclass(frozen=True)
class PredictCall:
    """A decoded predict request; ``inputs`` come from ``TensorCodec`` (see ``CheckedInputs``)."""

    model: ModelRef
    signature_name: str
    inputs: CheckedInputs
    output_filter: Sequence[str] = ()
    deadline: float | None = None  # time.monotonic() value; None = the server's default
    api: str = "grpc"  # metrics label: grpc | rest | openai


@dataclasses.dataclass(frozen=True)
class PredictResult:
    model_name: str
    version: int
    signature_name: str
    outputs: Mapping[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """One version's state, as GetModelStatus reports it.

    ``state``: START / LOADING / AVAILABLE / UNLOADING / END.
    """

    version: int
    state: str
    error_code: int = 0  # serving.errors.Code grpc value
    error_message: str = ""


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    model_name: str
    version: int
    # tensorflow.serving SignatureDefMap-compatible: serialized tensorflow.SignatureDef per name
    signature_defs: Mapping[str, bytes]


class InferenceCore(Protocol):
    """Implemented by the engine; raises ``serving.errors.ServingError`` for every failure."""

    async def predict(self, call: PredictCall) -> PredictResult: ...

    def model_status(self, model: ModelRef) -> Sequence[VersionStatus]: ...

    def model_metadata(self, model: ModelRef) -> ModelMetadata: ...

    async def reload_config(self, model_server_config: bytes) -> None:
        """Apply a serialized tensorflow.serving.ModelServerConfig (HandleReloadConfigRequest)."""
        ...

    def is_serving(self) -> bool:
        """True while not draining and every configured model has an AVAILABLE version."""
        ...

    def signature_names(self, model: ModelRef) -> Sequence[str]: ...

    def record_request(self, *, model: str, api: str, code: Code) -> None:
        """Count in METRIC_REQUESTS a request a front rejected before ``predict``.

        (A bad wire format, a body too big: the core never saw it.)
        """
        ...

    def render_metrics(self) -> tuple[bytes, str]:
        """Prometheus text exposition of the server's registry: (body, content type)."""
        ...
