"""The clients' one exception hierarchy.

Every failure a caller of ``clients`` sees is a :class:`TextServeError`; transport exceptions
(``grpc.RpcError``, ``httpx.HTTPError``) are translated at one boundary per protocol
(``clients._base_grpc_client``, ``clients._base_rest_client``, through the one mapping in
``clients._error_mapping``) and chained (``raise ... from exc``), never leaked.

=====================================  ===========================================  ==========
class                                  gRPC status                                  HTTP
=====================================  ===========================================  ==========
:class:`InvalidInputError`             INVALID_ARGUMENT, FAILED_PRECONDITION,        400
                                       OUT_OF_RANGE
:class:`NotFoundError`                 NOT_FOUND                                    404
:class:`OverloadedError`               RESOURCE_EXHAUSTED                           429
:class:`UnavailableError`              UNAVAILABLE, connection refused / reset      503
:class:`DeadlineExceededError`         DEADLINE_EXCEEDED, client-side timeout       504
:class:`TextServeError` (base)         anything else (UNAUTHENTICATED, INTERNAL...)  other
=====================================  ===========================================  ==========

Example::

    from clients import GrpcClient, OverloadedError, TextServeError

    with GrpcClient("localhost:8500", model_name="minilm") as client:
        try:
            vectors = client.embed(["hello"])
        except OverloadedError:
            ...  # back off: the server shed load explicitly
        except TextServeError as exc:
            print(exc.code, exc.message)
"""

from __future__ import annotations


class TextServeError(Exception):
    """Base of every client error.

    Attributes:
        code: the canonical status name, e.g. ``"INVALID_ARGUMENT"`` (gRPC code names are used
            for REST too, mapped from the HTTP status).
        message: the server's own message (or the transport's, for connection failures).
        http_status: the HTTP status for REST responses, ``None`` for gRPC and transport errors.
    """

    def __init__(self, code: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


class InvalidInputError(TextServeError):
    """The request was rejected as malformed (INVALID_ARGUMENT / FAILED_PRECONDITION / 400).

    Never retried: sending the same request again gives the same answer.
    """


class NotFoundError(TextServeError):
    """Unknown model or version (NOT_FOUND / 404).

    An unknown version label is INVALID_ARGUMENT and an unknown signature FAILED_PRECONDITION,
    as in TF Serving: both are ``InvalidInputError``.
    """


class OverloadedError(TextServeError):
    """The server shed load explicitly (RESOURCE_EXHAUSTED / 429): back off before retrying."""


class UnavailableError(TextServeError):
    """Nothing answered, or the server is not ready / draining (UNAVAILABLE / 503).

    TF Serving also answers a full batch queue with UNAVAILABLE, so treat it as overload too.
    """


class DeadlineExceededError(TextServeError):
    """The call's deadline passed, on the client or on the server (DEADLINE_EXCEEDED / 504)."""
