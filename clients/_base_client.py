"""What the four clients share beyond the pure modules: settings, the I/O runtime, and the method
bodies that do not depend on the protocol (chunked ``embed``, ``wait_until_ready``).

Method bodies are coroutines written once (see ``clients/_io.py``). Each public class is a
shell, :class:`SyncShell` or :class:`AsyncShell`, over a protocol's base class
(``BaseGrpcClient``, ``BaseRestClient``) and exposes the bodies as its own methods: blocking
(``predict = blocking(BaseGrpcClient._predict)``) or awaitable
(``predict = BaseGrpcClient._predict``).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from clients._chunking import EmbedChunk, EmbedPlan, concat_rows
from clients._io import IO, AsyncIO, BlockingIO, blocking
from clients._metadata import ModelMetadata, ModelVersionStatus, is_ready
from clients._predict_arguments import PredictArguments, check_version_choice
from clients._settings import ClientSettings
from clients.errors import DeadlineExceededError, NotFoundError, TextServeError, UnavailableError
from models import contract


class BaseClient(abc.ABC):
    """Settings, the I/O runtime (``io_class``, set by the shell) and the shared bodies."""

    io_class: type[IO]

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._io = self.io_class(settings.max_concurrency)
        self._metadata_cache: dict[tuple[int | None, str | None], ModelMetadata] = {}

    # --- what each protocol does: one request, its answer parsed --------------------------
    @abc.abstractmethod
    async def _send_predict(
        self, call: PredictArguments, timeout_s: float | None
    ) -> dict[str, npt.NDArray[Any]]: ...

    @abc.abstractmethod
    async def _embed_chunk(
        self, plan: EmbedPlan, chunk: EmbedChunk, timeout_s: float | None
    ) -> npt.NDArray[np.float32]:
        """One chunk's embedding rows, checked to be one per text."""

    @abc.abstractmethod
    async def _fetch_status(
        self, version: int | None, version_label: str | None, timeout_s: float | None
    ) -> list[ModelVersionStatus]: ...

    @abc.abstractmethod
    async def _fetch_metadata(
        self, version: int | None, version_label: str | None, timeout_s: float | None
    ) -> ModelMetadata: ...

    @abc.abstractmethod
    async def _close_transport(self) -> None: ...

    # --- the shared method bodies -----------------------------------------------------------
    async def _predict(
        self,
        inputs: Mapping[str, Any],
        *,
        signature_name: str = contract.SERVING_DEFAULT,
        version: int | None = None,
        version_label: str | None = None,
        output_filter: Sequence[str] = (),
        timeout_s: float | None = None,
    ) -> dict[str, npt.NDArray[Any]]:
        """One Predict call; every output (or those in ``output_filter``) as numpy with the
        signature's dtypes, strings as object arrays of ``bytes``. Example::

            out = client.predict({"text": ["hello"]}, signature_name="preprocess")
            out["input_word_ids"].dtype  # int32
        """
        call = PredictArguments(
            inputs, signature_name, version, version_label, tuple(output_filter)
        )
        return await self._send_predict(call, timeout_s)

    async def _model_status(
        self,
        *,
        version: int | None = None,
        version_label: str | None = None,
        timeout_s: float | None = None,
    ) -> list[ModelVersionStatus]:
        """Every version's state (GetModelStatus, ``GET /v1/models/NAME``). Example::

        [s.state for s in client.model_status()]  # ["AVAILABLE"]
        """
        check_version_choice(version, version_label)
        return await self._fetch_status(version, version_label, timeout_s)

    async def _model_metadata(
        self,
        *,
        version: int | None = None,
        version_label: str | None = None,
        timeout_s: float | None = None,
    ) -> ModelMetadata:
        """Signatures with their inputs' and outputs' dtypes and shapes (GetModelMetadata,
        ``GET .../metadata``). Example::

            client.model_metadata().signatures["serving_default"].outputs["embedding"].shape
        """
        check_version_choice(version, version_label)
        metadata = await self._fetch_metadata(version, version_label, timeout_s)
        self._metadata_cache[(version, version_label)] = metadata
        return metadata

    async def _embed(
        self,
        texts: Sequence[str | bytes],
        *,
        version: int | None = None,
        version_label: str | None = None,
        timeout_s: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """Embeddings (float32 [len(texts), dim]) from serving_default, in input order.

        Lists longer than ``chunk_size`` are sent as several requests, at most
        ``max_concurrency`` in flight, and reassembled in order. Example::

            vectors = client.embed(["a sentence", "another one"])  # float32 [2, 384]
        """
        plan = EmbedPlan.make(self.settings, texts, version=version, version_label=version_label)
        if not plan.chunks:
            return np.zeros((0, 0), dtype=np.float32)
        if len(plan.chunks) == 1:
            return await self._embed_chunk(plan, plan.chunks[0], timeout_s)
        parts = await self._io.map(
            lambda chunk: self._embed_chunk(plan, chunk, timeout_s), plan.chunks
        )
        return concat_rows(parts)

    async def _wait_until_ready(
        self, timeout_s: float = 60.0, *, poll_interval_s: float = 0.2
    ) -> None:
        """Wait until a version of the model is AVAILABLE; DeadlineExceededError otherwise.

        The status is read from the body: TF Serving's REST status answers 200 before any
        version is AVAILABLE. Example::

            client.wait_until_ready(timeout_s=60)
        """
        deadline = time.monotonic() + timeout_s
        last: TextServeError | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError(
                    "DEADLINE_EXCEEDED",
                    f"model {self.settings.model_name!r} not ready after {timeout_s} s"
                    + (f" (last error: {last})" if last else ""),
                )
            try:
                if is_ready(await self._model_status(timeout_s=min(remaining, 5.0))):
                    return
            except (UnavailableError, NotFoundError, DeadlineExceededError) as exc:
                last = exc
            await self._io.sleep(min(poll_interval_s, max(0.0, deadline - time.monotonic())))

    async def _close(self) -> None:
        """Finish the calls in flight and release the connections."""
        await self._io.close()
        await self._close_transport()


class SyncShell(BaseClient):
    """The blocking clients' half: :class:`BlockingIO`, the shared methods, ``with``."""

    io_class = BlockingIO

    predict = blocking(BaseClient._predict)
    embed = blocking(BaseClient._embed)
    model_status = blocking(BaseClient._model_status)
    model_metadata = blocking(BaseClient._model_metadata)
    wait_until_ready = blocking(BaseClient._wait_until_ready)
    close = blocking(BaseClient._close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncShell(BaseClient):
    """The asyncio clients' half: :class:`AsyncIO`, the shared methods, ``async with``."""

    io_class = AsyncIO

    predict = BaseClient._predict
    embed = BaseClient._embed
    model_status = BaseClient._model_status
    model_metadata = BaseClient._model_metadata
    wait_until_ready = BaseClient._wait_until_ready
    close = BaseClient._close

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
