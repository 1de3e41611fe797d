"""PyTerrier adapter: LiteReranker, LiteIndex (artifact, atomic builds, stored-vector re-ranking), fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pt = pytest.importorskip("pyterrier")
pta = pytest.importorskip("pyterrier_alpha")

from lite_plugins.core import LiteModel  # noqa: E402
from lite_plugins.pyterrier import DocumentTexts, LiteIndex, LiteReranker  # noqa: E402

QUERIES = {"1": "late interaction ranking", "2": "the cat on the mat", "3": "money in the river bank"}


@pytest.fixture()
def documents(corpus: list[str]) -> list[dict[str, str]]:
    return [{"docno": f"d{i}", "text": text} for i, text in enumerate(corpus)]


@pytest.fixture()
def results(documents: list[dict[str, str]]) -> pd.DataFrame:
    """Every document for every query, in docno order, with a dummy first-stage score and rank."""
    rows = [
        {
            "qid": qid,
            "query": query,
            "docno": doc["docno"],
            "text": doc["text"],
            "score": -float(i),
            "rank": i,
        }
        for qid, query in QUERIES.items()
        for i, doc in enumerate(documents)
    ]
    return pd.DataFrame(rows)


@pytest.fixture()
def built_index(tmp_path: Path, tiny_model: LiteModel, documents: list[dict[str, str]]) -> LiteIndex:
    return LiteIndex(tmp_path / "index.lite").indexer(tiny_model).index(documents)


# --- LiteReranker ---------------------------------------------------------------------------------
def test_reranker_scores_sorts_and_ranks(tiny_model: LiteModel, results: pd.DataFrame) -> None:
    out = LiteReranker(tiny_model, batch_size=4)(results)
    assert len(out) == len(results) and set(out.columns) == set(results.columns)
    assert out["qid"].drop_duplicates().tolist() == list(QUERIES)  # queries keep their input order
    for qid, group in out.groupby("qid", sort=False):
        assert group["rank"].tolist() == list(range(len(group)))
        assert group["score"].is_monotonic_decreasing
        expected = tiny_model.score(QUERIES[qid], group["text"].tolist())
        np.testing.assert_allclose(group["score"].to_numpy(), expected.numpy(), atol=1e-5)
    assert out["score"].dtype == np.float64 and out["rank"].dtype == np.int64
    # The first-stage order (by docno) is not what LITE produces: the frame really was re-sorted.
    assert out["docno"].tolist() != results["docno"].tolist()
    # A frame whose index repeats labels (e.g. concatenated frames) is scored by position, not by label.
    repeated = LiteReranker(tiny_model)(results.set_index(np.zeros(len(results), dtype=int)))
    np.testing.assert_allclose(repeated["score"], out["score"], atol=1e-6)


def test_reranker_loads_checkpoint_folder_and_repr(
    tmp_path: Path, tiny_model: LiteModel, results: pd.DataFrame
) -> None:
    tiny_model.save_pretrained(tmp_path / "ckpt")
    from_folder = LiteReranker(str(tmp_path / "ckpt"), batch_size=8)
    assert repr(from_folder) == f"LiteReranker({str(tmp_path / 'ckpt')!r}, batch_size=8)"
    assert repr(LiteReranker(tiny_model)).startswith("LiteReranker(<LiteModel SeparableLite")
    np.testing.assert_allclose(from_folder(results)["score"], LiteReranker(tiny_model)(results)["score"], atol=1e-5)


def test_reranker_empty_frame_gives_empty_frame_with_score_and_rank(tiny_model: LiteModel) -> None:
    empty = pd.DataFrame(columns=["qid", "query", "docno", "text"])
    out = LiteReranker(tiny_model)(empty)
    assert len(out) == 0 and {"score", "rank"} <= set(out.columns)
    assert out["rank"].dtype == np.int64


@pytest.mark.parametrize("missing", ["qid", "query", "docno", "text"])
def test_reranker_names_the_missing_column(tiny_model: LiteModel, results: pd.DataFrame, missing: str) -> None:
    with pytest.raises(pta.validate.InputValidationError, match=rf"missing column\(s\) \['{missing}'\]"):
        LiteReranker(tiny_model)(results.drop(columns=[missing]))


def test_reranker_rejects_bad_inputs(tiny_model: LiteModel, results: pd.DataFrame) -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        LiteReranker(tiny_model).transform(results.to_dict("records"))  # type: ignore[arg-type]
    broken = results.copy()
    broken.loc[3, "text"] = None  # a text that get_text never found
    with pytest.raises(TypeError, match="docno='d3'"):
        LiteReranker(tiny_model)(broken)
    with pytest.raises(TypeError, match="LiteModel"):
        LiteReranker(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        LiteReranker(tiny_model, batch_size=0)


def test_reranker_long_texts_and_single_candidate(tiny_model: LiteModel) -> None:
    frame = pd.DataFrame([{"qid": "1", "query": "cat " * 500, "docno": "d0", "text": "the cat sat " * 2000}])
    out = LiteReranker(tiny_model)(frame)
    assert out["rank"].tolist() == [0] and np.isfinite(out["score"]).all()


def test_default_reranker_uses_the_shipped_checkpoint_or_says_why_not(
    tiny_model: LiteModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lite_plugins.core import default as default_module

    tiny_model.save_pretrained(tmp_path / "shipped")
    monkeypatch.setattr(default_module, "DEFAULT_CHECKPOINT_DIR", tmp_path / "shipped")
    reranker = LiteReranker.default(batch_size=4)
    assert reranker.batch_size == 4 and repr(reranker).startswith(f"LiteReranker({str(tmp_path / 'shipped')!r}")
    monkeypatch.setattr(default_module, "DEFAULT_CHECKPOINT_DIR", tmp_path / "not-installed")
    with pytest.raises(FileNotFoundError, match="no default checkpoint"):
        LiteReranker.default()


# --- LiteIndex ------------------------------------------------------------------------------------
def test_index_stores_fp16_vectors_and_looks_up_docnos(
    built_index: LiteIndex, tiny_model: LiteModel, corpus: list[str]
) -> None:
    meta = built_index.metadata
    assert (meta["type"], meta["format"], meta["dtype"]) == ("token_vectors", "lite", "float16")
    assert len(built_index) == len(corpus) and meta["embedding_dim"] == 32
    rows = built_index.rows(["d3", "d0", "d3"])
    assert rows.tolist() == [3, 0, 3]
    stored = built_index.vectors(rows)
    fresh = tiny_model.encode_documents([corpus[3], corpus[0], corpus[3]])
    assert stored.embeddings.dtype == torch.float16
    assert torch.equal(stored.mask, fresh.mask[:, : stored.mask.shape[1]])
    torch.testing.assert_close(
        stored.embeddings.float(), fresh.embeddings[:, : stored.mask.shape[1]], atol=2e-3, rtol=0
    )
    with pytest.raises(KeyError, match="nope"):
        built_index.rows(["d1", "nope"])


def test_index_is_a_pyterrier_artifact(built_index: LiteIndex) -> None:
    loaded = pta.Artifact.load(str(built_index.path))
    assert isinstance(loaded, LiteIndex) and len(loaded) == len(built_index)
    assert repr(loaded) == f"LiteIndex({str(built_index.path)!r})"


def test_index_reranker_matches_text_reranker(
    built_index: LiteIndex, tiny_model: LiteModel, results: pd.DataFrame
) -> None:
    from_text = LiteReranker(tiny_model)(results)
    from_index = built_index.reranker(tiny_model, batch_size=5)(results.drop(columns=["text"]))
    assert from_index["docno"].tolist() == from_text["docno"].tolist()
    np.testing.assert_allclose(from_index["score"], from_text["score"], atol=5e-3)
    assert "reranker(<LiteModel" in repr(built_index.reranker(tiny_model))
    # The only difference is fp16 storage: with documents rounded to fp16, the scores are the same.
    queries = tiny_model.encode_queries(results["query"].tolist())
    documents = tiny_model.encode_documents(results["text"].tolist(), storage_dtype=torch.float16)
    expected = tiny_model.score_embeddings(queries, documents, pairing="aligned")
    by_pair = from_index.set_index(["qid", "docno"])["score"]
    actual = [by_pair[(q, d)] for q, d in zip(results["qid"], results["docno"], strict=True)]
    np.testing.assert_allclose(actual, expected.detach().numpy(), atol=1e-5)


def test_index_reranker_takes_a_retrained_head_but_not_another_encoder(
    built_index: LiteIndex, tiny_model: LiteModel, tiny_bert_path: Path, results: pd.DataFrame
) -> None:
    new_head = LiteModel(tiny_model.encoder, LiteModel.from_encoder(tiny_bert_path, "maxsim", 8, 16).scorer)
    out = built_index.reranker(new_head)(results)
    np.testing.assert_allclose(out["score"], LiteReranker(new_head)(results)["score"], atol=5e-3)
    other = LiteModel.from_encoder(tiny_bert_path, scorer="separable", query_length=8, document_length=16, seed=0)
    with torch.no_grad():
        next(other.encoder.parameters()).add_(0.1)
    with pytest.raises(ValueError, match="another encoder"):
        built_index.reranker(other)
    assert len(built_index.reranker(other, check_encoder=False)(results)) == len(results)


def test_index_reranker_errors_and_empty_frames(built_index: LiteIndex, tiny_model: LiteModel) -> None:
    reranker = built_index.reranker(tiny_model)
    empty = reranker(pd.DataFrame(columns=["qid", "query", "docno"]))
    assert len(empty) == 0 and {"score", "rank"} <= set(empty.columns)
    with pytest.raises(pta.validate.InputValidationError, match="query"):
        reranker(pd.DataFrame({"qid": ["1"], "docno": ["d1"]}))
    with pytest.raises(KeyError, match="unknown-doc"):
        reranker(pd.DataFrame({"qid": ["1"], "query": ["cat"], "docno": ["unknown-doc"]}))
    with pytest.raises(TypeError, match="LiteModel"):
        LiteIndex(built_index.path).reranker()


def test_token_budget_index(
    tmp_path: Path, tiny_bert_path: Path, documents: list[dict[str, str]], results: pd.DataFrame
) -> None:
    model = LiteModel.from_encoder(tiny_bert_path, "separable", 8, 16, document_tokens=4, seed=0)
    index = LiteIndex(tmp_path / "budget", model=model).index(documents)
    offsets = np.load(index.path / "offsets.npy")
    assert np.diff(offsets).max() <= 4 and index.metadata["max_document_tokens"] == 4
    np.testing.assert_allclose(
        index.reranker()(results)["score"].sort_values().to_numpy(),
        LiteReranker(model)(results)["score"].sort_values().to_numpy(),
        atol=5e-3,
    )


# --- atomic builds --------------------------------------------------------------------------------
def _fingerprint_of_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def _interrupted(documents: list[dict[str, str]], after: int):
    for i, doc in enumerate(documents):
        if i == after:
            raise KeyboardInterrupt("simulated interruption")
        yield doc


def test_create_refuses_existing_index_and_overwrite_replaces_it(
    built_index: LiteIndex, tiny_model: LiteModel, documents: list[dict[str, str]]
) -> None:
    with pytest.raises(FileExistsError, match="mode='overwrite'"):
        built_index.indexer(tiny_model).index(documents[:2])
    assert len(built_index) == len(documents)
    built_index.indexer(tiny_model, mode="overwrite").index(documents[:2])
    assert len(built_index) == 2 and len(LiteIndex(built_index.path)) == 2
    assert sorted(p.name for p in built_index.path.parent.iterdir()) == ["index.lite"]


def test_interrupted_build_leaves_old_index_intact(
    built_index: LiteIndex, tiny_model: LiteModel, documents: list[dict[str, str]]
) -> None:
    before = _fingerprint_of_files(built_index.path)
    with pytest.raises(KeyboardInterrupt):
        LiteIndex(built_index.path).indexer(tiny_model, mode="overwrite").index(_interrupted(documents, after=3))
    assert _fingerprint_of_files(built_index.path) == before
    assert len(LiteIndex(built_index.path)) == len(documents)
    assert sorted(p.name for p in built_index.path.parent.iterdir()) == ["index.lite"]  # no temp folder left


def test_interrupted_first_build_leaves_nothing(
    tmp_path: Path, tiny_model: LiteModel, documents: list[dict[str, str]]
) -> None:
    target = tmp_path / "fresh.lite"
    with pytest.raises(KeyboardInterrupt):
        LiteIndex(target).indexer(tiny_model, chunk_size=2).index(_interrupted(documents, after=5))
    assert list(tmp_path.iterdir()) == []


def test_build_refuses_foreign_folders_bad_records_and_duplicates(
    tmp_path: Path, tiny_model: LiteModel, documents: list[dict[str, str]]
) -> None:
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a LiteIndex"):
        LiteIndex(foreign).indexer(tiny_model, mode="overwrite").index(documents)
    assert (foreign / "precious.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="unique"):
        LiteIndex(tmp_path / "dup").indexer(tiny_model).index(documents + documents[:1])
    with pytest.raises(KeyError, match="docno"):
        LiteIndex(tmp_path / "bad").indexer(tiny_model).index([{"text": "no docno"}])
    with pytest.raises(TypeError, match="strings"):
        LiteIndex(tmp_path / "bad").indexer(tiny_model).index([{"docno": 7, "text": "int docno"}])
    with pytest.raises(ValueError, match="mode"):
        LiteIndex(tmp_path / "bad").indexer(tiny_model, mode="append")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_empty_corpus_and_dataframe_input(
    tmp_path: Path, tiny_model: LiteModel, documents: list[dict[str, str]]
) -> None:
    empty = LiteIndex(tmp_path / "empty").indexer(tiny_model).index([])
    assert len(empty) == 0 and empty.rows([]).tolist() == []
    with pytest.raises(KeyError):
        empty.rows(["d0"])
    from_frame = LiteIndex(tmp_path / "frame").indexer(tiny_model).index(pd.DataFrame(documents))
    assert from_frame.docnos().tolist() == [d["docno"] for d in documents]
    meta = json.loads((from_frame.path / "pt_meta.json").read_text())
    assert meta["doc_count"] == len(documents) and meta["token_count"] == int(
        np.load(from_frame.path / "offsets.npy")[-1]
    )


def test_document_texts_loader(documents: list[dict[str, str]]) -> None:
    texts = DocumentTexts(documents)
    frame = pd.DataFrame({"qid": ["1", "1"], "docno": ["d2", "d0"]})
    assert pt.text.get_text(texts, "text")(frame)["text"].tolist() == [
        documents[2]["text"],
        documents[0]["text"],
    ]
    with pytest.raises(KeyError, match="missing-doc"):
        pt.text.get_text(texts)(pd.DataFrame({"qid": ["1"], "docno": ["missing-doc"]}))
    with pytest.raises(ValueError, match="only hold"):
        texts.text_loader(["title"])


# --- fit ------------------------------------------------------------------------------------------
RELEVANT = {"1": "d0", "2": "d1", "3": "d4"}


def _reciprocal_rank(out: pd.DataFrame) -> float:
    ranks = [int(group.loc[group["docno"] == RELEVANT[qid], "rank"].iloc[0]) for qid, group in out.groupby("qid")]
    return float(np.mean([1.0 / (1 + r) for r in ranks]))


def _fit_arguments() -> dict:
    return {"max_steps": 12, "learning_rate": 3e-3, "batch_size": 3, "list_size": 7}


def test_fit_from_labels_learns_the_training_queries(tiny_model: LiteModel, results: pd.DataFrame) -> None:
    pytest.importorskip("sentence_transformers")
    qrels = pd.DataFrame([{"qid": q, "docno": d, "label": 1} for q, d in RELEVANT.items()])
    reranker = LiteReranker(tiny_model)
    before = _reciprocal_rank(reranker(results))
    assert before < 1.0  # otherwise this test could not fail
    assert reranker.fit(results, qrels, **_fit_arguments()) is reranker
    assert reranker.model is tiny_model and not tiny_model.training
    assert _reciprocal_rank(reranker(results)) == 1.0


def test_fit_distils_teacher_scores_in_a_pipeline(tiny_model: LiteModel, results: pd.DataFrame, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    # A teacher that prefers short documents: learnable from text, unrelated to the untrained model.
    teacher = results.assign(teacher=-results["text"].str.len().astype(float))
    first_stage = pt.Transformer.from_df(teacher)
    fit_args = {"teacher_scores": "teacher", "valid_teacher_scores": "teacher", "freeze_encoder": True}
    reranker = LiteReranker(tiny_model, fit_args={**fit_args, **_fit_arguments()})
    assert "fit_args={'teacher_scores': 'teacher'" in repr(reranker)

    def agreement() -> float:
        out = reranker(teacher).merge(teacher[["qid", "docno", "teacher"]], on=["qid", "docno"], suffixes=("", "_t"))
        return float(np.mean([g["score"].corr(g["teacher_t"], method="spearman") for _, g in out.groupby("qid")]))

    before = agreement()
    topics = results[["qid", "query"]].drop_duplicates()
    pipeline = first_stage >> reranker
    encoder_before = {k: v.clone() for k, v in tiny_model.encoder.state_dict().items()}
    # first_stage adds the teacher column; reranker.fit takes its options from fit_args.
    pipeline.fit(topics, None, topics, None)
    for key, tensor in tiny_model.encoder.state_dict().items():  # freeze_encoder: only the head trained
        torch.testing.assert_close(tensor, encoder_before[key], msg=key)
    assert agreement() > max(before, 0.0) + 0.3
    reranker.save(tmp_path / "trained")
    np.testing.assert_allclose(
        LiteReranker(tmp_path / "trained")(results)["score"], reranker(results)["score"], atol=1e-5
    )


def test_fit_errors_name_what_is_missing(tiny_model: LiteModel, results: pd.DataFrame) -> None:
    pytest.importorskip("sentence_transformers")
    reranker = LiteReranker(tiny_model)
    with pytest.raises(pta.validate.InputValidationError, match="text"):
        reranker.fit(results.drop(columns=["text"]), pd.DataFrame({"qid": ["1"], "docno": ["d0"], "label": [1]}))
    with pytest.raises(ValueError, match="relevant"):
        reranker.fit(results, pd.DataFrame({"qid": ["1"], "docno": ["d0"], "label": [0]}))
    with pytest.raises(KeyError, match="label"):
        reranker.fit(results, pd.DataFrame({"qid": ["1"], "docno": ["d0"]}))
    with pytest.raises(KeyError, match="no_such_column"):
        reranker.fit(results, None, teacher_scores="no_such_column")
