"""The two I/O runtimes under the clients' shared method bodies.

Every client method is written once, as a coroutine (``clients/_base_client.py``,
``_base_grpc_client.py``, ``_base_rest_client.py``). It touches the network only through its
runtime: :meth:`IO.settle` (the answer of a transport call), :meth:`IO.sleep` (a retry's
backoff, a readiness poll) and :meth:`IO.map` (chunks in flight at once).

:class:`AsyncIO` awaits. :class:`BlockingIO` works with blocking transports (``grpc``
channels, ``httpx.Client``): the transport call has already returned when ``settle`` sees
it, so a coroutine on it never suspends and :func:`run_blocking` runs it to completion in one
step, with no event loop. That is why the blocking clients are the same code as the async
ones, not a copy of it.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

T = TypeVar("T")
X = TypeVar("X")
S = TypeVar("S")
P = ParamSpec("P")


class IO(abc.ABC):
    """What a client's method bodies may do besides computing."""

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max_concurrency

    @abc.abstractmethod
    async def settle(self, answer: Awaitable[T] | T) -> T:
        """The value of a transport call: awaited (asyncio transport) or as it is (blocking)."""

    @abc.abstractmethod
    async def sleep(self, seconds: float) -> None: ...

    @abc.abstractmethod
    async def map(self, fn: Callable[[X], Coroutine[Any, Any, T]], items: Sequence[X]) -> list[T]:
        """``fn`` over ``items``, at most ``max_concurrency`` at once, results in order; the
        first failure is raised as itself and the calls not finished are cancelled."""

    async def close(self) -> None:
        return None


class BlockingIO(IO):
    """Blocking transports; :meth:`map` runs items on a pool of ``max_concurrency`` threads."""

    def __init__(self, max_concurrency: int) -> None:
        super().__init__(max_concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    async def settle(self, answer: Awaitable[T] | T) -> T:
        return cast(T, answer)  # the blocking call already did the I/O

    async def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def map(self, fn: Callable[[X], Coroutine[Any, Any, T]], items: Sequence[X]) -> list[T]:
        # Executor.map cancels the items not yet started when the first failure is raised;
        # their coroutines are only created on a pool thread, so none is left un-awaited.
        return list(self._executor().map(lambda item: run_blocking(fn(item)), items))

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.max_concurrency, thread_name_prefix="textserve-client"
                )
            return self._pool

    async def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


class AsyncIO(IO):
    """asyncio transports (``grpc.aio`` channels, ``httpx.AsyncClient``)."""

    async def settle(self, answer: Awaitable[T] | T) -> T:
        return await cast(Awaitable[T], answer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def map(self, fn: Callable[[X], Coroutine[Any, Any, T]], items: Sequence[X]) -> list[T]:
        semaphore = asyncio.Semaphore(self.max_concurrency)

        async def bounded(item: X) -> T:
            async with semaphore:
                return await fn(item)

        # gather keeps order and raises the first failure as itself (a TaskGroup would wrap it
        # in an ExceptionGroup); the other items are cancelled.
        tasks = [asyncio.ensure_future(bounded(item)) for item in items]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise


def run_blocking(call: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on :class:`BlockingIO` to completion: it never suspends, one step does."""
    try:
        call.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    call.close()
    raise RuntimeError("a blocking client's call tried to suspend (an asyncio transport?)")


def blocking(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], T]:
    """The blocking public method for a shared method body (its docstring and signature kept).

    Example::

        class SyncShell(BaseClient):
            embed = blocking(BaseClient._embed)
    """

    def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run_blocking(method(self, *args, **kwargs))

    functools.update_wrapper(call, method)
    return call
