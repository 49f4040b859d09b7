"""How one ``embed(texts)`` call is split into requests and its answers reassembled."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from clients._grpc_messages import build_predict_request
from clients._predict_arguments import check_version_choice
from clients._rest_json import rest_model_path
from clients._settings import ClientSettings
from clients._tensor_proto import encode_texts
from clients.errors import TextServeError
from clients.protos import serving_apis_pb2 as apis
from models import contract


def plan_chunks(n: int, chunk_size: int) -> list[slice]:
    """Contiguous slices of at most ``chunk_size`` rows covering ``range(n)`` in order.

    >>> plan_chunks(5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    return [slice(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def concat_rows(parts: Sequence[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """Reassemble chunk results in plan order."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


@dataclasses.dataclass(frozen=True)
class EmbedChunk:
    texts: npt.NDArray[np.object_]  # UTF-8 bytes, a contiguous slice of the caller's list


@dataclasses.dataclass(frozen=True)
class EmbedPlan:
    """How one ``embed(texts)`` call is split: contiguous chunks, reassembled in this order."""

    model_name: str
    version: int | None
    version_label: str | None
    chunks: tuple[EmbedChunk, ...]

    @classmethod
    def make(
        cls,
        settings: ClientSettings,
        texts: Sequence[str | bytes],
        *,
        version: int | None = None,
        version_label: str | None = None,
    ) -> EmbedPlan:
        check_version_choice(version, version_label)
        encoded = encode_texts(texts)
        chunks = tuple(
            EmbedChunk(encoded[part]) for part in plan_chunks(len(encoded), settings.chunk_size)
        )
        return cls(settings.model_name, version, version_label, chunks)

    @property
    def rest_path(self) -> str:
        return (
            rest_model_path(self.model_name, version=self.version, version_label=self.version_label)
            + ":predict"
        )

    def grpc_request(self, chunk: EmbedChunk) -> apis.PredictRequest:
        return build_predict_request(
            self.model_name,
            {contract.TEXT: chunk.texts},
            signature_name=contract.SERVING_DEFAULT,
            version=self.version,
            version_label=self.version_label,
            output_filter=(contract.EMBEDDING,),
        )


def embedding_rows(outputs: Mapping[str, npt.NDArray[Any]], n: int) -> npt.NDArray[np.float32]:
    """The ``embedding`` output of serving_default, checked to hold one row per text."""
    try:
        emb = outputs[contract.EMBEDDING]
    except KeyError:
        raise TextServeError(
            "DATA_LOSS", f"response has no {contract.EMBEDDING!r} output: {sorted(outputs)}"
        ) from None
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise TextServeError("DATA_LOSS", f"expected {n} embedding rows, got shape {emb.shape}")
    return emb
