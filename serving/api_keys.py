"""``ApiKeys``: optional bearer-token check for both fronts (``--api_keys_file``).

The file holds one key per line (blank lines and ``#`` comments ignored). It is read again
when its modification time or size changes (checked at most once a second), so keys are
added and revoked without a restart; a file that becomes unreadable or empty keeps the last
good keys and logs an error rather than locking every caller out (or letting everyone in).

A caller authenticates with ``Authorization: Bearer <key>`` (REST) or the gRPC metadata
``authorization: Bearer <key>``. The comparison takes the same time whatever the key sent:
each configured key's SHA-256 is compared to the sent key's with ``hmac.compare_digest``,
every key every time, so neither a key's prefix nor which key matched shows in the timing.

Example::

    keys = ApiKeys.from_file("/etc/textserve/api_keys")
    keys.check("Bearer s3cret")  # True / False
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time

_LOG = logging.getLogger("textserve.auth")

# Seconds between checks of the file's mtime: a stat per request would be wasted work.
_RECHECK_SECONDS = 1.0


class ApiKeysError(ValueError):
    """The keys file cannot be used at startup (missing, unreadable, no key in it)."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeys:
    """The set of accepted keys, reloaded when the file changes."""

    def __init__(self, *, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()  # the gRPC front may check from several threads
        self._stamp: tuple[float, int] | None = None
        self._next_check = 0.0
        self._digests: tuple[bytes, ...] = ()
        stamp, digests = self._read()  # raises ApiKeysError: a startup mistake stops the server
        self._stamp, self._digests = stamp, digests

    @classmethod
    def from_file(cls, path: str) -> ApiKeys:
        return cls(path=path)

    @property
    def count(self) -> int:
        return len(self._digests)

    def _read(self) -> tuple[tuple[float, int], tuple[bytes, ...]]:
        try:
            st = os.stat(self._path)
            with open(self._path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ApiKeysError(f"--api_keys_file {self._path}: cannot read it: {exc}") from exc
        keys = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        if not keys:
            raise ApiKeysError(f"--api_keys_file {self._path}: holds no key (one key per line)")
        return (st.st_mtime, st.st_size), tuple(_digest(k) for k in keys)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        with self._lock:
            if now < self._next_check:
                return
            self._next_check = now + _RECHECK_SECONDS
            try:
                st = os.stat(self._path)
                if (st.st_mtime, st.st_size) == self._stamp:
                    return
                self._stamp, self._digests = self._read()
            except (OSError, ApiKeysError) as exc:
                _LOG.error(
                    "api keys file unusable; keeping the previous keys",
                    extra={"event": "api_keys_reload_failed", "error": str(exc)},
                )
                return
            _LOG.info(
                "api keys reloaded",
                extra={"event": "api_keys_reloaded", "keys": len(self._digests)},
            )

    def check(self, authorization: str | None) -> bool:
        """True if ``authorization`` (the header / metadata value) is ``Bearer <a valid key>``."""
        self._refresh()
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        sent = _digest(token.strip())
        ok = False
        for digest in self._digests:  # every key, always: no early exit to time
            ok |= hmac.compare_digest(sent, digest)
        return ok
