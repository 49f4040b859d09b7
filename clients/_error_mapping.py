"""Status codes and error bodies -> the clients' exceptions (one mapping, both protocols)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from clients.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    TextServeError,
    UnavailableError,
)

HTTP_TO_CODE: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


_CODE_TO_CLASS: Mapping[str, type[TextServeError]] = {
    "INVALID_ARGUMENT": InvalidInputError,
    "FAILED_PRECONDITION": InvalidInputError,
    "OUT_OF_RANGE": InvalidInputError,
    "NOT_FOUND": NotFoundError,
    "RESOURCE_EXHAUSTED": OverloadedError,
    "UNAVAILABLE": UnavailableError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
}


def error_for(code: str, message: str, *, http_status: int | None = None) -> TextServeError:
    """The exception instance for a canonical status name (``"NOT_FOUND"``...)."""
    cls = _CODE_TO_CLASS.get(code, TextServeError)
    return cls(code, message, http_status=http_status)


def error_from_http(status: int, body: bytes) -> TextServeError:
    """Map a non-2xx REST answer (TF Serving's ``{"error": "..."}`` body) to an exception."""
    code = HTTP_TO_CODE.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")
    message = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if isinstance(parsed.get("error"), str):
            message = parsed["error"]
        elif isinstance(parsed.get("error"), dict):  # OpenAI style {"error": {"message": ...}}
            message = str(parsed["error"].get("message", message))
    return error_for(code, message, http_status=status)


def error_from_transport(exc: httpx.TransportError | OSError) -> TextServeError:
    """httpx's transport failures: timeouts are deadlines (each attempt's httpx timeout is what
    is left of the call's deadline), the rest (refused, reset, TLS) are UNAVAILABLE and so
    retryable. ``OSError`` covers what httpx lets through unwrapped, e.g. the ``ssl.SSLError``
    of a TLS 1.3 server that rejects the client certificate after the handshake."""
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceededError("DEADLINE_EXCEEDED", message)
    return UnavailableError("UNAVAILABLE", message)


def error_from_grpc(code_name: str, details: str | None) -> TextServeError:
    """A ``grpc.RpcError``'s code name and details as a client exception."""
    return error_for(code_name, details or code_name)
