"""The OpenAI- and TEI-style surface beside TF Serving's: ``GET /v1/models`` (OpenAI's list),
``GET /v1/health`` and ``/health``, and the ``/v1/embeddings`` options peers accept.

The list is checked over raw HTTP in the shape OpenAI documents, and with the official ``openai``
SDK itself (``models.list()``, ``models.retrieve()``, ``embeddings.create()`` in its default base64
encoding and as floats).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from models import contract
from tests.support.server_process import ServerProcess

MODEL = contract.BUNDLED_MODEL_NAME


@pytest.fixture(scope="module")
def http(minilm_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=minilm_server.rest_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def half_ready(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[str]:
    """A server whose 'tiny' model is AVAILABLE and whose 'later' model has no version yet."""
    root = tmp_path_factory.mktemp("half_ready")
    config = root / "models.config"
    config.write_text(
        "model_config_list { "
        f'config {{ name: "tiny" base_path: "{tiny_model_dir}" }} '
        f'config {{ name: "later" base_path: "{root / "later"}" }} }}'
    )
    with ServerProcess(model_config_file=config, wait_for=["tiny"]) as server:
        yield server.rest_url


def test_models_list_is_openais_shape_with_task_and_dims(http: httpx.Client) -> None:
    for path in ("/v1/models", "/v1/models/"):
        response = http.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list"
        (entry,) = body["data"]
        assert entry["id"] == MODEL and entry["object"] == "model"
        assert entry["owned_by"] == "textserve" and isinstance(entry["created"], int)
        assert entry["task"] == contract.TASK_EMBEDDING and entry["dims"] == 384
        assert entry["version"] == 1


def test_the_openai_sdk_lists_retrieves_and_embeds(
    minilm_server: ServerProcess, http: httpx.Client
) -> None:
    from openai import OpenAI

    sdk = OpenAI(base_url=f"{minilm_server.rest_url}/v1", api_key="unused", max_retries=0)
    assert [model.id for model in sdk.models.list()] == [MODEL]
    texts = ["A man is playing a harp.", "Straße"]
    expected = np.array(
        http.post(f"/v1/models/{MODEL}:predict", json={"instances": texts}).json()["predictions"],
        dtype=np.float32,
    )
    # Without encoding_format the SDK asks for base64 and decodes it itself; then floats.
    for options in ({}, {"encoding_format": "float"}):
        answer = sdk.embeddings.create(model=MODEL, input=texts, **options)  # type: ignore[call-overload]
        got = np.array([item.embedding for item in answer.data], dtype=np.float32)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        assert answer.model == MODEL and answer.usage.prompt_tokens > 0
    sdk.close()


def test_tf_serving_status_route_is_unchanged(http: httpx.Client) -> None:
    body = http.get(f"/v1/models/{MODEL}").json()
    assert body["model_version_status"][0]["state"] == "AVAILABLE"
    assert "signature_def" in http.get(f"/v1/models/{MODEL}/metadata").json()["metadata"]


@pytest.mark.parametrize("path", ["/v1/health", "/health"])
def test_health_is_200_when_every_model_is_available(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_health_is_503_naming_the_model_without_a_version(half_ready: str) -> None:
    for path in ("/v1/health", "/health"):
        response = httpx.get(half_ready + path, timeout=30)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert "later" in error and "tiny" not in error.replace("later", "")
    listed = httpx.get(half_ready + "/v1/models", timeout=30).json()["data"]
    assert [entry["id"] for entry in listed] == ["tiny"]  # 'later' has nothing AVAILABLE


def test_unknown_paths_answer_json_errors(http: httpx.Client) -> None:
    for method, path in (("GET", "/nothing"), ("POST", "/v1/models"), ("GET", "/v1/rerank")):
        response = http.request(method, path)
        assert response.status_code in (400, 404), response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]


def _embed(http: httpx.Client, **options: Any) -> httpx.Response:
    body = {"model": MODEL, "input": ["A man is playing a guitar.", "short"], **options}
    return http.post(contract.OPENAI_EMBEDDINGS_PATH, json=body)


def test_embedding_options_that_keep_the_answer_are_accepted(http: httpx.Client) -> None:
    plain = np.array([d["embedding"] for d in _embed(http).json()["data"]])
    for options in ({"normalize": True}, {"truncate": True}, {"user": "me"}, {"dimensions": 384}):
        response = _embed(http, **options)
        assert response.status_code == 200, (options, response.text)
        got = np.array([d["embedding"] for d in response.json()["data"]])
        # MiniLM normalises in the graph: re-normalising moves it by float rounding only
        np.testing.assert_allclose(got, plain, rtol=0, atol=1e-6)
    normalized = np.array([d["embedding"] for d in _embed(http, normalize=True).json()["data"]])
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"normalize": False}, "'normalize'"),
        ({"normalize": "yes"}, "'normalize'"),
        ({"truncate": False}, "'truncate'"),
        ({"prompt_name": "query"}, "'prompt_name'"),  # MiniLM has no prompts
        ({"prompt_name": 5}, "'prompt_name'"),
        ({"dimensions": 128}, "'dimensions'"),
        ({"dimensions": "384"}, "'dimensions'"),
        ({"user": 5}, "'user'"),
    ],
)
def test_embedding_options_that_would_change_the_answer_are_refused(
    http: httpx.Client, options: dict[str, Any], fragment: str
) -> None:
    response = _embed(http, **options)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]
