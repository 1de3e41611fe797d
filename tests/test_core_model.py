"""LiteModel: encoding, truncation, save/load round trip, checkpoint errors, gradients, dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lite_plugins.core import CheckpointError, LiteModel, TokenEmbeddings
from lite_plugins.core.checkpoint import WEIGHTS_NAME

QUERY = "what is late interaction ranking"


def test_encode_shapes_masks_and_normalization(tiny_model: LiteModel, corpus: list[str]) -> None:
    docs = tiny_model.encode_documents(corpus)
    assert docs.embeddings.shape[0] == len(corpus) and docs.embeddings.shape[-1] == 32
    norms = docs.embeddings.norm(dim=-1)
    assert torch.allclose(norms[docs.mask], torch.ones(int(docs.mask.sum())), atol=1e-5)
    assert (docs.embeddings[~docs.mask] == 0).all()
    # Order is preserved although encode sorts by length internally.
    one_by_one = [tiny_model.encode_documents([text]) for text in corpus]
    for i, single in enumerate(one_by_one):
        n = int(single.mask.sum())
        assert int(docs.mask[i].sum()) == n
        assert torch.allclose(docs.embeddings[i, :n], single.embeddings[0, :n], atol=1e-5)


def test_over_long_text_is_truncated_not_a_crash(tiny_model: LiteModel) -> None:
    long_text = " ".join(["quantum field theory"] * 2000)
    docs = tiny_model.encode_documents([long_text])
    queries = tiny_model.encode_queries([long_text])
    assert docs.embeddings.shape[1] == 16 and queries.embeddings.shape[1] == 8
    assert tiny_model.score(long_text, [long_text]).shape == (1,)


def test_markers_and_special_tokens(tiny_encoder) -> None:
    tokens = tiny_encoder.tokenizer.convert_ids_to_tokens(
        tiny_encoder.tokenize(["the cat"], "document")["input_ids"][0]
    )
    assert tokens == ["[CLS]", "[", "d", "]", "the", "cat", "[SEP]"]


def test_score_matches_score_pairs_and_stored_vectors(tiny_model: LiteModel, corpus: list[str]) -> None:
    direct = tiny_model.score(QUERY, corpus)
    pairs = tiny_model.score_pairs([QUERY] * len(corpus), corpus)
    stored = tiny_model.score_embeddings(tiny_model.encode_queries([QUERY]), tiny_model.encode_documents(corpus))[0]
    assert torch.allclose(direct, pairs, atol=1e-5) and torch.allclose(direct, stored, atol=1e-5)
    chunked = tiny_model.score_embeddings(
        tiny_model.encode_queries([QUERY]), tiny_model.encode_documents(corpus), chunk_size=2
    )[0]
    assert torch.allclose(direct, chunked, atol=1e-5)


def test_empty_inputs_and_wrong_types(tiny_model: LiteModel) -> None:
    assert tiny_model.score(QUERY, []).shape == (0,)
    assert tiny_model.score_pairs([], []).shape == (0,)
    assert len(tiny_model.encode_documents([])) == 0
    assert tiny_model.score("", [""]).shape == (1,)  # empty strings still carry markers: a defined score
    with pytest.raises(TypeError, match=r"documents\[1\] must be a string, got int"):
        tiny_model.score(QUERY, ["ok", 3])
    with pytest.raises(TypeError, match="single string"):
        tiny_model.score(QUERY, "not a list")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pairs must align"):
        tiny_model.score_pairs(["a", "b"], ["c"])


def test_save_load_round_trip_is_bit_exact(tiny_model: LiteModel, corpus: list[str], tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path / "ckpt")
    loaded = LiteModel.from_pretrained(tmp_path / "ckpt")
    original_state, loaded_state = tiny_model.state_dict(), loaded.state_dict()
    assert original_state.keys() == loaded_state.keys()
    for key in original_state:
        assert torch.equal(original_state[key], loaded_state[key]), key
    tiny_model.eval()
    assert torch.equal(tiny_model.score(QUERY, corpus), loaded.score(QUERY, corpus))
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    reloaded = loaded.get_config()
    for config in (saved, reloaded):
        model_config = config["encoder"].pop("model_config")  # transformers adds bookkeeping keys on load
        assert model_config["hidden_size"] == 32 and model_config["num_hidden_layers"] == 2
    assert reloaded == saved
    assert (tmp_path / "ckpt" / "README.md").read_text().startswith("---")


@pytest.mark.parametrize(
    "options",
    [
        {"scorer": "maxsim"},
        {"scorer": "flattened", "hidden_sizes": (8,)},
        {"scorer": "mean_mlp", "hidden_size": 8},
        {"scorer": "separable", "document_tokens": 6, "projection_dim": 8},
        {"scorer": "separable", "document_tokens": 6, "budget_method": "truncate"},
    ],
)
def test_every_configuration_round_trips(tiny_bert_path: Path, tmp_path: Path, corpus: list[str], options) -> None:
    model = LiteModel.from_encoder(tiny_bert_path, query_length=8, document_length=16, seed=1, **options).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = LiteModel.from_pretrained(tmp_path / "m")
    assert torch.equal(model.score(QUERY, corpus), loaded.score(QUERY, corpus))
    if "document_tokens" in options:
        assert loaded.encode_documents(corpus).embeddings.shape[1] <= 6
    if "projection_dim" in options:
        assert loaded.encode_documents(corpus).embeddings.shape[-1] == 8


def test_fp16_storage_scores_close(tiny_model: LiteModel, corpus: list[str]) -> None:
    tiny_model.eval()
    queries = tiny_model.encode_queries([QUERY])
    full = tiny_model.score_embeddings(queries, tiny_model.encode_documents(corpus))
    half_stored = tiny_model.encode_documents(corpus, storage_dtype=torch.float16)
    assert half_stored.embeddings.dtype == torch.float16
    assert torch.allclose(tiny_model.score_embeddings(queries, half_stored), full, atol=2e-2)


def test_bfloat16_model_on_cpu(tiny_model: LiteModel, corpus: list[str]) -> None:
    tiny_model.eval()
    full = tiny_model.score(QUERY, corpus)
    half = tiny_model.to(torch.bfloat16).score(QUERY, corpus)
    assert half.dtype == torch.float32  # returned as float32 on CPU for the caller
    assert torch.corrcoef(torch.stack([full, half]))[0, 1] > 0.9


def test_gradients_reach_scorer_and_encoder(tiny_model: LiteModel, corpus: list[str]) -> None:
    tiny_model.train()
    encoder = tiny_model.encoder
    queries = encoder.tokenize([QUERY, "the cat"], "query")
    documents = encoder.tokenize(corpus[:4], "document")
    scores = tiny_model(queries, documents, pairing="grouped", group_size=2)
    assert scores.shape == (2, 2)
    torch.nn.functional.cross_entropy(scores, torch.tensor([0, 1])).backward()
    assert tiny_model.scorer.output.weight.grad.abs().sum() > 0
    assert encoder.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert encoder.model.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_loading_a_plain_encoder_folder_is_a_clear_error(tiny_bert_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not a LITE checkpoint \(model_type='bert'\).*from_encoder"):
        LiteModel.from_pretrained(tiny_bert_path)


def test_missing_and_corrupt_checkpoints(tiny_model: LiteModel, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        LiteModel.from_pretrained(tmp_path / "nothing-here")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        LiteModel.from_pretrained(empty)
    tiny_model.save_pretrained(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        LiteModel.from_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        LiteModel.from_pretrained(tmp_path / "ckpt")


def test_weights_of_another_model_are_rejected(tiny_bert_path: Path, tmp_path: Path) -> None:
    LiteModel.from_encoder(tiny_bert_path, scorer="maxsim", query_length=8, document_length=16).save_pretrained(
        tmp_path / "a"
    )
    LiteModel.from_encoder(tiny_bert_path, scorer="separable", query_length=8, document_length=16).save_pretrained(
        tmp_path / "b"
    )
    (tmp_path / "b" / WEIGHTS_NAME).write_bytes((tmp_path / "a" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(CheckpointError, match="does not match its config"):
        LiteModel.from_pretrained(tmp_path / "b")


def test_save_refuses_to_replace_a_foreign_folder(tiny_model: LiteModel, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a LITE checkpoint"):
        tiny_model.save_pretrained(precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_save_replaces_an_old_checkpoint_and_leaves_no_temporaries(tiny_model: LiteModel, tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    tiny_model.save_pretrained(target)
    with torch.no_grad():
        tiny_model.scorer.output.bias.add_(1.0)
    tiny_model.save_pretrained(target)
    assert torch.equal(load_file(str(target / WEIGHTS_NAME))["scorer.output.bias"], tiny_model.scorer.output.bias)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_failed_save_keeps_the_previous_checkpoint(
    tiny_model: LiteModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ckpt"
    tiny_model.save_pretrained(target)
    before = (target / WEIGHTS_NAME).read_bytes()

    def broken_tokenizer_save(directory) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(tiny_model.encoder, "save_tokenizer", broken_tokenizer_save)
    with pytest.raises(OSError, match="disk full"):
        tiny_model.save_pretrained(target)
    assert (target / WEIGHTS_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    LiteModel.from_pretrained(target)


def test_token_embeddings_helpers() -> None:
    padded = TokenEmbeddings.pad([torch.ones(3, 2), torch.ones(1, 2)])
    assert [t.shape[0] for t in padded.unpadded()] == [3, 1]
    joined = TokenEmbeddings.concatenate([padded, TokenEmbeddings.pad([torch.ones(5, 2)])])
    assert joined.embeddings.shape == (3, 5, 2) and joined.mask.sum().item() == 9
    with pytest.raises(ValueError, match=r"\[n_tokens, dim\]"):
        TokenEmbeddings.pad([torch.ones(3, 2), torch.ones(3, 4)])


def test_head_only_checkpoint_references_encoder_weights(
    tiny_model: LiteModel,
    corpus: list[str],
    tmp_path: Path,
    tiny_bert_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A frozen-encoder checkpoint stores only the head and loads the encoder from an installed package."""
    import sys
    import types

    package = types.ModuleType("fake_encoder_package")
    package.get_model_path = lambda: str(tiny_bert_path)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_encoder_package", package)
    tiny_model.eval()
    tiny_model.save_pretrained(tmp_path / "head", encoder_source={"python_package": "fake_encoder_package"})
    stored = load_file(str(tmp_path / "head" / WEIGHTS_NAME))
    assert stored and all(not key.startswith("encoder.model.") for key in stored)
    loaded = LiteModel.from_pretrained(tmp_path / "head")
    assert torch.equal(loaded.score(QUERY, corpus), tiny_model.score(QUERY, corpus))
    monkeypatch.delitem(sys.modules, "fake_encoder_package")
    with pytest.raises(ImportError, match="install it"):
        LiteModel.from_pretrained(tmp_path / "head")
