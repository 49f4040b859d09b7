"""Blue/green TF workers on a real server (issue 12, defects 2 and 9).

Defect 2: one worker loading every new version grew ~47 MB per reload without end. Now each
reload moves the versions to a fresh worker and the old process exits, so no process ever
holds an unloaded version. Defect 9: a killed worker left the model unavailable for a TF
import + load + warmup; with ``--worker_standby`` a hot standby takes over at once.
(Memory and recovery-time figures come from tests/benchmarks/bench_reliability.py.)
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from tests.support.server_process import ServerProcess
from tests.support.tfs_calls import predict, texts

MODEL = "tiny"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _answer(server: ServerProcess, text: str) -> tuple[int, float]:
    with grpc.insecure_channel(server.grpc_target) as ch:
        version, out = predict(ch, MODEL, {"text": texts(text)}, timeout=30)
    return version, float(out["embedding"][0, 0])


def _events(server: ServerProcess, name: str) -> list[dict[str, object]]:
    return [e for e in server.events() if e.get("event") == name]


def _wait(predicate: Callable[[], bool], server: ServerProcess, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.1)


@pytest.fixture
def base(tmp_path: Path, tiny_version_factory: Callable[[Path, int], Path]) -> Path:
    root = tmp_path / "tiny"
    root.mkdir()
    tiny_version_factory(root / "1", 1)
    return root


def test_each_reload_moves_to_a_fresh_worker_and_the_old_one_exits(
    base: Path, tiny_version_factory: Callable[[Path, int], Path]
) -> None:
    with ServerProcess(
        model_name=MODEL, model_base_path=base, args=["--file_system_poll_wait_seconds=0.2"]
    ) as server:
        pids = [server.worker_pid()]
        for version in (2, 3):
            tiny_version_factory(base / str(version), version)
            _wait(lambda v=version: _answer(server, "x")[0] == v, server)
            pid = server.worker_pid()
            assert pid is not None and pid not in pids  # a new process serves the new version
            previous = pids[-1]
            assert previous is not None
            _wait(lambda p=previous: not _alive(p), server, timeout=30)  # the old one exited
            pids.append(pid)
            assert _answer(server, "four") == (version, 4.0)
        retired = [e["pid"] for e in _events(server, "worker_retired")]
        assert retired == pids[:-1]


@pytest.fixture
def standby_server(base: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        model_name=MODEL,
        model_base_path=base,
        args=["--file_system_poll_wait_seconds=0", "--worker_standby"],
    ) as server:
        _wait(lambda: bool(_events(server, "standby_ready")), server)
        yield server


def test_sigkill_of_the_worker_promotes_the_hot_standby(standby_server: ServerProcess) -> None:
    server = standby_server
    active = server.worker_pid()
    standby = int(_events(server, "standby_ready")[-1]["pid"])  # type: ignore[call-overload]
    assert active is not None and standby != active and _alive(standby)
    os.kill(active, signal.SIGKILL)
    _wait(lambda: server.worker_pid() == standby, server, timeout=30)
    assert _answer(server, "back") == (1, 4.0)
    # Promoted, not reloaded: no version went back to LOADING, no cold restart ran.
    assert _events(server, "standby_promoted")
    assert not _events(server, "worker_restarted")
    # And a new standby is made ready behind it.
    _wait(lambda: len(_events(server, "standby_ready")) >= 2, server)
    new_standby = int(_events(server, "standby_ready")[-1]["pid"])  # type: ignore[call-overload]
    assert new_standby not in (active, standby) and _alive(new_standby)
