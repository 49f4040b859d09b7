"""Versions through a real server: policies, labels, config reload, broken versions, hot reload.

One server for the module (starting one costs ~20 s); each test states the model state it
starts from and the tests run in file order, each leaving the state the next one expects.
The tiny model answers ``embedding[:, 2] == version``, so every answer proves which version
served it.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from models import contract
from tests.support.server_process import ServerProcess
from tests.support.tfs_calls import model_status, predict, reload_config, texts

MODEL = "tiny"


def config_text(
    base: Path, policy: str, labels: dict[str, int] | None = None, name: str = MODEL
) -> str:
    label_text = "".join(
        f' version_labels {{ key: "{k}" value: {v} }}' for k, v in (labels or {}).items()
    )
    return (
        f'model_config_list {{ config {{ name: "{name}" base_path: "{base}" '
        'model_platform: "tensorflow" '
        f"model_version_policy {{ {policy} }}{label_text} }} }}"
    )


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, tiny_version_factory: Callable[[Path, int], Path]
) -> Path:
    path = tmp_path_factory.mktemp("tiny_versions_base")
    for v in (1, 2, 3):
        tiny_version_factory(path / str(v), v)
    return path


@pytest.fixture(scope="module")
def config_file(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "models.config"
    path.write_text(
        config_text(base, "specific { versions: 1 versions: 2 }", {"stable": 1, "canary": 2})
    )
    return path


@pytest.fixture(scope="module")
def server(config_file: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        model_config_file=config_file,
        wait_for=[MODEL],
        args=[
            "--enable_batching",
            "--file_system_poll_wait_seconds=0.2",
            "--model_config_file_poll_wait_seconds=0.5",
        ],
    ) as srv:
        srv.wait_for_version(MODEL, 1)
        srv.wait_for_version(MODEL, 2)
        yield srv


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target) as ch:
        yield ch


def served_version(channel: grpc.Channel, **spec: object) -> int:
    version, out = predict(channel, MODEL, {"text": texts("which version?")}, **spec)  # type: ignore[arg-type]
    assert out["embedding"][0, 2] == version  # the model itself says which version ran
    return version


def test_specific_policy_and_labels(server: ServerProcess, channel: grpc.Channel) -> None:
    status = model_status(channel, MODEL)
    assert {v: s[0] for v, s in status.items()} == {2: "AVAILABLE", 1: "AVAILABLE"}
    assert served_version(channel) == 2  # no version: the latest available
    assert served_version(channel, version=1) == 1
    assert served_version(channel, label="stable") == 1
    assert served_version(channel, label="canary") == 2
    # REST names labels and versions in the path
    r = httpx.post(
        f"{server.rest_url}/v1/models/{MODEL}/labels/stable:predict", json={"instances": ["x"]}
    )
    assert r.status_code == 200 and r.json()["predictions"][0][2] == 1.0
    r = httpx.post(
        f"{server.rest_url}/v1/models/{MODEL}/versions/2:predict", json={"instances": ["x"]}
    )
    assert r.status_code == 200 and r.json()["predictions"][0][2] == 2.0


@pytest.mark.parametrize(
    ("spec", "code", "http_status"),
    [
        ({"version": 3}, grpc.StatusCode.NOT_FOUND, 404),
        ({"version": 99}, grpc.StatusCode.NOT_FOUND, 404),
        # TF Serving: "Unrecognized servable version label: nightly", INVALID_ARGUMENT
        ({"label": "nightly"}, grpc.StatusCode.INVALID_ARGUMENT, 400),
    ],
)
def test_unknown_version_is_not_found_and_unknown_label_invalid(
    server: ServerProcess,
    channel: grpc.Channel,
    spec: dict[str, object],
    code: grpc.StatusCode,
    http_status: int,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        served_version(channel, **spec)
    assert err.value.code() is code
    path = f"versions/{spec['version']}" if "version" in spec else f"labels/{spec['label']}"
    r = httpx.post(f"{server.rest_url}/v1/models/{MODEL}/{path}:predict", json={"instances": ["x"]})
    assert r.status_code == http_status and "error" in r.json()
    assert served_version(channel) == 2  # still serving


def test_reload_with_a_label_on_a_version_not_loaded_fails_and_keeps_the_labels(
    base: Path, channel: grpc.Channel
) -> None:
    policy = "specific { versions: 1 versions: 2 }"
    with pytest.raises(grpc.RpcError) as err:
        reload_config(channel, config_text(base, policy, {"stable": 1, "canary": 3}))
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == (
        "Request to assign label to version 3 of model tiny, which is not currently "
        "available for inference"
    )
    assert served_version(channel, label="canary") == 2  # the previous labels still hold


def test_unknown_model_is_not_found_and_unknown_signature_failed_precondition(
    server: ServerProcess, channel: grpc.Channel
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        predict(channel, "no_such_model", {"text": texts("x")})
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        predict(channel, MODEL, {"text": texts("x")}, signature="no_such_signature")
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION  # as TF Serving answers
    assert "no_such_signature" in (err.value.details() or "")
    assert served_version(channel) == 2


def test_reload_config_latest_two(base: Path, channel: grpc.Channel) -> None:
    reload_config(channel, config_text(base, "latest { num_versions: 2 }"))
    status = model_status(channel, MODEL)
    assert status[3][0] == "AVAILABLE" and status[2][0] == "AVAILABLE"
    assert status[1][0] == "END"
    assert served_version(channel) == 3


def test_reload_config_all(base: Path, channel: grpc.Channel) -> None:
    reload_config(channel, config_text(base, "all {}"))
    status = model_status(channel, MODEL)
    assert [status[v][0] for v in (1, 2, 3)] == ["AVAILABLE"] * 3
    assert served_version(channel, version=1) == 1


def test_broken_new_version_leaves_the_old_one_serving(
    base: Path, server: ServerProcess, channel: grpc.Channel
) -> None:
    reload_config(channel, config_text(base, "latest { num_versions: 1 }"))
    assert served_version(channel) == 3
    broken = base / "4"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    deadline = time.monotonic() + 30
    while model_status(channel, MODEL).get(4, ("",))[0] != "END":
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.1)
    state, code, message = model_status(channel, MODEL)[4]
    assert code != 0 and message  # reported as an error in the status
    assert model_status(channel, MODEL)[3][0] == "AVAILABLE"
    assert served_version(channel) == 3
    body = httpx.get(f"{server.rest_url}/v1/models/{MODEL}").json()
    by_version = {e["version"]: e for e in body["model_version_status"]}
    assert by_version["4"]["status"]["error_code"] != "OK"
    shutil.rmtree(broken)


def test_hot_reload_under_load_has_zero_failures(
    base: Path,
    server: ServerProcess,
    channel: grpc.Channel,
    tiny_version_factory: Callable[[Path, int], Path],
) -> None:
    """Version 5 appears while 4 threads send requests: no request fails, answers move to 5."""
    assert served_version(channel) == 3
    stop = threading.Event()
    seen: list[int] = []
    failures: list[BaseException] = []

    def load() -> None:
        with grpc.insecure_channel(server.grpc_target) as ch:
            while not stop.is_set():
                try:
                    seen.append(served_version(ch))
                except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                    failures.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        tiny_version_factory(base / "5", 5)
        deadline = time.monotonic() + 60
        while not seen or seen[-1] != 5:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.05)
        time.sleep(0.5)  # keep the load on while version 3 is unloaded
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert seen[0] == 3 and seen[-1] == 5
    assert set(seen) <= {3, 5}
    first_new = seen.index(5)
    assert (
        3 not in seen[first_new + 50 :]
    )  # once switched, it stays on 5 (a few old ones may finish late)
    deadline = time.monotonic() + 10
    while model_status(channel, MODEL)[3][0] != "END":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_model_config_file_is_polled(
    base: Path, config_file: Path, server: ServerProcess, channel: grpc.Channel
) -> None:
    both = (
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" }} '
        f'config {{ name: "tiny2" base_path: "{base}" '
        "model_version_policy { specific { versions: 2 } } } }"
    )
    config_file.write_text(both)
    server.wait_for_version("tiny2", 2, timeout=60)
    version, out = predict(channel, "tiny2", {"text": texts("x")})
    assert version == 2 and out["embedding"][0, 2] == 2
    assert served_version(channel) == 5


def test_model_card_costing_fields(tmp_path: Path) -> None:
    from serving.model_manager import _card_costing

    card = tmp_path / contract.MODEL_CARD_FILE
    assert _card_costing(str(tmp_path)) == (0, False)  # a TF Serving model without a card
    card.parent.mkdir(parents=True)
    card.write_text(json.dumps({"max_seq_length": 128, "skips_padding": True}))
    assert _card_costing(str(tmp_path)) == (128, True)
    card.write_text(json.dumps({"max_seq_length": "x", "skips_padding": "yes"}))
    assert _card_costing(str(tmp_path)) == (0, False)
