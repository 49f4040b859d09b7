"""Parent-side handle of the TF worker process: spawn, call over a pipe, notice its death.

Replies are read on the event loop itself (``loop.add_reader`` on the pipe) instead of a
reader thread: one thread hop less per request, which is most of the IPC cost at batch 1.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Callable
from typing import Any

from serving.errors import Code, ServingError
from serving.tf_worker_main import WorkerCommand, WorkerEvent, worker_main

_LOG = logging.getLogger("textserve.worker")


class WorkerProcess:
    """One spawned worker. ``on_exit(exitcode)`` runs on the loop when it dies unexpectedly.

    Example::

        worker = WorkerProcess(num_threads=2, on_exit=lambda code: ...)
        await worker.start()
        await worker.call(WorkerCommand.LOAD, ("m", 1), "/models/m/1", True)
        outputs, seconds = await worker.call(
            WorkerCommand.RUN, ("m", 1), "serving_default", {"text": arr}, False
        )
    """

    def __init__(
        self,
        *,
        num_threads: int,
        intra_op: int = 0,
        inter_op: int = 0,
        on_exit: Callable[[int | None], None] | None = None,
    ) -> None:
        self._settings = {"num_threads": num_threads, "intra_op": intra_op, "inter_op": inter_op}
        self._on_exit = on_exit
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[int] | None = None
        self._stopping = False
        self._dead = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and not self._dead

    async def start(self, timeout: float = 180.0) -> None:
        self.spawn()
        await self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start the process; it imports TensorFlow while the caller does other work."""
        self._loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=worker_main,
            args=(child_conn, self._settings),
            name="textserve-tf-worker",
            daemon=True,
        )
        proc.start()
        child_conn.close()  # so the parent sees EOF when the worker dies
        self._proc, self._conn = proc, parent_conn
        self._ready = self._loop.create_future()
        self._loop.add_reader(parent_conn.fileno(), self._on_readable)
        self._loop.add_reader(proc.sentinel, self._on_sentinel)

    async def wait_ready(self, timeout: float = 180.0) -> None:
        assert self._ready is not None, "spawn() first"
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError as exc:
            self.kill()
            raise ServingError(
                Code.UNAVAILABLE, f"the TF worker did not start within {timeout:.0f} s"
            ) from exc

    async def call(self, kind: WorkerCommand, *args: Any) -> Any:
        """Send one command and await its reply; raises ServingError (UNAVAILABLE if the worker
        dies).
        """
        return await self.send(kind, *args)

    def send(self, kind: WorkerCommand, *args: Any) -> asyncio.Future[Any]:
        """Send one command now; the future holds its reply (or the ServingError)."""
        if self._dead or self._conn is None or self._loop is None:
            raise ServingError(Code.UNAVAILABLE, "the TF worker is restarting; retry shortly")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[req_id] = fut
        try:
            self._conn.send((kind, req_id, *args))
        except (BrokenPipeError, OSError) as exc:
            self._pending.pop(req_id, None)
            raise ServingError(
                Code.UNAVAILABLE, "the TF worker is restarting; retry shortly"
            ) from exc
        return fut

    def _on_readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                req_id, ok, payload = conn.recv()
                if req_id is WorkerEvent.READY:
                    if self._ready is not None and not self._ready.done():
                        self._ready.set_result(payload)
                    continue
                fut = self._pending.pop(req_id, None)
                if fut is None or fut.done():
                    continue
                if ok:
                    fut.set_result(payload)
                else:
                    code, message = payload
                    fut.set_exception(ServingError(code, message))
        except (EOFError, OSError):
            self._handle_death()

    def _on_sentinel(self) -> None:
        self._handle_death()

    def _handle_death(self) -> None:
        if self._dead:
            return
        self._dead = True
        loop, conn, proc = self._loop, self._conn, self._proc
        if loop is not None and conn is not None:
            loop.remove_reader(conn.fileno())
            if proc is not None:
                loop.remove_reader(proc.sentinel)
        if proc is not None:
            proc.join(timeout=1.0)
        code = proc.exitcode if proc is not None else None
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        err = ServingError(
            Code.UNAVAILABLE,
            f"the TF worker process died ({how}) while this request was in flight; it is being "
            f"restarted",
        )
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(err)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                ServingError(Code.UNAVAILABLE, f"the TF worker died while starting ({how})")
            )
        if conn is not None:
            conn.close()
        if not self._stopping:
            _LOG.error("worker died", extra={"event": "worker_died", "how": how, "pid": self.pid})
            if self._on_exit is not None:
                self._on_exit(code)

    def kill(self) -> None:
        if self._proc is not None and self._proc.pid is not None and self._proc.exitcode is None:
            try:
                os.kill(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to finish its runs and exit; kill it if it does not."""
        self._stopping = True
        if self._proc is None:
            return
        if not self._dead and self._conn is not None:
            try:
                self._conn.send((WorkerCommand.STOP,))
            except (BrokenPipeError, OSError):
                pass
        proc = self._proc
        deadline = asyncio.get_running_loop().time() + timeout
        while proc.exitcode is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if proc.exitcode is None:
            self.kill()
            await asyncio.sleep(0.1)
        self._handle_death()
