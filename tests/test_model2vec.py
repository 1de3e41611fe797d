"""lite_plugins.model2vec: StaticTokenEncoder from tiny Model2Vec StaticModels built in code (offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("model2vec")

from model2vec import StaticModel
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from lite_plugins.core import LiteModel
from lite_plugins.model2vec import StaticTokenEncoder

WORDS = ["[PAD]", "[UNK]", "late", "interaction", "ranking", "cat", "sat", "mat", "the", "what", "is", "##s"]
TEXTS = ["What is late interaction?", "the cat sat", "cats zebra mat", "zebra"]


def tiny_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


@pytest.fixture()
def static_model() -> StaticModel:
    vectors = np.random.default_rng(0).normal(size=(len(WORDS), 8)).astype(np.float32)
    return StaticModel(vectors, tiny_tokenizer(), normalize=True, base_model_name="tiny")


@pytest.fixture()
def quantized_model() -> StaticModel:
    """A vocabulary-quantized model: 3 cluster vectors, a token -> cluster mapping and token weights."""
    rng = np.random.default_rng(1)
    return StaticModel(
        rng.normal(size=(3, 8)).astype(np.float16),
        tiny_tokenizer(),
        weights=rng.uniform(0.5, 2.0, size=len(WORDS)).astype(np.float32),
        token_mapping=rng.integers(0, 3, size=len(WORDS)),
    )


def _expected(model: StaticModel, normalize: bool) -> list[torch.Tensor]:
    rows = [torch.as_tensor(np.asarray(s, dtype=np.float32)) for s in model.encode_as_sequence(TEXTS)]
    return [torch.nn.functional.normalize(r, dim=-1) if normalize else r for r in rows]


@pytest.mark.parametrize("fixture", ["static_model", "quantized_model"])
@pytest.mark.parametrize("normalize", [True, False])
def test_token_vectors_equal_encode_as_sequence(fixture: str, normalize: bool, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(fixture)
    encoder = StaticTokenEncoder.from_static_model(model, query_length=16, document_length=16, normalize=normalize)
    output = encoder.encode(TEXTS, "document").unpadded()
    expected = _expected(model, normalize)
    assert [len(o) for o in output] == [len(e) for e in expected] == [4, 3, 3, 0]
    for got, want in zip(output, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


def test_from_pretrained_reads_a_model2vec_folder(static_model: StaticModel, tmp_path: Path) -> None:
    static_model.save_pretrained(tmp_path / "m2v")
    encoder = StaticTokenEncoder.from_pretrained(tmp_path / "m2v", query_length=5, document_length=7)
    direct = StaticTokenEncoder.from_static_model(static_model, query_length=5, document_length=7)
    assert (encoder.query_length, encoder.document_length, encoder.embedding_dim) == (5, 7, 8)
    torch.testing.assert_close(encoder.encode(TEXTS, "query").embeddings, direct.encode(TEXTS, "query").embeddings)


def test_from_pretrained_names_what_failed_for_an_unreachable_hub_id() -> None:
    with pytest.raises(OSError, match="'no-such-org/no-such-static-model' is not a loadable Model2Vec"):
        StaticTokenEncoder.from_pretrained("no-such-org/no-such-static-model")


def test_from_pretrained_rejects_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="not a loadable Model2Vec local folder"):
        StaticTokenEncoder.from_pretrained(tmp_path)


def test_not_a_static_model_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="StaticModel"):
        StaticTokenEncoder.from_static_model(object())


def test_static_lite_model_saves_loads_and_ranks(static_model: StaticModel, tmp_path: Path) -> None:
    encoder = StaticTokenEncoder.from_static_model(static_model, query_length=6, document_length=10)
    model = LiteModel.from_encoder(encoder, scorer="separable", seed=0).eval()
    before = model.score("late interaction", TEXTS)
    model.save_pretrained(tmp_path / "lite")
    torch.testing.assert_close(LiteModel.from_pretrained(tmp_path / "lite").score("late interaction", TEXTS), before)
    assert model.score("late interaction", []).shape == (0,)


def test_to_static_model_round_trips_the_vectors(static_model: StaticModel) -> None:
    encoder = StaticTokenEncoder.from_static_model(static_model)
    with torch.no_grad():
        encoder.embedding.weight.mul_(2.0)  # stands in for fine-tuning
    exported = encoder.to_static_model()
    assert isinstance(exported, StaticModel)
    got = exported.encode_as_sequence(["late interaction"])[0]
    np.testing.assert_allclose(got, 2.0 * np.asarray(static_model.encode_as_sequence(["late interaction"])[0]))


def test_import_lite_plugins_does_not_import_model2vec() -> None:
    code = "import sys, lite_plugins, lite_plugins.core; print('model2vec' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_distill_cli_makes_a_loadable_static_model(tiny_bert_path: Path, tmp_path: Path) -> None:
    output = tmp_path / "distilled"
    command = [sys.executable, "-m", "lite_plugins.model2vec", "distill", "--model", str(tiny_bert_path)]
    result = subprocess.run(
        [*command, "--output", str(output), "--pca-dims", "8"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    encoder = StaticTokenEncoder.from_pretrained(output, query_length=8, document_length=16)
    assert encoder.embedding_dim == 8
    vectors = encoder.encode(["late interaction ranking"], "query")
    assert vectors.mask.sum() > 0 and torch.isfinite(vectors.embeddings).all()
