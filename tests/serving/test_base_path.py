"""A base path with no version in it is said, every poll, until a version appears (issue 13).

TF Serving logs "No versions of servable <name> found under base path <path>" at WARNING on
every file-system poll; we do too, and say it in the status error, and recognise the common
mistake of passing a version directory (``.../minilm/1``) as the base path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.server_process import ServerProcess


def _warnings(server: ServerProcess, model: str) -> list[str]:
    return [
        str(e["msg"])
        for e in server.events()
        if e.get("event") == "no_versions" and e.get("model") == model
    ]


def test_empty_or_wrong_base_path_is_warned_every_poll_and_explained(
    tmp_path: Path,
    tiny_model_dir: Path,
    tiny_version_factory: Callable[[Path, int], Path],
) -> None:
    missing = tmp_path / "later"  # does not exist yet
    version_dir = tiny_model_dir / "1"  # a version directory given as the base path
    config = tmp_path / "models.config"
    config.write_text(
        "model_config_list { "
        f'config {{ name: "later" base_path: "{missing}" }} '
        f'config {{ name: "verdir" base_path: "{version_dir}" }} }}'
    )
    with ServerProcess(
        model_config_file=config,
        args=["--file_system_poll_wait_seconds=0.2"],
        wait_for=[],
    ) as server:
        deadline = time.monotonic() + 120
        while len(_warnings(server, "later")) < 3:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.2)
        warning = _warnings(server, "later")[-1]
        assert warning.startswith(f"No versions of servable later found under base path {missing}")
        assert "does not exist" in warning
        levels = {e["level"] for e in server.events() if e.get("event") == "no_versions"}
        assert levels == {"warning"}

        r = httpx.get(f"{server.rest_url}/v1/models/verdir", timeout=10)
        assert r.status_code == 404
        error = r.json()["error"]
        assert f"No versions of servable verdir found under base path {version_dir}" in error
        assert f"pass its parent {tiny_model_dir} as the base path" in error
        r = httpx.post(
            f"{server.rest_url}/v1/models/verdir:predict", json={"instances": ["x"]}, timeout=10
        )
        assert r.status_code == 503 and f"pass its parent {tiny_model_dir}" in r.json()["error"]

        # A version appears: it is loaded at the next poll, and the warnings stop.
        missing.mkdir()
        tiny_version_factory(missing / "7", 7)
        server.wait_for_version("later", 7, timeout=60)
        r = httpx.post(
            f"{server.rest_url}/v1/models/later:predict", json={"instances": ["four"]}, timeout=30
        )
        assert r.status_code == 200, r.text
        prediction = r.json()["predictions"][0]
        assert prediction[0] == 4.0 and prediction[2] == 7.0  # byte length, version
        seen = len(_warnings(server, "later"))
        time.sleep(1.0)
        assert len(_warnings(server, "later")) == seen
