"""The types between the fronts, TF Serving's semantics and the engine.

The fronts decode the wire into a ``PredictCall`` (and the other calls of
``serving.tf_serving_api.TfServingApi``), which decides what TF Serving would answer and runs
the work on an ``InferenceCore`` (the engine: model manager, batcher, TF worker).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from serving.errors import Code

if TYPE_CHECKING:
    from serving.served_signature import ServedSignature, ValidatedInputs


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """Which servable: a version number, a version label, or neither (latest available)."""

    name: str
    version: int | None = None
    label: str | None = None


class CheckedInputs(Mapping[str, np.ndarray]):
    """Decoded request inputs that passed the wire checks, made only by ``InputChecks``.

    The checks every input needs whatever the model (non-empty, rows per request, UTF-8 and
    characters per text) live in ``InputChecks.check_input`` alone; the core serves only
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


# Decodes a request's tensors once the signature they run on is known.
SignatureDecoder = Callable[["ServedSignature"], CheckedInputs]


@dataclasses.dataclass(frozen=True)
class PredictCall:
    """A predict request as the front decoded it.

    ``decode`` turns the request's tensors into ``CheckedInputs`` (through the front's codec)
    once the signature is known: REST JSON needs the signature's dtypes to read numbers and
    strings, a TensorProto ignores it. ``exact_dtypes``: the wire carries dtypes (TensorProto),
    so they must equal the signature's, as in TF Serving; JSON numbers are converted when exact.
    """

    model: ModelRef
    signature_name: str  # "" = TF Serving's default signature
    decode: SignatureDecoder
    exact_dtypes: bool
    output_filter: Sequence[str] = ()
    deadline: float | None = None  # time.monotonic() value; None = the server's default
    api: str = "grpc"  # metrics label only: grpc | rest | openai
    # Also count each text's tokens (PredictResult.token_counts) in the same worker call: the
    # model's preprocess signature on the text the signature embeds (its prompt included).
    count_tokens: bool = False


# The extra output of a batch run with count_tokens (int64 [batch], tokens per text); taken
# out of the outputs into PredictResult.token_counts before anything is answered.
TOKEN_COUNTS = "__token_counts__"


@dataclasses.dataclass(frozen=True)
class PredictResult:
    model_name: str
    version: int
    signature_name: str
    outputs: Mapping[str, np.ndarray]
    signature_names: frozenset[str] = frozenset()  # every signature of the version that ran
    token_counts: np.ndarray | None = None  # int64 [batch] when the call counted tokens


class VersionState(enum.StrEnum):
    """TF Serving's ServableState, as GetModelStatus names it."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """One version's state, as GetModelStatus reports it."""

    version: int
    state: VersionState
    error_code: int = 0  # serving.errors.Code grpc value
    error_message: str = ""


@dataclasses.dataclass(frozen=True)
class ServableMetadata:
    """What GetModelMetadata answers about one version (``ModelMetadata`` on the client side)."""

    model_name: str
    version: int
    # tensorflow.serving SignatureDefMap-compatible: serialized tensorflow.SignatureDef per name
    signature_defs: Mapping[str, bytes]


class Servable(Protocol):
    """One AVAILABLE model version, as ``InferenceCore.resolve`` returns it."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def specs(self) -> Mapping[str, ServedSignature]: ...

    @property
    def signature_defs(self) -> Mapping[str, bytes]: ...


UNKNOWN_MODEL = "_unknown"  # the metrics' model label of names the server does not serve


@dataclasses.dataclass
class RequestScope:
    """One request's metrics labels; ``model`` stays ``UNKNOWN_MODEL`` until the name resolves,
    so names a client invents never become label values."""

    api: str
    model: str = UNKNOWN_MODEL


class InferenceCore(Protocol):
    """The engine; raises ``serving.errors.ServingError`` for every failure."""

    def request_scope(self, *, api: str) -> contextlib.AbstractContextManager[RequestScope]:
        """Around one request: refuses it while draining, counts it in flight and in the
        metrics (with the code of the ``ServingError`` it ends with)."""
        ...

    def resolve(self, model: ModelRef) -> Servable:
        """The AVAILABLE version a request runs on (NOT_FOUND / UNAVAILABLE otherwise)."""
        ...

    async def run(
        self,
        servable: Servable,
        signature: ServedSignature,
        inputs: ValidatedInputs,
        *,
        deadline: float | None,
        count_tokens: bool = False,
    ) -> Mapping[str, np.ndarray]:
        """Queue the checked inputs for the worker (batched) and return the outputs (with
        ``TOKEN_COUNTS`` when ``count_tokens``)."""
        ...

    def model_status(self, model: ModelRef) -> Sequence[VersionStatus]: ...

    def model_names(self) -> Sequence[str]:
        """Every configured model name, sorted (whatever the state of its versions)."""
        ...

    async def reload_config(self, model_server_config: bytes) -> None:
        """Apply a serialized tensorflow.serving.ModelServerConfig (HandleReloadConfigRequest)."""
        ...

    def is_serving(self) -> bool:
        """True while not draining and every configured model has an AVAILABLE version."""
        ...

    def record_request(self, *, model: str, api: str, code: Code) -> None:
        """Count in METRIC_REQUESTS a request a front rejected before it reached the core.

        (A bad wire format, a body too big.) A model name the server does not serve is
        counted as ``UNKNOWN_MODEL``.
        """
        ...

    def render_metrics(self) -> tuple[bytes, str]:
        """Prometheus text exposition of the server's registry: (body, content type)."""
        ...
