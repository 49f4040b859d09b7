"""``ServingCore``: the engine behind ``serving.core_api.InferenceCore``.

resolve (model manager) -> enqueue (batcher) -> run (TF worker process) -> split the outputs
back; what TF Serving answers around that is ``serving.tf_serving_api``'s. The TF workers
are a ``WorkerPool`` (blue/green across reloads, optional hot standby); when the active worker
dies and no standby takes over, in-flight requests fail with UNAVAILABLE, every version goes
back to LOADING, a new worker is started and the versions are reloaded and warmed before they
are AVAILABLE again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from serving.batcher import Batcher, BatcherSettings
from serving.config_files import load_model_config_file, parse_model_server_config
from serving.core_api import (
    UNKNOWN_MODEL,
    ModelRef,
    RequestScope,
    Servable,
    VersionState,
    VersionStatus,
)
from serving.errors import Code, ServingError
from serving.model_manager import ModelManager, ServableVersion
from serving.served_signature import ServedSignature, ValidatedInputs
from serving.server_config import ConfigError, ServerConfig
from serving.serving_metrics import ServingMetrics
from serving.worker_pool import WorkerPool, WorkerSettings

_LOG = logging.getLogger("textserve.core")


class ServingCore:
    """Implements ``InferenceCore``. Create, ``await start()``, serve, ``await stop()``.

    Example::

        core = ServingCore(config)
        await core.start()
        api = TfServingApi(core)  # what the fronts call
        ...
        await core.stop()
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = ServingMetrics()
        self._pool = WorkerPool(
            settings=WorkerSettings(
                num_threads=config.batching.num_batch_threads,
                intra_op=config.intra_op_parallelism,
                inter_op=config.inter_op_parallelism,
                warmup=config.enable_model_warmup,
            ),
            standby=config.worker_standby,
            on_lost=self._on_worker_lost,
            metrics=self.metrics,
        )
        self._manager = ModelManager(
            load=self._load,
            unload=self._unload,
            metrics=self.metrics,
            allow_labels_for_unavailable=config.allow_version_labels_for_unavailable_models,
        )
        b = config.batching
        self._batcher = Batcher(
            run=self._run,
            settings=BatcherSettings(
                enabled=config.enable_batching,
                max_batch_size=b.max_batch_size,
                batch_timeout_s=b.batch_timeout_micros / 1e6,
                max_enqueued_batches=b.max_enqueued_batches,
                slots=b.num_batch_threads,
                allowed_batch_sizes=b.allowed_batch_sizes,
                max_queued_requests=config.limits.max_queued_requests,
                length_grouping=config.length_grouping,
                max_batch_tokens=config.max_batch_tokens,
            ),
            metrics=self.metrics,
        )
        self._draining = False
        self._stopping = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._restarting: asyncio.Task[None] | None = None
        self.start_error: ServingError | None = None  # the initial configuration failed
        self._start_failed = asyncio.Event()

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the worker and begin loading the configured models; returns at once.

        The worker imports TensorFlow and loads models while the caller starts the fronts
        (which do not import TensorFlow: their ports listen within about a second).
        """
        self._pool.spawn_first()
        self._tasks.append(asyncio.get_running_loop().create_task(self._initial_load()))

    async def _initial_load(self) -> None:
        try:
            await self._pool.wait_first()
        except ServingError as exc:
            # Its death handler starts the supervised restart; load the models after it.
            _LOG.error(
                "worker failed to start",
                extra={"event": "worker_start_failed", "error": exc.message},
            )
            while self._restarting is None:
                await asyncio.sleep(0.1)
            await self._restarting
        try:
            await self._manager.apply_config(self.config.models)
        except ServingError as exc:
            self.start_error = exc
            self._start_failed.set()
            return
        if self.config.file_system_poll_wait_seconds > 0:
            self._tasks.append(asyncio.get_running_loop().create_task(self._poll_filesystem()))
        if self.config.model_config_file and self.config.model_config_file_poll_wait_seconds > 0:
            self._tasks.append(asyncio.get_running_loop().create_task(self._poll_config_file()))

    async def start_failed(self) -> None:
        """Returns if loading the configured models failed the configuration (``start_error``)."""
        await self._start_failed.wait()

    async def wait_until_serving(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_serving():
                return True
            await asyncio.sleep(0.05)
        return self.is_serving()

    def begin_drain(self) -> None:
        """Refuse new requests (UNAVAILABLE); in-flight ones continue."""
        if not self._draining:
            self._draining = True
            _LOG.info("draining", extra={"event": "drain_started", "inflight": self._inflight})

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        self._stopping = True
        self._draining = True
        for task in self._tasks + ([self._restarting] if self._restarting else []):
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._pool.stop()

    @property
    def worker_pid(self) -> int | None:
        return self._pool.active_pid

    @property
    def inflight(self) -> int:
        return self._inflight

    # --- worker ----------------------------------------------------------------------------

    def _on_worker_lost(self) -> None:
        """The active worker died and no hot standby could take over: reload everything."""
        if self._stopping:
            return
        self._restarting = asyncio.get_running_loop().create_task(self._restart_worker())

    async def _restart_worker(self) -> None:
        versions = self._manager.mark_all_loading()
        await self._pool.restart()
        await self._manager.reload(versions)
        _LOG.info("worker restarted", extra={"event": "worker_restarted", "pid": self.worker_pid})

    async def _load(
        self, key: tuple[str, int], path: str, keep: Mapping[tuple[str, int], str]
    ) -> int:
        return await self._pool.load(key, path, keep=keep)

    async def _unload(self, key: tuple[str, int]) -> None:
        await self._pool.unload(key)

    def _run(
        self,
        key: tuple[str, int],
        signature: str,
        inputs: dict[str, np.ndarray],
        *,
        count_tokens: bool,
    ) -> asyncio.Future[tuple[dict[str, np.ndarray], float]]:
        return self._pool.run(key, signature, inputs, count_tokens=count_tokens)

    # --- polling -------------------------------------------------------------------------

    async def _poll_filesystem(self) -> None:
        while True:
            await asyncio.sleep(self.config.file_system_poll_wait_seconds)
            try:
                await self._manager.poll()
            except Exception:
                _LOG.exception("file system poll failed", extra={"event": "poll_failed"})

    async def _poll_config_file(self) -> None:
        last: tuple[object, ...] | None = tuple(self.config.models)
        last_error = ""
        while True:
            await asyncio.sleep(self.config.model_config_file_poll_wait_seconds)
            try:
                models = load_model_config_file(self.config.model_config_file)
                if tuple(models) != last:
                    if not last_error:  # not again while a failed change is retried
                        _LOG.info(
                            "config file changed",
                            extra={"event": "config_reloaded", "models": [m.name for m in models]},
                        )
                    # A label on a version not loaded yet fails; the next poll tries again.
                    await self._manager.apply_config(models)
                    last = tuple(models)
            except (ConfigError, ServingError) as exc:
                if str(exc) != last_error:  # once per distinct error, not once per poll
                    last_error = str(exc)
                    _LOG.error(
                        "config file reload failed",
                        extra={"event": "config_reload_failed", "error": last_error},
                    )
                continue
            last_error = ""

    # --- InferenceCore ---------------------------------------------------------------------

    @contextlib.contextmanager
    def request_scope(self, *, api: str) -> Iterator[RequestScope]:
        started = time.monotonic()
        scope = RequestScope(api=api)
        code = Code.OK
        self._inflight += 1
        self._idle.clear()
        try:
            if self._draining:
                raise ServingError(
                    Code.UNAVAILABLE, "the server is shutting down; retry on another replica"
                )
            yield scope
        except ServingError as exc:
            code = exc.code
            raise
        except asyncio.CancelledError:
            code = Code.CANCELLED
            raise
        except Exception as exc:  # a bug must still answer as an error, not kill the front
            code = Code.INTERNAL
            _LOG.exception("request failed", extra={"event": "request_failed", "api": api})
            raise ServingError(Code.INTERNAL, f"internal error: {exc}") from exc
        finally:
            elapsed = time.monotonic() - started
            self.metrics.requests.labels(scope.model, api, code.name).inc()
            self.metrics.request_latency.labels(scope.model, api).observe(elapsed)
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()
            _LOG.debug(
                "request",
                extra={
                    "event": "request",
                    "model": scope.model,
                    "api": api,
                    "code": code.name,
                    "seconds": round(elapsed, 6),
                },
            )

    def resolve(self, model: ModelRef) -> ServableVersion:
        return self._manager.resolve(model)

    async def run(
        self,
        servable: Servable,
        signature: ServedSignature,
        inputs: ValidatedInputs,
        *,
        deadline: float | None,
        count_tokens: bool = False,
    ) -> Mapping[str, np.ndarray]:
        assert isinstance(servable, ServableVersion), "resolve() makes servables"
        if deadline is None:
            deadline = time.monotonic() + self.config.limits.default_deadline_ms / 1000
        if deadline <= time.monotonic():
            raise ServingError(
                Code.DEADLINE_EXCEEDED, "deadline exceeded before the request was queued"
            )
        servable.acquire()
        try:
            return await self._batcher.submit(
                key=servable.key,
                signature=signature.name,
                inputs=inputs.inputs,
                rows=inputs.rows,
                text_length=inputs.text_length,
                deadline=deadline,
                batchable=signature.batchable,
                max_tokens=servable.max_seq_length,
                skips_padding=servable.skips_padding,
                count_tokens=count_tokens,
            )
        finally:
            servable.release()

    def model_status(self, model: ModelRef) -> Sequence[VersionStatus]:
        return self._manager.status(model)

    async def reload_config(self, model_server_config: bytes) -> None:
        try:
            models = parse_model_server_config(model_server_config, binary=True)
        except ConfigError as exc:
            raise ServingError(Code.INVALID_ARGUMENT, str(exc)) from exc
        if not models:
            raise ServingError(Code.INVALID_ARGUMENT, "the new ModelServerConfig lists no models")
        await self._manager.apply_config(models)
        failed = [
            f"{name}: {st.error_message}"
            for name in (m.name for m in models)
            for st in self._manager.status(ModelRef(name))
            if st.error_code
        ]
        if failed and not all(
            any(st.state == VersionState.AVAILABLE for st in self._manager.status(ModelRef(m.name)))
            for m in models
        ):
            raise ServingError(Code.UNKNOWN, "some models failed to load: " + "; ".join(failed))

    def model_names(self) -> Sequence[str]:
        return self._manager.model_names()

    def is_serving(self) -> bool:
        return not self._draining and self._pool.alive and self._manager.all_available()

    def record_request(self, *, model: str, api: str, code: Code) -> None:
        """Count a request a front rejected before it reached the core (bad wire format, too
        big); names the server does not serve count as ``UNKNOWN_MODEL``.
        """
        label = model if model in self._manager.model_names() else UNKNOWN_MODEL
        self.metrics.requests.labels(label, api, code.name).inc()

    def render_metrics(self) -> tuple[bytes, str]:
        return self.metrics.render()
