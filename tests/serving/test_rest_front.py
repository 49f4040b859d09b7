"""The REST front over plain HTTP (httpx) against the real server process: TF Serving's API."""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf

from models import contract
from tests.support.server_process import ServerProcess

TEXTS = ["hello", "caf\u00e9 \u65e5\u672c", "a much longer sentence than the others"]
METRICS_PATH = "/custom/prometheus"


def in_process(version_dir: Path, signature: str, **inputs: object) -> dict[str, np.ndarray]:
    """The SavedModel's own answer, loaded in this process (the reference for every check)."""
    function = tf.saved_model.load(str(version_dir)).signatures[signature]
    return {
        k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()
    }


@pytest.fixture(scope="module")
def server(tiny_base: Path) -> Iterator[ServerProcess]:
    config = tiny_base.parent / f"{tiny_base.name}.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "tiny" base_path: "{tiny_base}" model_platform: "tensorflow"\n'
        "    model_version_policy { all {} }\n"
        '    version_labels { key: "stable" value: 1 } }\n'
        "}\n"
    )
    monitoring = tiny_base.parent / f"{tiny_base.name}.monitoring"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}\n')
    with ServerProcess(
        model_config_file=config,
        wait_for=["tiny"],
        args=[f"--monitoring_config_file={monitoring}"],
    ) as srv:
        srv.wait_for_version("tiny", 1)
        srv.wait_for_version("tiny", 2)
        yield srv


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest_url, timeout=30) as client:
        yield client


def test_model_status_paths(http: httpx.Client) -> None:
    body = http.get("/v1/models/tiny").json()
    assert sorted(body["model_version_status"], key=lambda s: s["version"]) == [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in ("1", "2")
    ]
    one = http.get("/v1/models/tiny/versions/1").json()["model_version_status"]
    assert [s["version"] for s in one] == ["1"]
    labelled = http.get("/v1/models/tiny/labels/stable")
    assert labelled.status_code == 200
    missing = http.get("/v1/models/absent")
    assert missing.status_code == 404 and "absent" in missing.json()["error"]
    # Without a name TF Serving answers 400; we answer OpenAI's model list (test_openai_api.py).
    listed = http.get("/v1/models")
    assert listed.status_code == 200 and listed.json()["object"] == "list"


def test_metadata_has_tf_serving_shape(http: httpx.Client) -> None:
    response = http.get("/v1/models/tiny/versions/1/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["model_spec"] == {"name": "tiny", "version": "1", "signature_name": ""}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    text = signatures[contract.SERVING_DEFAULT]["inputs"][contract.TEXT]
    assert text["dtype"] == "DT_STRING"
    assert text["tensor_shape"]["dim"][0]["size"] == "-1"
    assert signatures["scale"]["method_name"] == "tensorflow/serving/predict"
    latest = http.get("/v1/models/tiny/metadata").json()
    assert latest["model_spec"]["version"] == "2"


def test_predict_row_columnar_and_b64_match_the_saved_model(
    http: httpx.Client, tiny_base: Path
) -> None:
    want = in_process(tiny_base / "2", contract.SERVING_DEFAULT, text=TEXTS)[contract.EMBEDDING]
    b64 = [{"b64": base64.b64encode(t.encode()).decode()} for t in TEXTS]
    forms = {
        "row": ({"instances": TEXTS}, "predictions"),
        "row named": ({"instances": [{"text": t} for t in TEXTS]}, "predictions"),
        "row b64": ({"instances": b64}, "predictions"),
        "columnar": ({"inputs": TEXTS}, "outputs"),
        "columnar named": ({"inputs": {"text": TEXTS}}, "outputs"),
        "columnar b64": ({"signature_name": "serving_default", "inputs": {"text": b64}}, "outputs"),
    }
    for form, (body, key) in forms.items():
        response = http.post("/v1/models/tiny:predict", json=body)
        assert response.status_code == 200, (form, response.text)
        got = np.array(response.json()[key], dtype=np.float32)
        assert got.tobytes() == want.tobytes(), form


def test_predict_version_and_label_paths(http: httpx.Client, tiny_base: Path) -> None:
    want = in_process(tiny_base / "1", contract.SERVING_DEFAULT, text=TEXTS[:1])
    for path in ("/v1/models/tiny/versions/1:predict", "/v1/models/tiny/labels/stable:predict"):
        response = http.post(path, json={"instances": TEXTS[:1]})
        got = np.array(response.json()["predictions"], dtype=np.float32)
        assert got.tobytes() == want[contract.EMBEDDING].tobytes(), path


def test_predict_numeric_signatures(http: httpx.Client, tiny_base: Path) -> None:
    x = np.array([[0.1, -2.5, 3e-8], [1, 2, 3]], dtype=np.float32)
    response = http.post(
        "/v1/models/tiny:predict",
        json={"signature_name": "scale", "instances": x.tolist()},  # float64 JSON of float32
    )
    got = np.array(response.json()["predictions"], dtype=np.float32)
    assert got.tobytes() == (x * 2).tobytes()
    response = http.post(
        "/v1/models/tiny:predict",
        json={"signature_name": "ids", "inputs": {"ids": [[1, 2], [2**31 - 1, -(2**31)]]}},
    )
    assert response.json() == {"outputs": [3, -1]}


def test_gzip_request_body(http: httpx.Client, tiny_base: Path) -> None:
    body = gzip.compress(json.dumps({"instances": TEXTS}).encode())
    response = http.post(
        "/v1/models/tiny:predict",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    want = in_process(tiny_base / "2", contract.SERVING_DEFAULT, text=TEXTS)[contract.EMBEDDING]
    assert np.array(response.json()["predictions"], np.float32).tobytes() == want.tobytes()


def test_malformed_paths_and_example_apis(http: httpx.Client) -> None:
    response = http.post("/v1/models/tiny:explain", json={})
    assert response.status_code == 400
    assert response.json() == {"error": "Malformed request: POST /v1/models/tiny:explain"}
    assert http.get("/v1/models/tiny:predict").status_code == 400
    classify = http.post("/v1/models/tiny:classify", json={"examples": [{"x": 1}]})
    assert classify.status_code == 400
    assert classify.json()["error"].startswith("No classification inputs found in SignatureDef")
    regress = http.post("/v1/models/tiny:regress", json={"signature_name": "x", "examples": []})
    assert regress.json() == {"error": "No signature was found with the name: x"}


def test_openapi_document_lists_the_routes(http: httpx.Client) -> None:
    response = http.get(contract.OPENAPI_PATH)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in (
        "/v1/models/{name}",
        "/v1/models/{name}/labels/{label}/metadata",
        "/v1/models/{name}:predict",
        "/v1/models/{name}/versions/{version}:predict",
        contract.OPENAI_EMBEDDINGS_PATH,
        contract.OPENAPI_PATH,
        contract.METRICS_PATH,
    ):
        assert path in paths, path
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', response.text))
    assert refs and refs <= set(document["components"]["schemas"])


def test_prometheus_on_the_configured_path(http: httpx.Client) -> None:
    http.post("/v1/models/tiny:predict", json={"instances": ["count me"]})
    http.post("/v1/models/tiny:predict", json={"instances": [[1]]})  # rejected by the codec
    response = http.get(METRICS_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert contract.METRIC_REQUESTS in text
    ok = re.search(rf'{contract.METRIC_REQUESTS}{{[^}}]*api="rest"[^}}]*code="OK"', text)
    rejected = re.search(
        rf'{contract.METRIC_REQUESTS}{{[^}}]*api="rest"[^}}]*code="INVALID_ARGUMENT"', text
    )
    assert ok and rejected, text
    assert http.get(contract.METRICS_PATH).status_code == 404  # only the configured path
