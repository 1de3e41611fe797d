"""LiteCrossEncoder, the transformers model behind it, the losses and the teacher helpers (tiny, offline)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("sentence_transformers")

from sentence_transformers import SentenceTransformer, models
from sentence_transformers.cross_encoder import (
    CrossEncoder,
    CrossEncoderTrainer,
    CrossEncoderTrainingArguments,
)

from lite_plugins import CheckpointError, LiteModel
from lite_plugins.core.hf_model import LiteConfig, LiteForSequenceClassification
from lite_plugins.sentence_transformers import (
    ListwiseKLLoss,
    LiteCrossEncoder,
    listwise_dataset,
    losses,
    margin_mse_dataset,
    teacher_scores,
)

LONG_DOCUMENT = " ".join(["the river bank and the money bank"] * 300)


def make_pairs(corpus: list[str]) -> list[tuple[str, str]]:
    """Repeated queries, an empty query and document, a literal [SEP] and an over-long document."""
    return (
        [(corpus[0], d) for d in corpus]
        + [(corpus[2], d) for d in corpus[:3]]
        + [("", corpus[1]), (corpus[1], ""), ("what is [SEP] lite", corpus[3]), (corpus[4], LONG_DOCUMENT)]
    )


def new_model(path: Path, scorer: str = "separable") -> LiteCrossEncoder:
    return LiteCrossEncoder.from_encoder(path, scorer=scorer, query_length=8, document_length=16, seed=0, device="cpu")


@pytest.fixture(params=["bert", "roberta"])
def encoder_path(request: pytest.FixtureRequest, tiny_bert_path: Path, tiny_roberta_path: Path) -> Path:
    """Both tokenizer kinds: with token type ids (BERT) and without (RoBERTa, split on the separator)."""
    return tiny_bert_path if request.param == "bert" else tiny_roberta_path


# --- loading, saving, identical scores ---------------------------------------------------------
def test_saved_model_scores_identically_everywhere(encoder_path: Path, corpus: list[str], tmp_path: Path) -> None:
    model = new_model(encoder_path)
    pairs = make_pairs(corpus)
    scores = model.predict(pairs)
    assert scores.shape == (len(pairs),) and np.isfinite(scores).all()
    assert np.ptp(scores) > 0  # a model that scored everything alike would make the comparisons below empty

    model.save_pretrained(str(tmp_path / "ckpt"))
    stock = CrossEncoder(str(tmp_path / "ckpt"), device="cpu")
    assert isinstance(stock.model, LiteForSequenceClassification)
    assert isinstance(stock.activation_fn, torch.nn.Identity) and stock.num_labels == 1
    core = LiteModel.from_pretrained(tmp_path / "ckpt")
    core_scores = core.score_pairs([q for q, _ in pairs], [d for _, d in pairs]).numpy()
    # The stock path tokenizes pairs and splits them inside forward; the others encode texts directly.
    np.testing.assert_allclose(stock.predict(pairs), scores, atol=1e-5)
    np.testing.assert_allclose(core_scores, scores, atol=1e-5)
    np.testing.assert_allclose(LiteCrossEncoder(str(tmp_path / "ckpt"), device="cpu").predict(pairs), scores, atol=1e-5)


def test_text_spelling_special_tokens_scores_alike_on_every_path(encoder_path: Path, tmp_path: Path) -> None:
    """A query quoting the separator ("</s></s>" for RoBERTa) must not split the pair there."""
    model = new_model(encoder_path)
    tokenizer = model.lite_model.encoder.tokenizer
    separator = f"{tokenizer.sep_token}{tokenizer.sep_token}"
    pairs = [(f"what does {separator} mean", f"a passage about {tokenizer.sep_token} tokens"), ("a b", "c d")]
    core_scores = model.lite_model.score_pairs([q for q, _ in pairs], [d for _, d in pairs]).numpy()
    np.testing.assert_allclose(model.predict(pairs), core_scores, atol=1e-5)
    model.save_pretrained(str(tmp_path / "ckpt"))
    stock = CrossEncoder(str(tmp_path / "ckpt"), device="cpu")
    np.testing.assert_allclose(stock.predict(pairs), core_scores, atol=1e-5)
    text_ids = model.lite_model.encoder.tokenize([pairs[0][0]], "query")["input_ids"][0].tolist()
    assert text_ids.count(tokenizer.sep_token_id) == 1  # only the frame's own separator


def test_core_checkpoint_loads_in_stock_cross_encoder(tiny_model: LiteModel, corpus: list[str], tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path / "core")
    assert "sentence_transformers" not in json.loads((tmp_path / "core" / "config.json").read_text())
    stock = CrossEncoder(str(tmp_path / "core"), device="cpu")
    assert isinstance(stock.activation_fn, torch.nn.Identity) and stock.num_labels == 1
    pairs = make_pairs(corpus)
    expected = tiny_model.score_pairs([q for q, _ in pairs], [d for _, d in pairs]).numpy()
    np.testing.assert_allclose(stock.predict(pairs), expected, atol=1e-5)


def test_saved_folder_is_a_core_checkpoint(tiny_bert_path: Path, tmp_path: Path) -> None:
    model = new_model(tiny_bert_path)
    model.save_pretrained(str(tmp_path / "ckpt"))
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == "lite" and config["architectures"] == ["LiteForSequenceClassification"]
    assert config["scorer"] == model.model.scorer.get_config()
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "ckpt" / "model.safetensors")))
    assert keys == set(model.lite_model.state_dict())
    assert all(k.startswith(("encoder.", "scorer.")) for k in keys)


def test_not_a_lite_folder_is_refused(tiny_bert_path: Path) -> None:
    with pytest.raises(CheckpointError, match="from_encoder"):
        LiteCrossEncoder(str(tiny_bert_path))


def test_save_refuses_to_overwrite_another_model(tiny_bert_path: Path, tmp_path: Path) -> None:
    import shutil

    target = tmp_path / "bert"
    shutil.copytree(tiny_bert_path, target)
    with pytest.raises(FileExistsError, match="not LITE"):
        new_model(tiny_bert_path).save_pretrained(str(target))


def test_lite_config_defaults_raw_single_score() -> None:
    config = LiteConfig()
    assert config.num_labels == 1
    assert config.sentence_transformers["activation_fn"] == "torch.nn.modules.linear.Identity"
    with pytest.raises(ValueError, match="num_labels must be 1"):
        LiteForSequenceClassification(LiteConfig(num_labels=2))


# --- predict / rank behaviour ------------------------------------------------------------------
def test_each_distinct_query_is_encoded_once(tiny_bert_path: Path, corpus: list[str], tmp_path: Path) -> None:
    model = new_model(tiny_bert_path)
    built: list[int] = []
    original = model.model.encoder.build_features

    def spy(text_ids, side):
        if side == "query":
            built.append(len(text_ids))
        return original(text_ids, side)

    model.model.encoder.build_features = spy  # type: ignore[method-assign]
    pairs = [(corpus[0], d) for d in corpus] + [(corpus[1], d) for d in corpus]
    model.predict(pairs, batch_size=3)
    assert sum(built) == 2
    built.clear()
    model.rank(corpus[0], corpus, batch_size=2)
    assert sum(built) == 1
    built.clear()
    # The stock path (training, CrossEncoder(path)) dedups within each tokenized batch.
    tokens = model.tokenizer(pairs, padding=True, truncation=True, return_tensors="pt")
    model.model(**tokens)
    assert sum(built) == 2


def test_empty_input_gives_empty_result(tiny_bert_path: Path) -> None:
    model = new_model(tiny_bert_path)
    assert model.predict([]).shape == (0,)
    assert model.predict([], convert_to_tensor=True).shape == (0,)
    assert model.rank("a query", []) == []


@pytest.mark.parametrize(
    "bad",
    [[("a query", 3)], [(None, "a document")], ["just a string", "x", "y"], [("only one",)], "a string"],
)
def test_non_string_pairs_raise_type_error(tiny_bert_path: Path, bad: object) -> None:
    with pytest.raises(TypeError, match=r"pair|string"):
        new_model(tiny_bert_path).predict(bad)  # type: ignore[arg-type]


def test_rank_rejects_non_string_query(tiny_bert_path: Path, corpus: list[str]) -> None:
    with pytest.raises(TypeError, match="query must be a string"):
        new_model(tiny_bert_path).rank(42, corpus)  # type: ignore[arg-type]


def test_single_pair_and_rank_order(tiny_bert_path: Path, corpus: list[str]) -> None:
    model = new_model(tiny_bert_path)
    scores = model.predict([(corpus[0], d) for d in corpus])
    assert float(model.predict((corpus[0], corpus[3]))) == pytest.approx(float(scores[3]), abs=1e-6)
    ranking = model.rank(corpus[0], corpus, top_k=3, return_documents=True)
    assert [r["corpus_id"] for r in ranking] == list(np.argsort(-scores)[:3])
    assert ranking[0]["text"] == corpus[ranking[0]["corpus_id"]]


def test_over_long_document_is_truncated(encoder_path: Path, tmp_path: Path) -> None:
    model = new_model(encoder_path)
    longer = LONG_DOCUMENT + " quantum field theory of light" * 50
    scores = model.predict([("river bank", LONG_DOCUMENT), ("river bank", longer)])
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)  # only the first document_length tokens count
    model.save_pretrained(str(tmp_path / "ckpt"))
    stock = CrossEncoder(str(tmp_path / "ckpt"), device="cpu").predict([("river bank", longer)])
    assert stock[0] == pytest.approx(scores[1], abs=1e-5)


def test_bfloat16_inference(tiny_bert_path: Path, corpus: list[str]) -> None:
    model = LiteCrossEncoder.from_encoder(
        tiny_bert_path, query_length=8, document_length=16, seed=0, device="cpu", dtype=torch.bfloat16
    )
    assert model.model.scorer.parameter_dtype == torch.bfloat16
    full = new_model(tiny_bert_path).predict([(corpus[0], d) for d in corpus])
    half = model.predict([(corpus[0], d) for d in corpus])
    assert np.isfinite(half).all()
    np.testing.assert_allclose(half, full, atol=0.1)


# --- losses --------------------------------------------------------------------------------------
def _listwise_rows(corpus: list[str]) -> dict[str, list]:
    return {
        "query": [corpus[0], corpus[3]],
        "docs": [[corpus[0], corpus[1], corpus[2]], [corpus[3], corpus[4], corpus[5], corpus[6], corpus[1]]],
        "labels": [[0.9, 0.1, 0.5], [0.8, 0.2, 0.3, 0.1, 0.0]],
    }


def test_listwise_kl_matches_hand_computed_kl(tiny_bert_path: Path, corpus: list[str]) -> None:
    model = new_model(tiny_bert_path)
    model.eval()
    rows = _listwise_rows(corpus)
    loss = ListwiseKLLoss(model, temperature=0.5)
    labels = [torch.tensor(x) for x in rows["labels"]]
    with torch.no_grad():
        value = loss([rows["query"], rows["docs"]], labels)
    expected = []
    for query, docs, teacher in zip(rows["query"], rows["docs"], labels, strict=False):
        student = torch.as_tensor(model.predict([(query, d) for d in docs]))
        p_teacher = torch.softmax(teacher / 0.5, dim=0)
        expected.append((p_teacher * (p_teacher.log() - torch.log_softmax(student, dim=0))).sum() * 0.25)
    # Lists of different lengths are padded together; padding must not change either query's loss.
    assert float(value) == pytest.approx(float(torch.stack(expected).mean()), abs=1e-5)


def test_listwise_kl_errors_name_the_expected_shape(tiny_bert_path: Path, corpus: list[str]) -> None:
    model = new_model(tiny_bert_path)
    loss = ListwiseKLLoss(model)
    with pytest.raises(ValueError, match=r"one list of teacher scores per query"):
        loss([[corpus[0]], [[corpus[1]]]], torch.tensor([1.0]))
    with pytest.raises(ValueError, match="one teacher score per document"):
        loss([[corpus[0]], [[corpus[1], corpus[2]]]], [torch.tensor([1.0])])
    with pytest.raises(ValueError, match="two columns"):
        loss([[corpus[0]], [corpus[1]], [corpus[2]]], [torch.tensor([1.0])])
    with pytest.raises(ValueError, match="temperatures must be > 0"):
        ListwiseKLLoss(model, temperature=0)


def _dataset_and_loss(name: str, model: LiteCrossEncoder, corpus: list[str]):
    from datasets import Dataset

    if name in ("listwise_kl", "listnet"):
        data = Dataset.from_dict(_listwise_rows(corpus))
        loss = ListwiseKLLoss(model, temperature=0.5) if name == "listwise_kl" else losses.ListNetLoss(model)
    elif name == "margin_mse":
        data = Dataset.from_dict(
            {"query": [corpus[0], corpus[3]], "positive": [corpus[0], corpus[3]],
             "negative": [corpus[1], corpus[4]], "label": [2.0, 1.5]}
        )  # fmt: skip
        loss = losses.MarginMSELoss(model)
    else:
        data = Dataset.from_dict(
            {"query": [corpus[0], corpus[0], corpus[3], corpus[3]],
             "document": [corpus[0], corpus[1], corpus[3], corpus[5]], "label": [1.0, 0.0, 1.0, 0.0]}
        )  # fmt: skip
        loss = losses.BinaryCrossEntropyLoss(model)
    return data, loss


def _loss_on(data, loss) -> float:
    columns = [c for c in data.column_names if c not in ("label", "labels")]
    label_column = "labels" if "labels" in data.column_names else "label"
    labels = data[label_column]
    labels = [torch.tensor(x) for x in labels] if isinstance(labels[0], list) else torch.tensor(labels)
    loss.model.eval()
    with torch.no_grad():
        return float(loss([data[c] for c in columns], labels))


@pytest.mark.parametrize("loss_name", ["margin_mse", "listwise_kl", "listnet", "bce"])
def test_training_lowers_the_loss_and_saves_loadable(
    loss_name: str, tiny_bert_path: Path, corpus: list[str], tmp_path: Path
) -> None:
    model = new_model(tiny_bert_path)
    data, loss = _dataset_and_loss(loss_name, model, corpus)
    before = _loss_on(data, loss)
    args = CrossEncoderTrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=12, per_device_train_batch_size=4, learning_rate=3e-3,
        save_strategy="no", report_to="none", use_cpu=True, seed=0, logging_steps=100, disable_tqdm=True,
    )  # fmt: skip
    CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    after = _loss_on(data, loss)
    assert after < before, f"{loss_name}: loss {before:.4f} -> {after:.4f}"

    model.save_pretrained(str(tmp_path / "trained"))
    pairs = make_pairs(corpus)
    np.testing.assert_allclose(
        CrossEncoder(str(tmp_path / "trained"), device="cpu").predict(pairs), model.predict(pairs), atol=1e-5
    )
    card = (tmp_path / "trained" / "README.md").read_text()
    assert "- lite" in card and "scorer-separable" in card and '"type": "separable"' in card
    expected_loss = type(loss).__name__
    assert expected_loss in card
    config = json.loads((tmp_path / "trained" / "config.json").read_text())
    assert config["training"]["losses"] == [expected_loss]
    assert config["training"]["datasets"][0]["loss"].endswith(expected_loss)


def test_load_best_model_restores_every_weight(
    tiny_bert_path: Path, corpus: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The trainer's best-checkpoint reload must bring back every weight (incl. BERT LayerNorms)."""
    model = new_model(tiny_bert_path)
    data, loss = _dataset_and_loss("listwise_kl", model, corpus)
    args = CrossEncoderTrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=6, per_device_train_batch_size=2, learning_rate=3e-3,
        eval_strategy="steps", eval_steps=3, save_steps=3, load_best_model_at_end=True,
        metric_for_best_model="eval_loss", report_to="none", use_cpu=True, seed=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=data, eval_dataset=data, loss=loss)
    with caplog.at_level(logging.WARNING):
        trainer.train()
    best = trainer.state.best_model_checkpoint
    assert best is not None
    saved = LiteModel.from_pretrained(best).state_dict()
    current = trainer.model.model.state_dict()
    assert set(saved) == set(current)
    layer_norms = [k for k in saved if "LayerNorm" in k]
    assert layer_norms
    for key, tensor in saved.items():
        torch.testing.assert_close(current[key], tensor, msg=key)
    # And explicitly: perturb every weight, reload the best checkpoint, get it all back.
    with torch.no_grad():
        for parameter in trainer.model.parameters():
            parameter.add_(1.0)
    trainer._load_best_model()
    for key, tensor in trainer.model.model.state_dict().items():
        torch.testing.assert_close(tensor, saved[key], msg=key)
    assert "unexpected" not in caplog.text.lower() and "missing" not in caplog.text.lower()


# --- teacher helpers ---------------------------------------------------------------------------
@pytest.fixture()
def tiny_sentence_transformer(tiny_bert_path: Path) -> SentenceTransformer:
    transformer = models.Transformer(str(tiny_bert_path), max_seq_length=64)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), "mean")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def test_teacher_scores_dense_and_maxsim(tiny_sentence_transformer: SentenceTransformer, corpus: list[str]) -> None:
    queries = {"q1": corpus[0], "q2": corpus[3]}
    candidates = {
        "q1": [(f"d{i}", t) for i, t in enumerate(corpus)],
        "q2": [("d3", corpus[3]), ("d4", corpus[4])],
    }
    dense = teacher_scores(tiny_sentence_transformer, queries, candidates)
    q = tiny_sentence_transformer.encode([corpus[0]], convert_to_tensor=True)
    d = tiny_sentence_transformer.encode(corpus, convert_to_tensor=True)
    expected = torch.nn.functional.cosine_similarity(q, d)
    assert [dense["q1"][f"d{i}"] for i in range(len(corpus))] == pytest.approx(expected.tolist(), abs=1e-5)

    maxsim = teacher_scores(tiny_sentence_transformer, queries, candidates, method="maxsim")
    tokens = tiny_sentence_transformer.encode([corpus[3], corpus[4]], output_value="token_embeddings")
    qv, dv = (torch.nn.functional.normalize(t, dim=-1) for t in tokens)
    assert maxsim["q2"]["d4"] == pytest.approx(float((qv @ dv.T).max(dim=1).values.sum()), abs=1e-4)
    # MaxSim of a text with itself: every query token finds itself (cosine 1).
    assert maxsim["q2"]["d3"] == pytest.approx(float(qv.shape[0]), abs=1e-4)


def test_teacher_scores_with_a_cross_encoder(tiny_bert_path: Path, corpus: list[str]) -> None:
    teacher = new_model(tiny_bert_path)
    scores = teacher_scores(teacher, {"q": corpus[0]}, {"q": [(str(i), t) for i, t in enumerate(corpus)]})
    expected = teacher.predict([(corpus[0], t) for t in corpus])
    assert [scores["q"][str(i)] for i in range(len(corpus))] == pytest.approx(expected.tolist(), abs=1e-6)
    with pytest.raises(TypeError, match="SentenceTransformer"):
        teacher_scores(teacher, {"q": corpus[0]}, {"q": [("0", corpus[0])]}, method="maxsim")


def test_training_datasets_from_teacher_scores(corpus: list[str]) -> None:
    queries = {"q1": corpus[0], "q2": corpus[3], "q3": "no candidates scored"}
    candidates = {
        "q1": [(f"d{i}", t) for i, t in enumerate(corpus)],
        "q2": [("a", corpus[3]), ("b", corpus[4])],
        "q3": [("x", corpus[1])],
    }
    scores = {"q1": {f"d{i}": float(i) for i in range(len(corpus))}, "q2": {"a": 1.0, "b": 3.0}, "q3": {}}
    listwise = listwise_dataset(queries, candidates, scores, list_size=4, lists_per_query=2)
    assert listwise.column_names == ["query", "docs", "labels"] and len(listwise) == 4
    for row in listwise:
        assert len(row["docs"]) == len(row["labels"]) <= 4
        assert row["labels"][0] == max(row["labels"])  # the teacher's best leads every list
    margins = margin_mse_dataset(queries, candidates, scores, pairs_per_query=3, positive_pool=2)
    assert margins.column_names == ["query", "positive", "negative", "label"] and len(margins) == 6
    text_to_score = {corpus[i]: float(i) for i in range(len(corpus))}
    for row in margins.filter(lambda r: r["query"] == corpus[0]):
        assert row["label"] == text_to_score[row["positive"]] - text_to_score[row["negative"]] > 0


def test_frozen_encoder_trains_only_the_head(tiny_bert_path: Path, corpus: list[str], tmp_path: Path) -> None:
    model = new_model(tiny_bert_path)
    model.freeze_encoder()
    encoder_before = {k: v.clone() for k, v in model.model.encoder.state_dict().items()}
    scorer_before = {k: v.clone() for k, v in model.model.scorer.state_dict().items()}
    data, loss = _dataset_and_loss("listwise_kl", model, corpus)
    args = CrossEncoderTrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=3, per_device_train_batch_size=2, learning_rate=3e-3,
        save_strategy="no", report_to="none", use_cpu=True, seed=0, disable_tqdm=True,
    )  # fmt: skip
    CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    assert not model.model.encoder.training  # dropout stays off in the frozen encoder
    for key, tensor in model.model.encoder.state_dict().items():
        torch.testing.assert_close(tensor, encoder_before[key], msg=key)
    assert any(not torch.equal(v, scorer_before[k]) for k, v in model.model.scorer.state_dict().items())


def test_referenced_encoder_weights_stay_referenced_only_while_frozen(
    tiny_model: LiteModel,
    tiny_bert_path: Path,
    corpus: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A head-only core checkpoint (encoder weights referenced, not stored) loads in CrossEncoder; re-saving
    keeps the reference only while the encoder is frozen, so trained encoder weights are never dropped."""
    import sys
    import types

    from safetensors.torch import load_file

    package = types.ModuleType("tiny_bert_weights")
    package.get_model_path = lambda: str(tiny_bert_path)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiny_bert_weights", package)
    tiny_model.save_pretrained(tmp_path / "ref", encoder_source={"python_package": "tiny_bert_weights"})
    pairs = make_pairs(corpus)
    expected = tiny_model.score_pairs([q for q, _ in pairs], [d for _, d in pairs]).numpy()
    np.testing.assert_allclose(CrossEncoder(str(tmp_path / "ref"), device="cpu").predict(pairs), expected, atol=1e-5)

    model = LiteCrossEncoder(str(tmp_path / "ref"), device="cpu")
    model.freeze_encoder()
    model.save_pretrained(str(tmp_path / "frozen"))
    assert not any(k.startswith("encoder.model.") for k in load_file(str(tmp_path / "frozen" / "model.safetensors")))
    model.freeze_encoder(False)
    model.save_pretrained(str(tmp_path / "full"))
    assert any(k.startswith("encoder.model.") for k in load_file(str(tmp_path / "full" / "model.safetensors")))
    for folder in ("frozen", "full"):
        scores = LiteModel.from_pretrained(tmp_path / folder).score_pairs([q for q, _ in pairs], [d for _, d in pairs])
        np.testing.assert_allclose(scores.numpy(), expected, atol=1e-5)


def test_default_loads_the_shipped_checkpoint(tiny_bert_path, tmp_path, monkeypatch) -> None:
    from lite_plugins.core import LiteModel
    from lite_plugins.core import default as default_module

    model = LiteModel.from_encoder(tiny_bert_path, scorer="maxsim", query_length=8, document_length=16)
    model.save_pretrained(tmp_path / "shipped")
    monkeypatch.setattr(default_module, "DEFAULT_CHECKPOINT_DIR", tmp_path / "shipped")
    cross_encoder = LiteCrossEncoder.default(device="cpu")
    pairs = [("the cat", "the cat sat on the mat"), ("the cat", "quantum field theory")]
    expected = model.score_pairs([q for q, _ in pairs], [d for _, d in pairs])
    assert np.allclose(cross_encoder.predict(pairs), expected.numpy(), atol=1e-5)
    monkeypatch.setattr(default_module, "DEFAULT_CHECKPOINT_DIR", tmp_path / "not-installed")
    with pytest.raises(FileNotFoundError, match="no default checkpoint"):
        LiteCrossEncoder.default()
