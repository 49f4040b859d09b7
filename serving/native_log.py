"""``NativeStderr``: what C++ code writes to stderr, as the server's JSON log lines.

gRPC's core, TensorFlow and absl write straight to file descriptor 2, around Python's logging:
TensorFlow's start-up noise (``failed call to cuInit``, oneDNN, ``absl::InitializeLog()``) reads
as a failure to newcomers, and gRPC logs a peer's junk HTTP/2 frames with the peer's raw bytes
(``Got goaway ... Debug Text: <bytes>``, terminal escapes and newlines included). So the server
points fd 2 at a pipe before the TF worker is spawned (the worker inherits it) and a thread
turns each record into one escaped JSON line: absl's ``I``/``W``/``E``/``F`` prefix sets the
level, continuation lines join their record, and the client's bytes can no longer forge lines.

Unless ``--log_level debug``: TensorFlow's known start-up noise and absl's info records are
dropped (except GOAWAYs carrying an error: a broken or hostile peer), and at most ``burst``
records per ``window_s`` pass; the next one says how many were suppressed.

Example::

    native = NativeStderr(debug=False)
    native.start()  # before configure_logging: Python's own stderr stays the real one
    configure_logging("info")
    ...
    native.stop()
"""

from __future__ import annotations

import logging
import os
import re
import select
import sys
import threading
import time

_LOG = logging.getLogger("textserve.native")

# absl / glog record prefix: "E1203 07:25:04.630570   23971 add_port.cc:83] "
_RECORD = re.compile(rb"^([IWEF])\d{4} \S+\s+\d+ [^\]\s]+:\d+\] ")
_LEVELS = {b"I": logging.INFO, b"W": logging.WARNING, b"E": logging.ERROR, b"F": logging.CRITICAL}
# Printed by TensorFlow's shared libraries on every CPU-only start; none is a failure.
_TF_NOISE = (
    b"failed call to cuInit",
    b"Could not find cuda drivers",
    b"oneDNN custom operations are on",
    b"absl::InitializeLog()",
    b"This TensorFlow binary is optimized to use available CPU instructions",
    b"Unable to register cu",  # cuDNN / cuFFT / cuBLAS factories
    b"TF-TRT Warning",
    b"computation placer already registered",
)
_ERROR_GOAWAY = re.compile(rb"Got goaway \[[1-9]")
_MAX_RECORD_CHARS = 2000
_QUIET_S = 0.02  # a record's continuation lines arrive within this of its first line


class NativeStderr:
    """Captures fd 2 of this process (and of the children it spawns after ``start``)."""

    def __init__(self, *, debug: bool, burst: int = 20, window_s: float = 60.0) -> None:
        self.debug = debug
        self.burst = burst
        self.window_s = window_s
        self._read_fd = -1
        self._saved_fd = -1
        self._thread: threading.Thread | None = None
        self._window_start = 0.0
        self._passed = 0
        self._suppressed = 0

    def start(self) -> None:
        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._read_fd = read_fd
        # Python's own writes (the JSON log handler, a last-resort traceback) go to the real
        # stderr directly, not around through the pipe.
        sys.stderr = open(  # noqa: SIM115  lives as long as the process
            os.dup(self._saved_fd), "w", encoding="utf-8", errors="backslashreplace", buffering=1
        )
        self._thread = threading.Thread(target=self._pump, name="native-stderr", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Points fd 2 back at the real stderr; the pump drains what is left and ends."""
        if self._saved_fd < 0:
            return
        os.dup2(self._saved_fd, 2)  # closes the pipe's last write end held by this process
        os.close(self._saved_fd)
        self._saved_fd = -1
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    # ------------------------------------------------------------------ the pump thread
    def _pump(self) -> None:
        pending = b""
        record: list[bytes] = []
        while True:
            ready, _, _ = select.select([self._read_fd], [], [], _QUIET_S if record else None)
            if not ready:  # quiet: the record is complete
                self._emit(record)
                record = []
                continue
            chunk = os.read(self._read_fd, 65536)
            if not chunk:  # every writer closed fd 2
                self._emit(record + ([pending] if pending else []))
                os.close(self._read_fd)
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if record and _RECORD.match(line):  # a new record; other lines continue one
                    self._emit(record)
                    record = []
                record.append(line)

    def _emit(self, record: list[bytes]) -> None:
        if not record or not any(line.strip() for line in record):
            return
        first = record[0]
        match = _RECORD.match(first)
        level = _LEVELS[match.group(1)] if match else logging.WARNING
        raw = b"\n".join(record)
        if not self.debug and not self._wanted(raw, level):
            return
        if not self.debug and not self._admit():
            return
        extra: dict[str, object] = {"event": "native_log"}
        if self._suppressed and not self.debug:
            extra["suppressed"] = self._suppressed
            self._suppressed = 0
        text = raw.decode("utf-8", errors="backslashreplace")[:_MAX_RECORD_CHARS]
        _LOG.log(level, text, extra=extra)

    @staticmethod
    def _wanted(raw: bytes, level: int) -> bool:
        if any(noise in raw for noise in _TF_NOISE):
            return False
        return level >= logging.WARNING or bool(_ERROR_GOAWAY.search(raw))

    def _admit(self) -> bool:
        now = time.monotonic()
        if now - self._window_start >= self.window_s:
            self._window_start, self._passed = now, 0
        if self._passed >= self.burst:
            self._suppressed += 1
            return False
        self._passed += 1
        return True
