"""``POST /v1/rerank`` on a real server, against the PyTorch cross-encoder it was exported from.

Two tiny random BertForSequenceClassification checkpoints: one logit (score = sigmoid, as
sentence-transformers' CrossEncoder) and three labels (score = softmax of the last class); the
tiny embedding model is served beside them to be refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from clients import (
    AsyncGrpcClient,
    AsyncRestClient,
    GrpcClient,
    InvalidInputError,
    RerankResult,
    RestClient,
)
from tests.support.server_process import ServerProcess

QUERY = "How do I bake bread at home?"
DOCUMENTS = [
    "Mix flour, water, salt and yeast, knead, let it rise and bake at 230 °C.",
    "The stock market closed higher today.",
    "Bread baking needs patience: a long proof gives flavour.",
    "Straße, café, naïve — ﬁne 日本語 text",
    "bread",
]


def _torch_scores(checkpoint: Path, query: str, documents: list[str]) -> np.ndarray:
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    model = transformers.BertForSequenceClassification.from_pretrained(str(checkpoint)).eval()
    batch = tokenizer([query] * len(documents), documents, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits.double()
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0]).numpy()
    return torch.softmax(logits, dim=1)[:, -1].numpy()


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoint: Callable[..., Path]) -> dict[str, Path]:
    return {
        # One logit (sentence-transformers' CrossEncoder layout), scores spread by a larger
        # perturbation of the random init.
        "ce1": tiny_checkpoint("classification", labels=("LABEL_0",), seed=7, perturbation=0.5),
        "ce3": tiny_checkpoint("classification"),
    }


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path], tiny_model_dir: Path
) -> Iterator[ServerProcess]:
    from models.export.exporter import export_model

    root = tmp_path_factory.mktemp("rerank_models")
    for name, checkpoint in checkpoints.items():
        export_model(checkpoint=checkpoint, output=root / name / "1", progress=False)
    config = root / "models.config"
    config.write_text(
        "model_config_list { "
        + "".join(f'config {{ name: "{n}" base_path: "{root / n}" }} ' for n in checkpoints)
        + f'config {{ name: "tiny" base_path: "{tiny_model_dir}" }} }}'
    )
    with ServerProcess(
        model_config_file=config,
        args=["--enable_batching", "--max_rows_per_request=16"],
        wait_for=[*checkpoints, "tiny"],
    ) as process:
        yield process


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest_url, timeout=120) as client:
        yield client


def _rerank(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/v1/rerank", json=body)


@pytest.mark.parametrize("model", ["ce1", "ce3"])
def test_rerank_scores_and_order_match_the_pytorch_cross_encoder(
    http: httpx.Client, checkpoints: dict[str, Path], model: str
) -> None:
    expected = _torch_scores(checkpoints[model], QUERY, DOCUMENTS)
    response = _rerank(http, model=model, query=QUERY, documents=DOCUMENTS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == model
    results = body["results"]
    assert [r["index"] for r in results] == np.argsort(-expected, kind="stable").tolist()
    got = np.array([r["relevance_score"] for r in results])
    np.testing.assert_allclose(got, expected[[r["index"] for r in results]], rtol=0, atol=1e-4)
    assert all("document" not in r for r in results)
    assert body["usage"] == {"pairs": len(DOCUMENTS)}
    assert len(set(got.round(6))) > 1  # the random model does tell the documents apart


def test_rerank_top_n_texts_alias_and_return_documents(http: httpx.Client) -> None:
    full = _rerank(http, model="ce1", query=QUERY, documents=DOCUMENTS).json()["results"]
    top = _rerank(
        http, model="ce1", query=QUERY, texts=DOCUMENTS, top_n=2, return_documents=True
    ).json()["results"]
    assert [r["index"] for r in top] == [r["index"] for r in full[:2]]
    assert [r["document"] for r in top] == [{"text": DOCUMENTS[r["index"]]} for r in top]
    many = _rerank(http, model="ce1", query=QUERY, documents=DOCUMENTS, top_n=99).json()
    assert len(many["results"]) == len(DOCUMENTS)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"model": "tiny", "query": "q", "documents": ["d"]}, 400, "cannot rerank"),
        ({"model": "ce1", "query": "q", "documents": []}, 400, "non-empty"),
        ({"model": "ce1", "query": "q", "documents": ["d"] * 17}, 400, "limit is 16"),
        ({"model": "ce1", "query": "q", "documents": ["d"], "top_n": 0}, 400, "top_n"),
        ({"model": "ce1", "query": "q", "documents": [1]}, 400, "strings"),
        ({"model": "ce1", "documents": ["d"]}, 400, "'query'"),
        ({"model": "ce1", "query": "q", "documents": ["d"], "texts": ["d"]}, 400, "not both"),
        ({"model": "absent", "query": "q", "documents": ["d"]}, 404, "absent"),
    ],
)
def test_rerank_refusals_are_json_errors(
    http: httpx.Client, body: dict[str, Any], status: int, fragment: str
) -> None:
    response = _rerank(http, **body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_rest_clients_rerank_sync_and_async(server: ServerProcess, http: httpx.Client) -> None:
    raw = _rerank(http, model="ce1", query=QUERY, documents=DOCUMENTS, top_n=3).json()
    expected = [RerankResult(r["index"], r["relevance_score"]) for r in raw["results"]]
    with RestClient(server.rest_url, model_name="ce1") as client:
        assert client.rerank(QUERY, DOCUMENTS, top_n=3) == expected

    async def run() -> list[RerankResult]:
        async with AsyncRestClient(server.rest_url, model_name="ce1") as client:
            return await client.rerank(QUERY, DOCUMENTS, top_n=3)

    assert asyncio.run(run()) == expected


@pytest.mark.parametrize("model", ["ce1", "ce3"])
def test_grpc_clients_rerank_through_serving_pair_as_the_server_ranks(
    model: str, server: ServerProcess, http: httpx.Client
) -> None:
    # gRPC has no rerank route: the client ranks one Predict on serving_pair (so it works
    # against TF Serving too) and must give the server's /v1/rerank answer.
    raw = _rerank(http, model=model, query=QUERY, documents=DOCUMENTS).json()["results"]
    with GrpcClient(server.grpc_target, model_name=model) as client:
        ours = client.rerank(QUERY, DOCUMENTS)
        assert [r.index for r in ours] == [r["index"] for r in raw]
        np.testing.assert_allclose(
            [r.relevance_score for r in ours], [r["relevance_score"] for r in raw], atol=1e-6
        )
        assert [r.index for r in client.rerank(QUERY, DOCUMENTS, top_n=2)] == [
            r["index"] for r in raw[:2]
        ]
        with pytest.raises(InvalidInputError):
            client.rerank(QUERY, [])

    async def run() -> list[RerankResult]:
        async with AsyncGrpcClient(server.grpc_target, model_name=model) as client:
            return await client.rerank(QUERY, DOCUMENTS, top_n=3)

    assert [r.index for r in asyncio.run(run())] == [r["index"] for r in raw[:3]]


def test_one_logit_export_reports_sigmoid_probabilities(http: httpx.Client) -> None:
    # A softmax over one logit is always 1; one-logit exports use a sigmoid (CrossEncoder's).
    response = http.post("/v1/models/ce1:predict", json={"instances": DOCUMENTS})
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    logits = np.array([row["logits"] for row in rows], dtype=np.float64)
    probabilities = np.array([row["probabilities"] for row in rows], dtype=np.float64)
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-logits)), rtol=0, atol=1e-6)
    assert not np.allclose(probabilities, 1.0)
