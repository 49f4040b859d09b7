"""Version labels follow TF Serving's rules (server_core.cc UpdateModelVersionLabelMap).

The model manager runs on real tiny SavedModels on disk with the worker's load call replaced
by one that just succeeds: what is tested is which labels are accepted, and what a request
naming a label resolves to. Through a real server: test_model_manager.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from serving.core_api import ModelRef
from serving.errors import Code, ServingError
from serving.model_manager import ModelManager
from serving.server_config import ModelConfig, VersionPolicy
from serving.serving_metrics import ServingMetrics
from tests.support.server_process import free_port

REPO = Path(__file__).resolve().parents[2]

ALL = VersionPolicy(kind="all")


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, tiny_version_factory: Callable[[Path, int], Path]
) -> Path:
    path = tmp_path_factory.mktemp("labels_base")
    for v in (1, 2):
        tiny_version_factory(path / str(v), v)
    return path  # version 3 is never on disk


def manager(allow_unavailable: bool = False) -> ModelManager:
    async def load(key: tuple[str, int], path: str, keep: Mapping[tuple[str, int], str]) -> int:
        return 0

    async def unload(key: tuple[str, int]) -> None:
        return None

    return ModelManager(
        load=load,
        unload=unload,
        metrics=ServingMetrics(),
        allow_labels_for_unavailable=allow_unavailable,
    )


def config(base: Path, **labels: int) -> list[ModelConfig]:
    return [ModelConfig("m", str(base), ALL, labels)]


def label(m: ModelManager, name: str) -> int:
    return m.resolve(ModelRef("m", label=name)).version


def test_labels_on_available_versions_resolve(base: Path) -> None:
    async def main() -> None:
        m = manager()
        await m.apply_config(config(base, stable=1, canary=2))
        assert (label(m, "stable"), label(m, "canary")) == (1, 2)

    asyncio.run(main())


def test_a_label_on_a_version_that_is_not_available_fails_and_keeps_the_old_labels(
    base: Path,
) -> None:
    async def main() -> None:
        m = manager()
        await m.apply_config(config(base, stable=1))
        with pytest.raises(ServingError) as err:
            await m.apply_config(config(base, stable=1, canary=3))
        assert err.value.code is Code.FAILED_PRECONDITION
        assert err.value.message == (
            "Request to assign label to version 3 of model m, which is not currently "
            "available for inference"
        )
        assert label(m, "stable") == 1
        with pytest.raises(ServingError) as err:
            label(m, "canary")
        assert err.value.code is Code.INVALID_ARGUMENT

    asyncio.run(main())


def test_the_allow_flag_admits_a_new_label_but_never_moves_one_to_an_unavailable_version(
    base: Path,
) -> None:
    async def main() -> None:
        m = manager(allow_unavailable=True)
        await m.apply_config(config(base, stable=1, canary=3))  # new label: allowed
        assert label(m, "stable") == 1
        with pytest.raises(ServingError) as err:  # the label maps to a version not served
            label(m, "canary")
        assert err.value.code is Code.NOT_FOUND
        with pytest.raises(ServingError) as err:
            await m.apply_config(config(base, stable=3, canary=3))  # moving stable: refused
        assert err.value.code is Code.FAILED_PRECONDITION
        assert label(m, "stable") == 1

    asyncio.run(main())


def test_an_unknown_label_is_invalid_argument_in_tf_serving_words(base: Path) -> None:
    async def main() -> None:
        m = manager()
        await m.apply_config(config(base, stable=1))
        with pytest.raises(ServingError) as err:
            label(m, "nightly")
        assert (err.value.code, err.value.message) == (
            Code.INVALID_ARGUMENT,
            "Unrecognized servable version label: nightly",
        )

    asyncio.run(main())


def test_the_server_refuses_to_start_with_a_label_on_a_version_it_cannot_serve(
    base: Path, tmp_path: Path
) -> None:
    config_file = tmp_path / "models.config"
    config_file.write_text(
        f'model_config_list {{ config {{ name: "m" base_path: "{base}" '
        'model_platform: "tensorflow" version_labels { key: "stable" value: 3 } } }'
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.server_cli",
            f"--port={free_port()}",
            "--rest_api_port=0",
            f"--model_config_file={config_file}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert (
        "Failed to start server. Error: FAILED_PRECONDITION: Request to assign label to version 3 "
        "of model m, which is not currently available for inference"
    ) in result.stderr + result.stdout
