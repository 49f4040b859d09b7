"""``Limits``: what one request may cost. The one definition: its defaults are the flags'."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-request limits, each a ``textserve-server`` flag of the same name (``--help``).

    Each bounds memory or CPU a single client can make the server spend; the fronts enforce
    the wire ones while decoding, before a request is queued.
    """

    # Bytes of a request body or gRPC message, also after gzip decompression. Costs that much
    # memory per in-flight request (x ~3 while decoding JSON into numpy), and decoding a
    # full-size JSON body holds the event loop for ~0.1-0.5 s (measured, 2 cores).
    max_request_bytes: int = 32 * 1024 * 1024
    # Rows (dim 0) of any input tensor; bigger requests are split into batches by the engine,
    # so this bounds one request's latency and memory, not the batch size.
    max_rows_per_request: int = 1024
    # Characters per text element; the model truncates to its max_seq_length anyway, so longer
    # texts only cost tokenizer time.
    max_text_chars: int = 20_000
    # Nesting of arrays/objects in a JSON body (TF Serving CVE-2025-0649 crashed on deep JSON).
    max_json_depth: int = 32
    # Requests waiting for the worker beyond this are answered RESOURCE_EXHAUSTED / 429.
    max_queued_requests: int = 1024
    # Deadline of a gRPC request that sets none.
    default_deadline_ms: int = 30_000
