"""A REST request body as sent: decompressed (gzip, deflate) within the byte limit."""

from __future__ import annotations

import zlib

from serving.errors import Code, ServingError
from serving.input_checks import invalid


def read_body(body: bytes, content_encoding: str | None, *, limit: int) -> bytes:
    """The request body, gunzipped (or inflated) within ``limit`` bytes (also after)."""
    if len(body) > limit:
        raise _too_big(len(body), limit)
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise invalid(f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    out = bytearray()
    data = body
    # Members one at a time (gzip allows concatenation), never inflating past the limit:
    # a gzip bomb stops at limit+1 bytes.
    while data:
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise invalid(f"request body is not valid {encoding}: {exc}") from exc
        if len(out) > limit:
            raise _too_big(len(out), limit, after=encoding)
        if not inflater.eof:
            raise invalid(f"request body is truncated {encoding} data")
        data = inflater.unused_data
    return bytes(out)


def _too_big(size: int, limit: int, after: str | None = None) -> ServingError:
    where = f" after {after} decompression" if after else ""
    return ServingError(
        Code.RESOURCE_EXHAUSTED,
        f"request body is larger than the limit of {limit} bytes{where} "
        f"(got {'more than ' if after else ''}{size if not after else limit} bytes); "
        "split the request",
    )
