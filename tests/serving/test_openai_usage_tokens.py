"""``/v1/embeddings`` usage tokens, counted in the embedding's own worker call, equal what the
reference tokenizer makes of the text the model embeds: the sentence-transformers prompt
(the default one, or ``prompt_name``'s) prepended."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from models import contract
from tests.support.server_process import ServerProcess

_PROMPTS = {"query": "query: a longer instruction to find the passages that answer: ", "p": "p: "}
_TEXTS = ["how tall is the tower?", "The tower is 324 metres tall.", "", "x " * 600]


@pytest.fixture(scope="module")
def prompt_export(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(checkpoint, export base) of a tiny sentence-transformers model whose default prompt
    is ``p``."""
    from models.export.exporter import export_model

    root = tmp_path_factory.mktemp("usage_tokens")
    checkpoint = root / "ckpt"
    shutil.copytree(tiny_checkpoint("base"), checkpoint)
    (checkpoint / "1_Pooling").mkdir()
    (checkpoint / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    st = "sentence_transformers.models."
    (checkpoint / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": st + "Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": st + "Pooling"},
            ]
        )
    )
    (checkpoint / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": _PROMPTS, "default_prompt_name": "p"})
    )
    export_model(checkpoint=checkpoint, output=root / "export" / "1", progress=False)
    return checkpoint, root / "export"


@pytest.fixture(scope="module")
def http(prompt_export: tuple[Path, Path]) -> Iterator[httpx.Client]:
    with (
        ServerProcess(model_name="st", model_base_path=prompt_export[1]) as server,
        httpx.Client(base_url=server.rest_url, timeout=60) as client,
    ):
        yield client


def _reference_tokens(checkpoint: Path, prompt: str) -> int:
    """Tokens the reference tokenizer gives prompt + text, truncated at max_seq_length."""
    from transformers import AutoTokenizer

    card = json.loads((checkpoint.parent / "export" / "1" / contract.MODEL_CARD_FILE).read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    encoded = tokenizer(
        [prompt + text for text in _TEXTS], truncation=True, max_length=card["max_seq_length"]
    )
    return sum(len(ids) for ids in encoded["input_ids"])


@pytest.mark.parametrize(
    ("prompt_name", "prompt"),
    [(None, _PROMPTS["p"]), ("query", _PROMPTS["query"])],
    ids=["default_prompt", "prompt_name"],
)
def test_usage_counts_the_tokens_of_the_prompted_text(
    http: httpx.Client, prompt_export: tuple[Path, Path], prompt_name: str | None, prompt: str
) -> None:
    body = {"model": "st", "input": _TEXTS} | ({"prompt_name": prompt_name} if prompt_name else {})
    response = http.post(contract.OPENAI_EMBEDDINGS_PATH, json=body)
    assert response.status_code == 200, response.text
    want = _reference_tokens(prompt_export[0], prompt)
    assert response.json()["usage"] == {"prompt_tokens": want, "total_tokens": want}
    # The embedding is the prompt signature's: the token count did not change what ran.
    got = np.array([row["embedding"] for row in response.json()["data"]], dtype=np.float32)
    predict = http.post(
        "/v1/models/st:predict",
        json={
            "signature_name": (
                contract.SERVING_PROMPT_PREFIX + prompt_name
                if prompt_name
                else contract.SERVING_DEFAULT
            ),
            "instances": _TEXTS,
        },
    )
    assert predict.status_code == 200, predict.text
    # One output: TF Serving's row format answers each row's value itself.
    want_vectors = np.array(predict.json()["predictions"], dtype=np.float32)
    np.testing.assert_allclose(got, want_vectors, atol=2e-6, rtol=0)
