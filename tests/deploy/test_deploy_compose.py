"""The compose files and the Dockerfile: one set of config files, one TF minor, one port pair."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

import pytest
from deploy_files import (
    COMPOSE_CPU,
    COMPOSE_FILES,
    COMPOSE_GPU,
    COMPOSE_TEXTSERVE,
    CONFIG_DIR,
    CONTAINER_CONFIG_DIR,
    DOCKERFILE,
    MODELS_CONFIG,
    TF_SERVING_COMPOSE_FILES,
    compose_service,
    parse_flags,
    pinned_minor,
    tf_serving_image_minor,
)
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from models import contract

# Flags that reference deploy/config files, and the file each one must name.
CONFIG_FLAGS = {
    "model_config_file": "models.config",
    "batching_parameters_file": "batching_parameters.txt",
    "monitoring_config_file": "monitoring_config.txt",
}
# tensorflow_model_server flags textserve-server does not implement (TF Serving only).
TF_SERVING_ONLY_FLAGS = {"xla_cpu_compilation_enabled"}


def command_flags(path) -> dict[str, str]:
    return parse_flags(compose_service(path)["command"])


def models_base_path() -> str:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(MODELS_CONFIG.read_text(encoding="utf-8"), config)
    (model,) = config.model_config_list.config
    return model.base_path


def test_tf_serving_images_match_the_exporting_tensorflow_minor() -> None:
    minor = pinned_minor("tensorflow")
    # TF, tf-text and the serving API move together (FACTS: only matching minors serve reliably).
    assert pinned_minor("tensorflow-text") == minor
    assert pinned_minor("tensorflow-serving-api") == minor
    assert tf_serving_image_minor(compose_service(COMPOSE_GPU)["image"], gpu=True) == minor
    assert tf_serving_image_minor(compose_service(COMPOSE_CPU)["image"], gpu=False) == minor


def test_gpu_variant_reserves_exactly_one_nvidia_gpu() -> None:
    devices = compose_service(COMPOSE_GPU)["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in compose_service(COMPOSE_CPU)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_ports_are_tf_servings(path) -> None:
    service = compose_service(path)
    grpc, rest = contract.DEFAULT_GRPC_PORT, contract.DEFAULT_REST_PORT
    assert service["ports"] == [f"{grpc}:{grpc}", f"{rest}:{rest}"]
    flags = command_flags(path)
    assert flags["port"] == str(grpc) and flags["rest_api_port"] == str(rest)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_variant_reads_the_same_config_files(path) -> None:
    service = compose_service(path)
    assert f"./config:{CONTAINER_CONFIG_DIR}:ro" in service["volumes"]
    flags = command_flags(path)
    for flag, name in CONFIG_FLAGS.items():
        assert (CONFIG_DIR / name).is_file()
        assert flags[flag] == f"{CONTAINER_CONFIG_DIR}/{name}", f"{path.name}: --{flag}"
    assert flags["enable_batching"] == "true"
    assert flags["enable_grpc_healthcheck_service"] == "true"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_model_is_mounted_read_only_at_the_configured_base_path(path) -> None:
    base_path = models_base_path()
    mounts = [v for v in compose_service(path)["volumes"] if not v.startswith("./config:")]
    assert len(mounts) == 1
    source, target, mode = mounts[0].rsplit(":", 2)
    assert (target, mode) == (base_path, "ro")
    # Default source (``${MODEL_BASE_DIR:-...}``) = the README's export location, from deploy/.
    assert source == f"${{MODEL_BASE_DIR:-../exported/{PurePosixPath(base_path).name}}}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_healthcheck_reads_the_model_status_body(path) -> None:
    check = compose_service(path)["healthcheck"]
    probe = " ".join(check["test"])
    assert f"/dev/tcp/127.0.0.1/{contract.DEFAULT_REST_PORT}" in probe
    assert f"/v1/models/{contract.BUNDLED_MODEL_NAME} " in probe
    assert '"AVAILABLE"' in probe


def test_tf_serving_variants_share_their_flags() -> None:
    gpu, cpu = (command_flags(p) for p in TF_SERVING_COMPOSE_FILES)
    assert gpu == cpu
    for path in TF_SERVING_COMPOSE_FILES:
        assert compose_service(path)["entrypoint"] == ["tensorflow_model_server"]


def test_textserve_variant_uses_the_tf_serving_flags_it_shares() -> None:
    tf_serving = command_flags(COMPOSE_GPU)
    textserve = command_flags(COMPOSE_TEXTSERVE)
    shared = {k: v for k, v in tf_serving.items() if k not in TF_SERVING_ONLY_FLAGS}
    assert textserve == shared


def test_textserve_server_parses_the_compose_command() -> None:
    # The flags must mean something to our server, not only look alike: parse them with its
    # own flag parser (the config files resolved on the host instead of under /config).
    from serving import server_flags

    args = [
        a.replace(f"{CONTAINER_CONFIG_DIR}/", f"{CONFIG_DIR}/")
        for a in compose_service(COMPOSE_TEXTSERVE)["command"]
    ]
    config = server_flags.parse_args(args)
    assert config.grpc_port == contract.DEFAULT_GRPC_PORT
    assert config.rest_port == contract.DEFAULT_REST_PORT
    assert config.enable_batching and config.enable_grpc_healthcheck_service
    assert config.batching.max_batch_size == 64
    assert config.monitoring.prometheus_enabled
    assert [m.name for m in config.models] == [contract.BUNDLED_MODEL_NAME]


def dockerfile_text() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


def test_dockerfile_gpu_variant_pins_the_tensorflow_minor() -> None:
    pins = re.findall(r'"tensorflow\[and-cuda\]==(\d+\.\d+)\.\*"', dockerfile_text())
    assert pins == [pinned_minor("tensorflow")]


def test_dockerfile_targets_and_ports() -> None:
    text = dockerfile_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, flags=re.MULTILINE)
    assert stages == ["runtime", "export", "server-base", "server-with-model", "server"]
    assert stages[-1] == compose_service(COMPOSE_TEXTSERVE)["build"]["target"]
    ports = {
        p for line in re.findall(r"^EXPOSE (.+)$", text, flags=re.MULTILINE) for p in line.split()
    }
    assert ports == {str(contract.DEFAULT_GRPC_PORT), str(contract.DEFAULT_REST_PORT)}
    assert 'ENTRYPOINT ["textserve-server"]' in text


def test_dockerfile_default_command_equals_the_compose_command() -> None:
    match = re.search(r"^CMD (\[.*?\])$", dockerfile_text(), flags=re.MULTILINE | re.DOTALL)
    assert match
    cmd = json.loads(match.group(1).replace("\\\n", ""))
    assert cmd == compose_service(COMPOSE_TEXTSERVE)["command"]
