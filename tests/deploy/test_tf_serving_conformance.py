"""Conformance: the project's clients and load-test harness against a TF Serving-compatible server.

Every test runs against two targets:

- ``textserve-server``: always, started from deploy/'s files (tests/deploy/conftest.py), so the
  suite itself is proven on every CI run;
- ``tensorflow_model_server``: a real TF Serving given by address, e.g. from
  ``docker compose -f deploy/compose.cpu.yaml up`` (deploy/README.md, section 7)::

      TEXTSERVE_TF_SERVING_GRPC=localhost:8500
      TEXTSERVE_TF_SERVING_REST=http://localhost:8501
      TEXTSERVE_TF_SERVING_MODEL=minilm                      # default: the bundled model's name
      TEXTSERVE_TF_SERVING_MODEL_DIR=$PWD/exported/minilm    # default: the session's own export

  Skipped, with the reason, when those variables are not set (tensorflow_model_server cannot be
  installed here: Docker images or a Bazel build only). Set but not answering is a failure: a
  skip would hide that the proof did not run.

Answers are checked against the same SavedModel run in-process, not against the other server.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from clients import GrpcClient, InvalidInputError, NotFoundError, RestClient
from models import contract
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.conformance

ENV_GRPC = "TEXTSERVE_TF_SERVING_GRPC"
ENV_REST = "TEXTSERVE_TF_SERVING_REST"
ENV_MODEL = "TEXTSERVE_TF_SERVING_MODEL"
ENV_MODEL_DIR = "TEXTSERVE_TF_SERVING_MODEL_DIR"

TEXTSERVE = "textserve-server"
TF_SERVING = "tensorflow_model_server"

# Different servers batch the same texts differently (another bucket length, another batch
# size); with attention masking that moves float32 results by ~1e-6, never by 1e-4.
EMBEDDING_ATOL = 1e-4


@dataclasses.dataclass(frozen=True)
class Target:
    """A running server and the export it serves (the in-process reference)."""

    kind: str
    grpc: str
    rest: str
    model_name: str
    model_base: Path


@pytest.fixture(scope="session", params=[TEXTSERVE, TF_SERVING])
def target(request: pytest.FixtureRequest) -> Target:
    # Fixtures are requested lazily: ``-k tensorflow_model_server`` with
    # TEXTSERVE_TF_SERVING_MODEL_DIR set neither exports a model nor starts textserve-server.
    if request.param == TEXTSERVE:
        server: ServerProcess = request.getfixturevalue("deploy_server")
        return Target(
            TEXTSERVE,
            server.grpc_target,
            server.rest_url,
            contract.BUNDLED_MODEL_NAME,
            request.getfixturevalue("deployed_model_base"),
        )
    grpc_address, rest_url = os.environ.get(ENV_GRPC), os.environ.get(ENV_REST)
    if not grpc_address or not rest_url:
        pytest.skip(
            f"no TF Serving configured: set {ENV_GRPC}=host:8500 and {ENV_REST}=http://host:8501 "
            "(docker compose -f deploy/compose.cpu.yaml up; see deploy/README.md)"
        )
    found = Target(
        TF_SERVING,
        grpc_address,
        rest_url.rstrip("/"),
        os.environ.get(ENV_MODEL, contract.BUNDLED_MODEL_NAME),
        Path(os.environ[ENV_MODEL_DIR])
        if os.environ.get(ENV_MODEL_DIR)
        else request.getfixturevalue("deployed_model_base"),
    )
    with GrpcClient(found.grpc, model_name=found.model_name) as client:
        try:
            client.wait_until_ready(timeout_s=30)
        except Exception as exc:  # any failure here means the configured server is not usable
            pytest.fail(f"TF Serving configured at {found.grpc} / {found.rest} is not ready: {exc}")
    return found


@pytest.fixture(scope="session")
def grpc_client(target: Target) -> Iterator[GrpcClient]:
    with GrpcClient(target.grpc, model_name=target.model_name, timeout_s=120) as client:
        yield client


@pytest.fixture(scope="session")
def rest_client(target: Target) -> Iterator[RestClient]:
    with RestClient(target.rest, model_name=target.model_name, timeout_s=120) as client:
        yield client


@pytest.fixture(params=["grpc", "rest"])
def client(request: pytest.FixtureRequest, target: Target) -> GrpcClient | RestClient:
    # Depends on ``target`` so that every client test is parametrized over the targets too.
    return request.getfixturevalue(f"{request.param}_client")


class Reference:
    """The served SavedModel, loaded in this process: what every answer must equal."""

    def __init__(self, version_dir: Path) -> None:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

        self.version_dir = version_dir
        self._tf = tf
        self._model = tf.saved_model.load(str(version_dir))

    def run(self, signature: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        tf = self._tf
        fn = self._model.signatures[signature]
        outputs = fn(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}


_REFERENCES: dict[Path, Reference] = {}


@pytest.fixture(scope="session")
def served_version(grpc_client: GrpcClient) -> int:
    versions = [s.version for s in grpc_client.model_status() if s.state == "AVAILABLE"]
    assert versions, "no AVAILABLE version"
    return max(versions)


@pytest.fixture(scope="session")
def reference(target: Target, served_version: int) -> Reference:
    version_dir = (target.model_base / str(served_version)).resolve()
    if version_dir not in _REFERENCES:  # both targets usually serve the same export
        _REFERENCES[version_dir] = Reference(version_dir)
    return _REFERENCES[version_dir]


@pytest.fixture(scope="session")
def texts(stsb_dir: Path) -> list[str]:
    """STS-B sentences in five scripts, plus inputs that stress the tokenizer's normalization."""
    out: list[str] = []
    for lang, count in (("en", 16), ("de", 4), ("zh", 4), ("ru", 4), ("ja", 4)):
        with (stsb_dir / f"stsb-{lang}-test.csv").open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))  # no header row: sentence1, sentence2, score
        out.extend(row[0] for row in rows[:count])
    return out + ["Straße, café, naïve — ﬁne ½ ² ＡＢＣ", "emoji 🙂 and\ttabs\nand newlines"]


def test_model_is_available_with_the_same_versions_over_both_apis(
    grpc_client: GrpcClient, rest_client: RestClient
) -> None:
    grpc_states = {s.version: s.state for s in grpc_client.model_status()}
    rest_states = {s.version: s.state for s in rest_client.model_status()}
    assert "AVAILABLE" in grpc_states.values()
    assert grpc_states == rest_states


def test_metadata_lists_the_contract_signatures(client: GrpcClient | RestClient) -> None:
    metadata = client.model_metadata()
    for name in (contract.SERVING_DEFAULT, contract.SERVING_PAIR, contract.PREPROCESS):
        assert name in metadata.signatures
    default = metadata.signatures[contract.SERVING_DEFAULT]
    assert default.inputs[contract.TEXT].dtype == "DT_STRING"
    assert default.outputs[contract.EMBEDDING].dtype == "DT_FLOAT"
    pair = metadata.signatures[contract.SERVING_PAIR]
    assert set(pair.inputs) == {contract.TEXT, contract.TEXT_PAIR}


def test_embeddings_equal_the_in_process_savedmodel(
    client: GrpcClient | RestClient, reference: Reference, texts: list[str]
) -> None:
    served = client.embed(texts)
    expected = reference.run(contract.SERVING_DEFAULT, {contract.TEXT: texts})[contract.EMBEDDING]
    assert served.shape == expected.shape == (len(texts), expected.shape[1])
    np.testing.assert_allclose(served, expected, atol=EMBEDDING_ATOL)


def test_text_beyond_max_seq_length_is_truncated_alike(
    client: GrpcClient | RestClient, reference: Reference
) -> None:
    # Its own small request: one text in the 256 bucket pads its whole batch to 256 tokens.
    texts = [" ".join(["a long text that is truncated to the maximum length"] * 60), "short"]
    expected = reference.run(contract.SERVING_DEFAULT, {contract.TEXT: texts})[contract.EMBEDDING]
    np.testing.assert_allclose(client.embed(texts), expected, atol=EMBEDDING_ATOL)


def test_version_label_and_number_route_to_the_same_version(
    client: GrpcClient | RestClient, reference: Reference, served_version: int
) -> None:
    few = ["routing by label", "routing by number"]
    expected = reference.run(contract.SERVING_DEFAULT, {contract.TEXT: few})[contract.EMBEDDING]
    np.testing.assert_allclose(
        client.embed(few, version_label="stable"), expected, atol=EMBEDDING_ATOL
    )
    np.testing.assert_allclose(
        client.embed(few, version=served_version), expected, atol=EMBEDDING_ATOL
    )


def test_sentence_pairs_equal_the_in_process_savedmodel(
    client: GrpcClient | RestClient, reference: Reference, texts: list[str]
) -> None:
    inputs = {contract.TEXT: texts[:6], contract.TEXT_PAIR: texts[6:12]}
    served = client.predict(inputs, signature_name=contract.SERVING_PAIR)
    expected = reference.run(contract.SERVING_PAIR, inputs)
    np.testing.assert_allclose(
        served[contract.EMBEDDING], expected[contract.EMBEDDING], atol=EMBEDDING_ATOL
    )


def test_preprocess_token_ids_are_identical(
    client: GrpcClient | RestClient, reference: Reference, texts: list[str]
) -> None:
    inputs = {contract.TEXT: texts[-6:]}
    served = client.predict(inputs, signature_name=contract.PREPROCESS)
    expected = reference.run(contract.PREPROCESS, inputs)
    for name in (contract.INPUT_WORD_IDS, contract.INPUT_MASK, contract.INPUT_TYPE_IDS):
        np.testing.assert_array_equal(served[name], expected[name])


def test_encode_batch_major_outputs_equal_the_in_process_savedmodel(
    client: GrpcClient | RestClient, reference: Reference, texts: list[str]
) -> None:
    # TF Serving's batching splits outputs along dimension 0, so the layer-major
    # encoder_outputs [layers, batch, seq, hidden] is left out (deploy/README.md, Tuning).
    ids = reference.run(contract.PREPROCESS, {contract.TEXT: texts[:4]})
    wanted = [contract.POOLED_OUTPUT, contract.SEQUENCE_OUTPUT]
    served = client.predict(ids, signature_name=contract.ENCODE, output_filter=wanted)
    expected = reference.run(contract.ENCODE, ids)
    assert sorted(served) == sorted(wanted)
    for name in wanted:
        np.testing.assert_allclose(served[name], expected[name], atol=EMBEDDING_ATOL)


def test_unknown_model_is_not_found(target: Target, client: GrpcClient | RestClient) -> None:
    other = type(client)(
        target.grpc if isinstance(client, GrpcClient) else target.rest,
        model_name="no_such_model",
        timeout_s=30,
    )
    with other, pytest.raises(NotFoundError):
        other.embed(["hello"])


def test_unknown_input_name_is_invalid_input(client: GrpcClient | RestClient) -> None:
    with pytest.raises(InvalidInputError):
        client.predict({"not_an_input": ["hello"]})


def test_unknown_signature_is_invalid_input(client: GrpcClient | RestClient) -> None:
    # tensorflow_model_server: FAILED_PRECONDITION 'Serving signature key "..." not found.' over
    # gRPC (predict_util.cc) and 400 over REST, i.e. InvalidInputError, never NotFoundError.
    with pytest.raises(InvalidInputError):
        client.predict({contract.TEXT: ["hello"]}, signature_name="no_such_signature")


def test_unknown_version_label_is_invalid_input(client: GrpcClient | RestClient) -> None:
    # tensorflow_model_server: INVALID_ARGUMENT "Unrecognized servable version label: nightly"
    # (server_core.cc GetModelVersionForLabel), 400 over REST.
    with pytest.raises(InvalidInputError) as caught:
        client.predict({contract.TEXT: ["hello"]}, version_label="nightly")
    assert "Unrecognized servable version label: nightly" in caught.value.message


def test_prometheus_metrics_on_the_rest_port(target: Target) -> None:
    r = httpx.get(f"{target.rest}{contract.METRICS_PATH}", timeout=30)
    assert r.status_code == 200
    assert "# TYPE " in r.text


def test_loadtest_harness_passes(target: Target, stsb_dir: Path, tmp_path: Path) -> None:
    # The console script the README documents, not its Python API: the whole harness runs
    # (closed loop, 4 in flight), and checks every answer against the target's own first
    # answer for that text, so batching under load must not change results. The answers
    # themselves are checked against the in-process SavedModel by the client tests above.
    # Over gRPC only: the REST path is covered there too, and each run pays a process start.
    script = Path(sys.executable).with_name("textserve-loadtest")
    report_path = tmp_path / "report.json"
    command = [
        str(script),
        "--target=grpc",
        f"--address={target.grpc}",
        f"--model-name={target.model_name}",
        f"--texts={stsb_dir / 'stsb-en-test.csv'}",
        "--csv-fieldnames=sentence1,sentence2,score",
        "--csv-column=sentence1",
        "--limit-texts=64",
        "--batch-size=8",
        "--concurrency=4",
        "--warmup=0.5",
        "--duration=2",
        f"--json-report={report_path}",
        "--no-progress",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["passed"] is True and report["failures"] == []
    assert report["reference_texts"] > 0  # distinct texts among the 64
    (phase,) = report["phases"]
    assert phase["ok"] > 0 and phase["errors"] == {}
    assert phase["mismatched_requests"] == 0 and phase["unaccounted"] == 0
