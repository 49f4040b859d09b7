"""``WorkerPool``: the TF worker processes behind the core, blue/green.

TensorFlow does not give back the memory of an unloaded SavedModel: one worker that loads
every new version grew ~47 MB per reload without end (1.4 -> 2.3 GB over 15 reloads) until
the kernel killed it. So a worker never keeps running after a version it held was replaced:

- A load that would leave the active worker holding a version nobody wants any more (a new
  version replacing an old one) goes to a fresh worker instead (the standby, or a new
  process), together with the versions that stay served; once loaded and warmed up it
  becomes the active worker. Requests already running finish on the old worker, which is
  stopped when none is left and every version it held is unloaded or served by a newer one.
  Its memory goes back to the system with the process.
- Loads that replace nothing (the first version of a model, a reload after a crash) go to
  the active worker in place: nothing to free.

With ``standby`` on, a second worker mirrors the active one's loaded versions (TensorFlow
imported, every version loaded and warmed up). When the active worker dies it is promoted at
once (requests in flight on the dead worker still fail with UNAVAILABLE) and a new standby is
started in the background; a version reload uses it too, so rollouts do not wait for a TF
import. It costs a second worker's memory (TensorFlow + every served model) and the CPU of
loading every version twice. Without it, a dead worker is replaced by a new process and
every version is loaded again (about half a minute for MiniLM on 2 busy cores).

Example::

    pool = WorkerPool(settings=WorkerSettings(num_threads=1), standby=True, on_lost=restart)
    pool.spawn_first()
    await pool.wait_first()
    await pool.load(("m", 1), "/models/m/1", keep={("m", 1): "/models/m/1"})
    outputs, seconds = await pool.run(("m", 1), "serving_default", {"text": arr})
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping

import numpy as np

from serving.errors import Code, ServingError
from serving.serving_metrics import ServingMetrics
from serving.tf_worker_main import WorkerCommand
from serving.worker_process import WorkerProcess

_LOG = logging.getLogger("textserve.worker")

Key = tuple[str, int]


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    num_threads: int = 1
    intra_op: int = 0
    inter_op: int = 0
    warmup: bool = True


@dataclasses.dataclass(eq=False)
class _Worker:
    process: WorkerProcess
    keys: dict[Key, str] = dataclasses.field(default_factory=dict)  # loaded version -> path
    inflight: int = 0
    ready: bool = False


class WorkerPool:
    """Active worker, older workers draining, optional hot standby. See the module docstring."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        standby: bool,
        on_lost: Callable[[], None],
        metrics: ServingMetrics,
    ) -> None:
        self._settings = settings
        self._standby_wanted = standby
        self._on_lost = on_lost
        self._metrics = metrics
        self._workers: list[_Worker] = []  # oldest first; the last one is active
        self._standby: _Worker | None = None
        self._standby_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one load (or generation switch) at a time
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # --- introspection -----------------------------------------------------------------

    @property
    def active_pid(self) -> int | None:
        active = self._active()
        return active.process.pid if active is not None and active.process.alive else None

    @property
    def standby_pid(self) -> int | None:
        sb = self._standby
        return sb.process.pid if sb is not None and sb.ready and sb.process.alive else None

    @property
    def alive(self) -> bool:
        active = self._active()
        return active is not None and active.ready and active.process.alive

    def _active(self) -> _Worker | None:
        return self._workers[-1] if self._workers else None

    # --- lifecycle -----------------------------------------------------------------------

    def _new_process(self) -> _Worker:
        s = self._settings
        holder: list[_Worker] = []
        process = WorkerProcess(
            num_threads=s.num_threads,
            intra_op=s.intra_op,
            inter_op=s.inter_op,
            on_exit=lambda code: self._on_death(holder[0], code),
        )
        worker = _Worker(process)
        holder.append(worker)
        return worker

    def spawn_first(self) -> None:
        """Start the first worker; it imports TensorFlow while the caller starts the fronts."""
        worker = self._new_process()
        worker.process.spawn()
        self._workers.append(worker)

    async def wait_first(self, timeout: float = 180.0) -> None:
        worker = self._workers[-1]
        await worker.process.wait_ready(timeout)
        worker.ready = True
        self._log_active(worker)
        self._ensure_standby()

    async def restart(self) -> None:
        """After the active worker died with no hot standby: a new active worker, empty (or
        holding what the standby had loaded); the caller loads every version again.
        """
        backoff = 0.5
        while not self._stopping:
            sb = await self._take_standby()
            if sb is not None:
                self._workers.append(sb)
                self._log_active(sb)
                break
            worker = self._new_process()
            try:
                await worker.process.start()
            except ServingError as exc:
                _LOG.error(
                    "worker restart failed",
                    extra={"event": "worker_restart_failed", "error": exc.message},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            worker.ready = True
            self._workers.append(worker)
            self._log_active(worker)
            break
        self._ensure_standby()

    async def stop(self) -> None:
        self._stopping = True
        if self._standby_task is not None:
            self._standby_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._standby_task
        workers = self._workers + ([self._standby] if self._standby else [])
        self._workers, self._standby = [], None
        await asyncio.gather(*(w.process.stop() for w in workers), return_exceptions=True)
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _log_active(self, worker: _Worker) -> None:
        # "worker_started" names the worker requests go to (tests and operators follow it).
        _LOG.info("worker started", extra={"event": "worker_started", "pid": worker.process.pid})

    # --- loads and unloads -------------------------------------------------------------

    async def load(self, key: Key, path: str, *, keep: Mapping[Key, str]) -> int:
        """Load ``key``; ``keep``: every version that stays served with it (``key`` included
        or not). Returns the warmup records replayed. Raises ServingError.
        """
        async with self._lock:
            active = self._active()
            if active is None or not active.ready or not active.process.alive:
                raise ServingError(Code.UNAVAILABLE, "the TF worker is restarting; retry shortly")
            if active.keys.get(key) == path:
                return 0  # loaded already (a standby promoted after a crash held it)
            stale = set(active.keys) - set(keep) - {key}
            if not stale:
                records = await self._load_into(active, key, path)
                self._sync_standby()
                return records
            return await self._switch(active, key, path, keep)

    async def _load_into(self, worker: _Worker, key: Key, path: str) -> int:
        records = int(
            await worker.process.call(WorkerCommand.LOAD, key, path, self._settings.warmup)
        )
        worker.keys[key] = path
        return records

    async def _switch(self, active: _Worker, key: Key, path: str, keep: Mapping[Key, str]) -> int:
        """Blue/green: load into a fresh worker, make it active, retire the old one."""
        nxt = await self._take_standby()
        if nxt is None:
            nxt = self._new_process()
            try:
                await nxt.process.start()
            except ServingError as exc:
                # Not UNAVAILABLE: that would read as "the active worker died mid-load".
                raise ServingError(
                    Code.INTERNAL, f"could not start a new TF worker for {key}: {exc.message}"
                ) from exc
            nxt.ready = True
        try:
            for k in [k for k in keep if k != key and k in active.keys]:
                if nxt.keys.get(k) != active.keys[k]:
                    await self._load_into(nxt, k, active.keys[k])
            records = await self._load_into(nxt, key, path)
        except ServingError:
            # The new version is broken (or the new worker died): the active one serves on.
            self._stop_later(nxt)
            self._ensure_standby()
            raise
        self._workers.append(nxt)
        self._log_active(nxt)
        _LOG.info(
            "worker switched",
            extra={
                "event": "worker_switched",
                "pid": nxt.process.pid,
                "old_pid": active.process.pid,
                "version": list(key),
            },
        )
        self._retire_drained()
        self._ensure_standby()
        return records

    async def unload(self, key: Key) -> None:
        active = self._active()
        for worker in list(self._workers):
            if key not in worker.keys:
                continue
            try:
                if worker is active and worker.process.alive:
                    await worker.process.call(WorkerCommand.UNLOAD, key)
                # An older worker is stopped once drained: no need to unload from it first.
            finally:
                worker.keys.pop(key, None)
        sb = self._standby
        if sb is not None and key in sb.keys:
            sb.keys.pop(key, None)
            if sb.process.alive:
                with contextlib.suppress(ServingError):
                    await sb.process.call(WorkerCommand.UNLOAD, key)
        self._retire_drained()

    def run(
        self,
        key: Key,
        signature: str,
        inputs: dict[str, np.ndarray],
        *,
        count_tokens: bool = False,
    ) -> asyncio.Future[tuple[dict[str, np.ndarray], float]]:
        """Send the batch to the worker now; the future holds (outputs, seconds inside TF).
        ``count_tokens``: the outputs also hold ``TOKEN_COUNTS`` (see tf_worker_main)."""
        # The newest live worker holding the version: old workers only finish what they hold.
        worker = next(
            (w for w in reversed(self._workers) if key in w.keys and w.process.alive), None
        )
        if worker is None:
            raise ServingError(Code.UNAVAILABLE, "the TF worker is restarting; retry shortly")
        running = worker.process.send(WorkerCommand.RUN, key, signature, inputs, count_tokens)
        worker.inflight += 1

        def done(_: asyncio.Future[tuple[dict[str, np.ndarray], float]]) -> None:
            worker.inflight -= 1
            if worker is not self._active():
                self._retire_drained()

        running.add_done_callback(done)
        return running

    def _retire_drained(self) -> None:
        """Stop older workers that run nothing and hold nothing a newer one does not."""
        for i, worker in enumerate(self._workers[:-1]):
            newer = self._workers[i + 1 :]
            covered = all(any(k in w.keys for w in newer) for k in worker.keys)
            if worker.inflight == 0 and covered:
                self._workers.remove(worker)
                _LOG.info(
                    "worker retired",
                    extra={"event": "worker_retired", "pid": worker.process.pid},
                )
                self._stop_later(worker)

    def _stop_later(self, worker: _Worker) -> None:
        task = asyncio.get_running_loop().create_task(worker.process.stop())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- standby -------------------------------------------------------------------------

    async def _take_standby(self) -> _Worker | None:
        """The standby, once its TF import is done (a half-started one is awaited)."""
        if self._standby_task is not None and not self._standby_task.done():
            # Mid-start or mid-load: let it finish (it loads what the caller needs anyway;
            # a load cut short would still happen in the worker, unrecorded).
            with contextlib.suppress(Exception):
                await asyncio.shield(self._standby_task)
        sb, self._standby = self._standby, None
        if sb is None:
            return None
        if not sb.process.alive:
            return None
        if not sb.ready:
            try:
                await sb.process.wait_ready()
            except ServingError:
                return None
            sb.ready = True
        return sb

    def _ensure_standby(self) -> None:
        if not self._standby_wanted or self._stopping:
            return
        if self._standby is None:
            self._standby = self._new_process()
            self._standby.process.spawn()
        self._sync_standby()

    def _sync_standby(self) -> None:
        """Load into the standby whatever the active worker holds and it does not."""
        if self._standby is None or self._stopping:
            return
        if self._standby_task is not None and not self._standby_task.done():
            return  # the running sync loops until the standby matches
        self._standby_task = asyncio.get_running_loop().create_task(self._fill_standby())

    async def _fill_standby(self) -> None:
        sb = self._standby
        if sb is None:
            return
        try:
            if not sb.ready:
                await sb.process.wait_ready()
                sb.ready = True
            while True:
                active = self._active()
                if active is None or self._standby is not sb:
                    return
                missing = [(k, p) for k, p in active.keys.items() if sb.keys.get(k) != p]
                if not missing:
                    break
                key, path = missing[0]
                await self._load_into(sb, key, path)
            if not sb.keys:
                return  # nothing to mirror yet (the active worker is still loading)
            _LOG.info(
                "standby ready",
                extra={"event": "standby_ready", "pid": sb.process.pid, "versions": len(sb.keys)},
            )
        except ServingError as exc:
            _LOG.error("standby failed", extra={"event": "standby_failed", "error": exc.message})

    def _standby_is_hot(self, dead: _Worker) -> bool:
        sb = self._standby
        return (
            sb is not None
            and sb.ready
            and sb.process.alive
            and all(sb.keys.get(k) == p for k, p in dead.keys.items())
        )

    # --- deaths --------------------------------------------------------------------------

    def _on_death(self, worker: _Worker, exitcode: int | None) -> None:
        if self._stopping:
            return
        self._metrics.worker_restarts.inc()
        if worker is self._standby:
            self._standby = None
            # Not at once: a standby that dies while starting (out of memory, say) would loop.
            loop = asyncio.get_running_loop()
            loop.call_later(5.0, self._ensure_standby)
            return
        if worker not in self._workers:
            return
        was_active = worker is self._active()
        self._workers.remove(worker)
        if not was_active:
            return  # an old worker: its versions live on in newer ones
        if self._standby_is_hot(worker):
            sb = self._standby
            assert sb is not None
            if self._standby_task is not None:
                self._standby_task.cancel()
            self._standby = None
            self._workers.append(sb)
            _LOG.warning(
                "standby promoted",
                extra={"event": "standby_promoted", "pid": sb.process.pid},
            )
            self._log_active(sb)
            self._ensure_standby()
            return
        self._on_lost()
