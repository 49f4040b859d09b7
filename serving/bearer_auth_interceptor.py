"""``BearerAuthInterceptor``: the gRPC port's API-key check (``--api_keys_file``).

Every RPC needs the metadata ``authorization: Bearer <key>`` with a key of the file; the
health service is exempt unless ``cover_health`` (probes carry no secret). A refused call
ends with UNAUTHENTICATED before its request is even decoded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from serving.api_keys import ApiKeys

_HEALTH_PREFIX = "/grpc.health.v1.Health/"
_REFUSAL = "missing or invalid API key: send the metadata 'authorization: Bearer <key>'"


async def _refuse(request: bytes, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, _REFUSAL)


_REFUSE_HANDLER = grpc.unary_unary_rpc_method_handler(_refuse)


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses RPCs without a valid bearer key, in constant time per key (``ApiKeys``)."""

    def __init__(self, *, keys: ApiKeys, cover_health: bool, on_refused: Callable[[], None]):
        self._keys = keys
        self._cover_health = cover_health
        self._on_refused = on_refused

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        method = handler_call_details.method or ""
        if method.startswith(_HEALTH_PREFIX) and not self._cover_health:
            return await continuation(handler_call_details)
        value = None
        for key, item in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                value = item if isinstance(item, str) else item.decode("latin-1")
                break
        if self._keys.check(value):
            return await continuation(handler_call_details)
        self._on_refused()
        return _REFUSE_HANDLER
