"""Evaluation sets shared by the benchmark scripts (import it from a script in this folder).

* ``dl21-bm25``, ``dl21-splade``: TREC DL 2021 passages, top-100 candidates given in ../shared/data
  (the development set: nothing is trained or tuned on it);
* ``vaswani``, ``cranfield``, ``cisi``, ``noveleval``: out-of-domain, BM25 top-100 built here with
  PyTerrier + pyterrier_pisa (offline, no Java) and cached as candidate JSONL under ``scratch/bm25``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lite_plugins.data import (
    TREC_DL_RELEVANCE_LEVEL,
    Candidate,
    read_candidates,
    read_corpus,
    read_qrels,
    read_queries,
)

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LITE_SHARED_DATA", REPO.parent / "shared" / "data"))
SCRATCH = Path(os.environ.get("LITE_SCRATCH", REPO / "scratch"))
RESULTS = REPO / "benchmarks" / "results"
OUT_OF_DOMAIN = ("vaswani", "cranfield", "cisi", "noveleval")
DL = "trec-dl21-passage"


@dataclass
class EvaluationSet:
    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, list[Candidate]]
    relevance_level: int

    def texts(self) -> list[str]:
        return list(dict.fromkeys(hit.text for hits in self.candidates.values() for hit in hits))


def bm25_candidates(name: str, depth: int = 100) -> dict[str, list[Candidate]]:
    """BM25 top-``depth`` with texts for a classic collection, built once with PISA and cached as JSONL."""
    cached = SCRATCH / "bm25" / f"{name}.bm25.top{depth}.jsonl"
    if not cached.is_file():
        import pandas as pd
        import pyterrier as pt  # noqa: F401  (initializes PyTerrier for pyterrier_pisa)
        from pyterrier_pisa import PisaIndex

        corpus = {record["docno"]: record["text"] for record in read_corpus(DATA / name / "corpus.jsonl")}
        index = PisaIndex(str(SCRATCH / "bm25" / f"{name}.pisa"), text_field="text", overwrite=True)
        index.index({"docno": docno, "text": text} for docno, text in corpus.items())
        queries = read_queries(DATA / name / "queries.tsv")
        # PISA's query parser rejects punctuation; BM25 ignores it anyway.
        topics = pd.DataFrame({"qid": list(queries), "query": [re.sub(r"[^\w\s]", " ", q) for q in queries.values()]})
        results = index.bm25(num_results=depth).transform(topics)
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            for row in results.itertuples():
                record = {"qid": row.qid, "docid": row.docno, "rank": int(row.rank) + 1, "score": float(row.score)}
                handle.write(json.dumps({**record, "text": corpus[row.docno]}) + "\n")
        temporary.replace(cached)
    return read_candidates(cached)


def load_set(name: str, max_queries: int | None = None) -> EvaluationSet:
    """One evaluation set by name (see the module docstring); only judged queries are kept."""
    if name.startswith("dl21-"):
        system = name.split("-", 1)[1]
        queries = read_queries(DATA / DL / "queries.tsv")
        qrels = read_qrels(DATA / DL / "qrels.txt")
        candidates = read_candidates(DATA / DL / f"candidates.{system}.top100.jsonl")
        level = TREC_DL_RELEVANCE_LEVEL
    elif name in OUT_OF_DOMAIN:
        queries = read_queries(DATA / name / "queries.tsv")
        qrels = read_qrels(DATA / name / "qrels.txt")
        candidates = bm25_candidates(name)
        level = 1
    else:
        raise ValueError(f"unknown set {name!r}; expected dl21-bm25, dl21-splade or one of {OUT_OF_DOMAIN}")
    judged = sorted((qid for qid in candidates if qid in qrels and qid in queries), key=lambda q: (len(q), q))
    keep = judged[:max_queries] if max_queries else judged
    return EvaluationSet(name, queries, qrels, {qid: candidates[qid] for qid in keep}, level)


def first_stage_run(evaluation_set: EvaluationSet) -> dict[str, dict[str, float]]:
    return {qid: {hit.docid: hit.score for hit in hits} for qid, hits in evaluation_set.candidates.items()}
