"""Fixtures of the serving tests: a tiny SavedModel (cheap versions/reload/error tests) and
real ``textserve-server`` subprocesses, shared per session where tests do not disturb them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from models import contract
from tests.support.server_process import ServerProcess
from tests.support.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine BASE dir with version 1 of the tiny model; copy it before changing anything."""
    base = tmp_path_factory.mktemp("tiny_model")
    build_tiny_model(base / "1", version=1)
    return base


@pytest.fixture(scope="session")
def tiny_version_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Builds tiny versions once per number and copies them where asked (building costs ~1 s)."""
    cache = tmp_path_factory.mktemp("tiny_versions")

    def make(dest: Path, version: int) -> Path:
        src = cache / str(version)
        if not src.exists():
            build_tiny_model(src, version=version)
        tmp = dest.with_name(dest.name + ".copying")
        shutil.copytree(src, tmp)
        tmp.rename(dest)  # appears atomically to the polling server
        return dest

    yield make


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, tiny_version_factory) -> Path:  # type: ignore[no-untyped-def]
    """A model base path with tiny versions 1 and 2 (one per test module: fronts reload it)."""
    base = tmp_path_factory.mktemp("tiny_base")
    tiny_version_factory(base / "1", 1)
    tiny_version_factory(base / "2", 2)
    return base


@pytest.fixture(scope="session")
def minilm_server(
    exported_minilm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The bundled MiniLM behind a batching server with Prometheus on (parity, concurrency)."""
    monitoring = tmp_path_factory.mktemp("monitoring") / "monitoring_config.txt"
    monitoring.write_text("prometheus_config { enable: true }\n")
    with ServerProcess(
        model_name=contract.BUNDLED_MODEL_NAME,
        model_base_path=exported_minilm,
        args=[
            "--enable_batching",
            "--file_system_poll_wait_seconds=0",
            f"--monitoring_config_file={monitoring}",
            # correctness, not latency: a loaded CI machine must not turn into 504s
            "--rest_api_timeout_in_ms=600000",
            "--default_deadline_ms=600000",
        ],
    ) as server:
        yield server
