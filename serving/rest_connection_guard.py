"""``RestConnectionGuard``: header / idle timeouts and a connection cap for the aiohttp port.

aiohttp has no header-read timeout and no connection cap, and its keep-alive timer is
re-armed by every byte a slowloris client trickles in. So the guard watches the server's
connections itself: a new connection whose first request has not arrived whole within the
header timeout is closed, and so is a kept-alive connection with no request for the idle
timeout; connections past the cap are closed as soon as they open. A sweep every
``interval`` seconds does the timing (a timer per connection would cost more than the
connections it guards).

This reads three attributes of aiohttp's RequestHandler (``_current_request``, ``_messages``,
``_request_count``):
aiohttp offers no public way to know whether a connection is between requests. Pinned by
tests/serving/test_adversarial.py (slow headers, idle and flooded connections are closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from serving.connection_limits import ConnectionLimits

_LOG = logging.getLogger("textserve.rest")


class RestConnectionGuard:
    """Attach to a set-up ``web.AppRunner``; ``start()`` the sweep, ``stop()`` it."""

    def __init__(
        self, *, runner: web.AppRunner, limits: ConnectionLimits, interval: float = 0.5
    ) -> None:
        server = runner.server
        assert server is not None, "runner.setup() first"
        self._server = server
        self._limits = limits
        self._interval = interval
        # handler -> when it was last seen handling a request (or first seen)
        self._free_since: dict[Any, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.closed = {"header_timeout": 0, "idle_timeout": 0, "too_many": 0}
        cap = limits.rest_api_max_connections
        if cap:
            made = server.connection_made

            def connection_made(handler: Any, transport: Any) -> None:
                made(handler, transport)
                if len(server.connections) > cap:
                    self.closed["too_many"] += 1
                    transport.close()

            server.connection_made = connection_made  # type: ignore[method-assign]

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.sweep(time.monotonic())
            except Exception:  # the guard must never take the port down
                _LOG.exception("connection sweep failed", extra={"event": "sweep_failed"})

    def sweep(self, now: float) -> None:
        lim = self._limits
        header_s = lim.rest_api_header_timeout_in_ms / 1000
        idle_s = lim.rest_api_idle_timeout_in_ms / 1000
        alive = set()
        for handler in list(self._server.connections):
            alive.add(handler)
            busy = handler._current_request is not None or bool(handler._messages)
            if busy:
                self._free_since[handler] = now
                continue
            since = self._free_since.setdefault(handler, now)
            waited = now - since
            if handler._request_count == 0:
                # Nothing parsed yet: a new connection owes its first request's headers.
                limit, reason = header_s, "header_timeout"
            else:
                # Between requests on a kept-alive connection (a trickled next request is
                # bounded here too: aiohttp does not say whether bytes of one have arrived).
                limit, reason = idle_s, "idle_timeout"
            if limit and waited > limit:
                self.closed[reason] += 1
                self._free_since.pop(handler, None)
                handler.force_close()
                if handler.transport is not None:
                    handler.transport.close()
        for handler in [h for h in self._free_since if h not in alive]:
            del self._free_since[handler]
