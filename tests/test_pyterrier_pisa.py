"""PyTerrier pipelines after PISA's BM25 (offline, no Java) on NovelEval and Vaswani from ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ir_measures import RR, R, nDCG

pt = pytest.importorskip("pyterrier")
pyterrier_pisa = pytest.importorskip("pyterrier_pisa")

from lite_plugins.core import LiteModel  # noqa: E402
from lite_plugins.data import read_corpus, read_qrels, read_queries  # noqa: E402
from lite_plugins.pyterrier import DocumentTexts, LiteIndex, LiteReranker  # noqa: E402

MEASURES = [nDCG @ 10, RR @ 10, R @ 10]


def _topics(path: Path, limit: int | None = None) -> pd.DataFrame:
    topics = pd.DataFrame([{"qid": q, "query": text} for q, text in read_queries(path).items()])
    return topics.head(limit) if limit else topics


def _qrels(path: Path) -> pd.DataFrame:
    return pd.DataFrame(
        [{"qid": q, "docno": d, "label": g} for q, docs in read_qrels(path).items() for d, g in docs.items()]
    )


class Setup:
    """BM25 over a collection, its text loader, and a LiteIndex of the documents BM25 can return."""

    def __init__(self, root: Path, data: Path, model: LiteModel, topics: pd.DataFrame, depth: int) -> None:
        corpus = list(read_corpus(data / "corpus.jsonl"))
        self.bm25 = (
            pyterrier_pisa.PisaIndex(str(root / "pisa"), text_field="text").index(corpus).bm25(num_results=depth)
        )
        self.texts = pt.text.get_text(DocumentTexts(corpus), "text")
        candidates = set(self.bm25(topics)["docno"])
        self.index = (
            LiteIndex(root / "lite")
            .indexer(model, batch_size=64)
            .index([doc for doc in corpus if doc["docno"] in candidates])
        )
        self.model = model
        self.topics = topics
        self.qrels = _qrels(data / "qrels.txt")

    def pipelines(self) -> dict[str, pt.Transformer]:
        return {
            "bm25": self.bm25,
            "text": self.bm25 >> self.texts >> LiteReranker(self.model, batch_size=64),
            "index": self.bm25 >> self.index.reranker(self.model),
        }


@pytest.fixture(scope="module")
def module_model(tiny_bert_path: Path) -> LiteModel:
    return LiteModel.from_encoder(tiny_bert_path, scorer="separable", query_length=8, document_length=16, seed=0)


@pytest.fixture(scope="module")
def noveleval(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_model: LiteModel) -> Setup:
    data = shared_data / "noveleval"
    return Setup(tmp_path_factory.mktemp("noveleval"), data, module_model, _topics(data / "queries.tsv"), depth=20)


@pytest.fixture(scope="module")
def vaswani(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_model: LiteModel) -> Setup:
    data = shared_data / "vaswani"
    return Setup(tmp_path_factory.mktemp("vaswani"), data, module_model, _topics(data / "queries.tsv", 12), depth=20)


@pytest.mark.parametrize("collection", ["noveleval", "vaswani"])
def test_text_and_index_rerankers_agree_after_bm25(collection: str, request: pytest.FixtureRequest) -> None:
    setup: Setup = request.getfixturevalue(collection)
    systems = setup.pipelines()
    first_stage = systems["bm25"](setup.topics)
    from_text, from_index = systems["text"](setup.topics), systems["index"](setup.topics)
    assert len(from_text) == len(from_index) == len(first_stage) > 0
    merged = from_text.merge(from_index, on=["qid", "docno"], suffixes=("_text", "_index"))
    assert len(merged) == len(first_stage)  # same candidates
    np.testing.assert_allclose(merged["score_text"], merged["score_index"], atol=1e-2)  # fp16 storage
    # Same order wherever scores are not within fp16 rounding of each other.
    gaps = from_text.groupby("qid")["score"].diff().abs().dropna()
    if (gaps > 1e-2).all():
        assert from_text["docno"].tolist() == from_index["docno"].tolist()
    bm25_ranks = first_stage.set_index(["qid", "docno"])["rank"]
    lite_ranks = from_text.set_index(["qid", "docno"])["rank"]
    assert (lite_ranks != bm25_ranks.loc[lite_ranks.index]).any()  # LITE re-ordered BM25's candidates


def test_experiment_runs_with_ir_measures(noveleval: Setup) -> None:
    systems = noveleval.pipelines()
    table = pt.Experiment(list(systems.values()), noveleval.topics, noveleval.qrels, MEASURES, names=list(systems))
    assert table["name"].tolist() == list(systems)
    columns = [str(measure) for measure in MEASURES]
    assert set(table.columns) == {"name", *columns}
    assert np.isfinite(table[columns].to_numpy()).all()
    text_row, index_row = table.set_index("name").loc[["text", "index"], columns].to_numpy()
    np.testing.assert_allclose(text_row, index_row, atol=0.02)  # the same scores up to fp16 rounding


def test_queries_with_no_candidates(noveleval: Setup) -> None:
    systems = noveleval.pipelines()
    topics = pd.concat([noveleval.topics.head(2), pd.DataFrame([{"qid": "none", "query": "zzzxqv qqqwzz"}])])
    for name in ("text", "index"):
        out = systems[name](topics)
        assert set(out["qid"]) == set(topics["qid"].head(2)) and {"score", "rank"} <= set(out.columns)
        nothing = systems[name](topics.tail(1))
        assert len(nothing) == 0 and {"score", "rank"} <= set(nothing.columns)
