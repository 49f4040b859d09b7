"""sentence-transformers prompts baked into embedding exports: one signature per prompt."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models import contract

_PROMPTS = {"query": "query: ", "passage": "passage: "}
_TEXTS = ["how tall is the tower?", "The tower is 324 metres tall.", ""]


def _st_checkpoint(base: Path, directory: Path, *, default_prompt_name: str | None) -> Path:
    shutil.copytree(base, directory)
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    st = "sentence_transformers.models."
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": st + "Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": st + "Pooling"},
    ]
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": _PROMPTS, "default_prompt_name": default_prompt_name})
    )
    return directory


@pytest.fixture(scope="module", params=[None, "passage"], ids=["no_default", "default_passage"])
def exported(
    request: pytest.FixtureRequest,
    tiny_checkpoint: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path]:
    from models.export.exporter import export_model

    root = tmp_path_factory.mktemp("prompts")
    checkpoint = _st_checkpoint(
        tiny_checkpoint("base"), root / "ckpt", default_prompt_name=request.param
    )
    export_model(checkpoint=checkpoint, output=root / "export" / "1", progress=False)
    return checkpoint, root / "export" / "1"


def test_prompt_signatures_match_sentence_transformers(exported: tuple[Path, Path]) -> None:
    import tensorflow as tf
    from sentence_transformers import SentenceTransformer

    checkpoint, export = exported
    reference = SentenceTransformer(str(checkpoint), device="cpu")
    loaded = tf.saved_model.load(str(export))
    text = tf.constant(_TEXTS)
    for name in _PROMPTS:
        got = loaded.signatures[contract.SERVING_PROMPT_PREFIX + name](text=text)
        want = reference.encode(_TEXTS, prompt_name=name)
        np.testing.assert_allclose(got[contract.EMBEDDING].numpy(), want, atol=1e-5, rtol=0)
    default = loaded.signatures[contract.SERVING_DEFAULT](text=text)[contract.EMBEDDING].numpy()
    np.testing.assert_allclose(default, reference.encode(_TEXTS), atol=1e-5, rtol=0)
    card = json.loads((export / contract.MODEL_CARD_FILE).read_text())
    assert card["prompts"] == _PROMPTS
    assert card["default_prompt_name"] == reference.default_prompt_name


def test_include_prompt_false_is_refused(
    tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    from models.errors import CheckpointError
    from models.loading.checkpoint_loader import CheckpointLoader

    checkpoint = _st_checkpoint(tiny_checkpoint("base"), tmp_path / "c", default_prompt_name=None)
    pooling = checkpoint / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({**json.loads(pooling.read_text()), "include_prompt": False}))
    with pytest.raises(CheckpointError, match="include_prompt=false"):
        CheckpointLoader(checkpoint)


def test_served_prompt_name_uses_the_prompt_signature(exported: tuple[Path, Path]) -> None:
    import httpx
    from sentence_transformers import SentenceTransformer

    from tests.support.server_process import ServerProcess

    checkpoint, export = exported
    reference = SentenceTransformer(str(checkpoint), device="cpu")
    with (
        ServerProcess(model_name="st", model_base_path=export.parent) as server,
        httpx.Client(base_url=server.rest_url, timeout=60) as http,
    ):
        response = http.post(
            "/v1/embeddings", json={"model": "st", "input": _TEXTS, "prompt_name": "query"}
        )
        assert response.status_code == 200, response.text
        got = np.array([row["embedding"] for row in response.json()["data"]])
        want = reference.encode(_TEXTS, prompt_name="query")
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        unknown = http.post(
            "/v1/embeddings", json={"model": "st", "input": _TEXTS, "prompt_name": "doc"}
        )
        assert unknown.status_code == 400, unknown.text
        assert "passage, query" in unknown.json()["error"]["message"]
