"""StaticTokenEncoder (core, no model2vec): tokenization, vectors, save/load, pair splitting, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from lite_plugins.core import LiteModel
from lite_plugins.core.encoders import encoder_class
from lite_plugins.core.encoders.static import StaticTokenEncoder

VOCAB = [
    "[PAD]",
    "[UNK]",
    "what",
    "is",
    "late",
    "interaction",
    "rank",
    "##ing",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
]


def word_piece_tokenizer() -> Tokenizer:
    """A tiny lower-casing WordPiece tokenizer without a post-processor, like Model2Vec's."""
    tokenizer = Tokenizer(models.WordPiece({token: i for i, token in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


@pytest.fixture()
def vectors() -> torch.Tensor:
    return torch.randn(len(VOCAB), 6, generator=torch.Generator().manual_seed(0))


@pytest.fixture()
def encoder(vectors: torch.Tensor) -> StaticTokenEncoder:
    return StaticTokenEncoder(vectors, word_piece_tokenizer(), query_length=4, document_length=8)


def test_registered_as_static_type() -> None:
    assert encoder_class("static") is StaticTokenEncoder


def test_vectors_are_the_rows_of_the_known_tokens(encoder: StaticTokenEncoder, vectors: torch.Tensor) -> None:
    output = encoder.encode(["The CAT zebra sat", "ranking"], "document")
    ids = [VOCAB.index(t) for t in ("the", "cat", "sat")]  # "zebra" is unknown: dropped, as Model2Vec does
    expected = torch.nn.functional.normalize(vectors[ids], dim=-1)
    assert output.mask.tolist() == [[True, True, True], [True, True, False]]
    torch.testing.assert_close(output.embeddings[0], expected)
    torch.testing.assert_close(output.embeddings[1, :2], torch.nn.functional.normalize(vectors[[6, 7]], dim=-1))
    assert output.embeddings[1, 2].abs().sum() == 0  # padding holds zeros


def test_unnormalized_vectors_keep_their_norms(vectors: torch.Tensor) -> None:
    encoder = StaticTokenEncoder(vectors, word_piece_tokenizer(), 4, 8, normalize=False)
    torch.testing.assert_close(encoder.encode(["cat"], "query").embeddings[0, 0], vectors[VOCAB.index("cat")])


def test_lengths_truncate_long_texts(encoder: StaticTokenEncoder) -> None:
    long_text = "the cat sat on the mat " * 10_000
    assert encoder.encode([long_text], "query").embeddings.shape[1] == 4
    assert encoder.encode([long_text], "document").embeddings.shape[1] == 8


def test_markers_are_prepended_and_use_the_budget(vectors: torch.Tensor) -> None:
    encoder = StaticTokenEncoder(vectors, word_piece_tokenizer(), 4, 8, query_marker="what")
    features = encoder.tokenize(["the cat sat on the mat"], "query")
    assert features["input_ids"][0].tolist() == [VOCAB.index(t) for t in ("what", "the", "cat", "sat")]
    assert encoder.tokenize(["the cat"], "document")["input_ids"][0].tolist() == [8, 9]
    with pytest.raises(ValueError, match="no known token"):
        StaticTokenEncoder(vectors, word_piece_tokenizer(), 4, 8, query_marker="zebra")


def test_empty_and_bad_input(encoder: StaticTokenEncoder) -> None:
    empty = encoder.encode([], "query")
    assert empty.embeddings.shape == (0, 0, 6)
    only_unknown = encoder.encode(["zebra giraffe"], "query")
    assert only_unknown.mask.sum() == 0
    with pytest.raises(TypeError, match="list of strings"):
        encoder.encode("a single string", "query")
    with pytest.raises(TypeError, match=r"\[1\] must be a string"):
        encoder.tokenize(["ok", 3], "query")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="side"):
        encoder.tokenize(["ok"], "passage")  # type: ignore[arg-type]


def test_constructor_rejects_mismatched_inputs(vectors: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="one row per token id"):
        StaticTokenEncoder(vectors[:5], word_piece_tokenizer())
    with pytest.raises(ValueError, match=r"\[vocab_size, dim\]"):
        StaticTokenEncoder(torch.randn(len(VOCAB)), word_piece_tokenizer())
    with pytest.raises(TypeError, match=r"tokenizers\.Tokenizer"):
        StaticTokenEncoder(vectors, object())  # type: ignore[arg-type]


def test_a_document_of_unknown_tokens_scores_like_an_empty_one(encoder: StaticTokenEncoder) -> None:
    model = LiteModel.from_encoder(encoder, scorer="separable", seed=0).eval()
    scores = model.score("late interaction", ["zebra", "giraffe okapi", "the cat"])
    assert torch.isfinite(scores).all()
    assert scores[0] == scores[1]
    assert scores[0] != scores[2]


@pytest.mark.parametrize("scorer", ["separable", "flattened", "maxsim", "mean_mlp"])
def test_checkpoint_round_trip_gives_identical_scores(encoder: StaticTokenEncoder, scorer: str, tmp_path: Path) -> None:
    model = LiteModel.from_encoder(encoder, scorer=scorer, seed=0).eval()
    documents = ["the cat sat on the mat", "late interaction ranking", "what is", ""]
    before = model.score("what is late interaction", documents)
    model.save_pretrained(tmp_path / "static-lite")
    loaded = LiteModel.from_pretrained(tmp_path / "static-lite")
    assert isinstance(loaded.encoder, StaticTokenEncoder)
    assert loaded.get_config() == model.get_config()
    torch.testing.assert_close(loaded.score("what is late interaction", documents), before)


def test_saved_tokenizer_splits_a_pair_back_into_the_same_inputs(encoder: StaticTokenEncoder, tmp_path: Path) -> None:
    """What a CrossEncoder adapter does: tokenize (query, document) together, split, rebuild each side."""
    from transformers import AutoTokenizer

    LiteModel.from_encoder(encoder, scorer="maxsim").save_pretrained(tmp_path / "ckpt")
    pair_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "ckpt")
    query, document = "what is late interaction", "The cat zebra sat on the mat ranking"
    pair = pair_tokenizer(query, document)
    sides = {
        side: [i for i, kind in zip(pair["input_ids"], pair["token_type_ids"], strict=True) if kind == k]
        for side, k in (("query", 0), ("document", 1))
    }
    assert pair["input_ids"][0] not in [VOCAB.index(t) for t in VOCAB]  # a [CLS] frame token was added
    for side, text in (("query", query), ("document", document)):
        rebuilt = encoder.build_features([sides[side]], side)  # type: ignore[arg-type]
        direct = encoder.tokenize([text], side)  # type: ignore[arg-type]
        assert torch.equal(rebuilt["input_ids"], direct["input_ids"])


def test_trainable_matrix_learns_and_frozen_one_does_not(encoder: StaticTokenEncoder) -> None:
    model = LiteModel.from_encoder(encoder, scorer="maxsim", seed=0)
    # No token on both sides: a token's cosine with itself has no gradient.
    queries = model.encoder.tokenize(["late interaction", "the cat"], "query")
    documents = model.encoder.tokenize(["ranking on mat", "what is sat"], "document")
    for trainable in (True, False):
        model.encoder.trainable = trainable
        before = model.encoder.embedding.weight.detach().clone()
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
        scores = model(queries, documents, pairing="aligned")
        (-scores.sum()).backward()
        optimizer.step()
        optimizer.zero_grad()
        changed = not torch.equal(before, model.encoder.embedding.weight.detach())
        assert changed is trainable
        assert model.encoder.get_config()["trainable"] is trainable


def test_static_model_scores_tokenized_pairs_like_the_core(encoder: StaticTokenEncoder, tmp_path: Path) -> None:
    """The transformers route (what CrossEncoder(path) uses) gives the core's scores for a static model."""
    hf_model = pytest.importorskip("lite_plugins.core.hf_model")
    from transformers import AutoTokenizer

    model = LiteModel.from_encoder(encoder, scorer="separable", seed=0).eval()
    model.save_pretrained(tmp_path / "ckpt")
    queries = ["what is late interaction", "the cat", "what is late interaction"]
    documents = ["late interaction ranking zebra", "the cat sat on the mat", "what is the mat"]
    expected = model.score_pairs(queries, documents)
    classifier = hf_model.LiteForSequenceClassification.from_pretrained(tmp_path / "ckpt").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "ckpt")
    batch = tokenizer(queries, documents, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        logits = classifier(**batch).logits.reshape(-1)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


def test_stock_cross_encoder_loads_a_static_checkpoint(encoder: StaticTokenEncoder, tmp_path: Path) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import lite_plugins  # noqa: F401  (registers model_type "lite" with transformers)

    model = LiteModel.from_encoder(encoder, scorer="separable", seed=0).eval()
    model.save_pretrained(tmp_path / "ckpt")
    pairs = [("what is late interaction", "the cat sat"), ("what is late interaction", "late interaction ranking")]
    predicted = sentence_transformers.CrossEncoder(str(tmp_path / "ckpt"), device="cpu").predict(pairs)
    expected = model.score_pairs([q for q, _ in pairs], [d for _, d in pairs])
    np.testing.assert_allclose(predicted, expected.numpy(), rtol=1e-4, atol=1e-5)
