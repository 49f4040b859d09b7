"""Structured logs: one JSON object per line on stderr (lifecycle at info, requests at debug)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

# Attributes every LogRecord has; anything else came in through ``extra=`` and is logged.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class RejectedHttpFilter(logging.Filter):
    """Turns aiohttp's report of a malformed HTTP request (a multi-line traceback at error
    level whose message quotes the client's bytes) into one warning line, and lets at most
    ``burst`` through per ``window_s``: a client sending junk must not flood the log.

    The JSON formatter escapes the client's bytes; ``error`` is cut to 200 characters. The
    first line after a quiet period says how many were suppressed.
    """

    def __init__(self, *, burst: int = 10, window_s: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self._window_start = 0.0
        self._passed = 0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._window_start >= self.window_s:
            self._window_start, self._passed = now, 0
        if self._passed >= self.burst:
            self._suppressed += 1
            return False
        self._passed += 1
        exc = record.exc_info[1] if record.exc_info else None
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg, record.args = "rejected a malformed HTTP request", ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.event = "http_rejected"
        record.remote = str(remote)
        record.error = (f"{type(exc).__name__}: {exc}" if exc else "")[:200]
        if self._suppressed:
            record.suppressed = self._suppressed
            self._suppressed = 0
        return True


def configure_logging(level: str) -> None:
    """Route the ``textserve`` loggers to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("textserve")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
