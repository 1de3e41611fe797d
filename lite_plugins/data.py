"""Readers and writers for the plain IR file formats lite_plugins uses (no ecosystem needed).

=======================  ==================================================================
file                     format
=======================  ==================================================================
``queries.tsv``          ``qid<TAB>query text``
``qrels.txt``            TREC qrels: ``qid 0 docid grade``
``corpus.jsonl``         one ``{"docid", "text", ["title"]}`` per line
``candidates.*.jsonl``   one ``{"qid", "docid", "rank", "score", "text"}`` per line
``teacher.tsv``          header ``system qid docid <score columns...>``
TREC run                 ``qid Q0 docid rank score tag``
=======================  ==================================================================
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: Relevance grade at which TREC DL passage judgments count as relevant for MRR/R (graded 0-3).
TREC_DL_RELEVANCE_LEVEL = 2


@dataclass
class Candidate:
    """One first-stage hit with its text."""

    qid: str
    docid: str
    text: str
    rank: int = 0
    score: float = 0.0


def _open_text(path: str | Path) -> Iterator[tuple[int, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if line.strip():
                yield number, line


def read_queries(path: str | Path) -> dict[str, str]:
    """``queries.tsv`` -> {qid: text}."""
    queries: dict[str, str] = {}
    for number, line in _open_text(path):
        qid, sep, text = line.partition("\t")
        if not sep:
            raise ValueError(f"{path}:{number}: expected 'qid<TAB>query text', got {line[:80]!r}")
        queries[qid.strip()] = text.strip()
    return queries


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """TREC qrels -> {qid: {docid: grade}}."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for number, line in _open_text(path):
        parts = line.split()
        if len(parts) != 4:
            raise ValueError(f"{path}:{number}: expected 'qid 0 docid grade', got {line[:80]!r}")
        qrels[parts[0]][parts[2]] = int(parts[3])
    return dict(qrels)


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> Iterator[dict]:
    """Records of a JSON-lines file, checking that each has the ``required`` fields."""
    required = tuple(required)
    for number, line in _open_text(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not valid JSON ({error})") from None
        missing = [field for field in required if field not in record]
        if missing:
            raise ValueError(f"{path}:{number}: missing field(s) {missing}; each line needs {list(required)}")
        yield record


def read_candidates(path: str | Path) -> dict[str, list[Candidate]]:
    """``candidates.*.jsonl`` -> {qid: [Candidate, ...]} in first-stage rank order."""
    grouped: dict[str, list[Candidate]] = defaultdict(list)
    for record in read_jsonl(path, required=("qid", "docid", "text")):
        grouped[str(record["qid"])].append(
            Candidate(
                str(record["qid"]),
                str(record["docid"]),
                str(record["text"]),
                int(record.get("rank", 0)),
                float(record.get("score", 0.0)),
            )
        )
    for hits in grouped.values():
        hits.sort(key=lambda c: (c.rank, -c.score))
    return dict(grouped)


def read_corpus(path: str | Path) -> Iterator[dict[str, str]]:
    """``corpus.jsonl`` -> {"docno", "text"} records (title, if any, joined before the text)."""
    for record in read_jsonl(path, required=("docid", "text")):
        title = record.get("title") or ""
        text = f"{title}. {record['text']}" if title else record["text"]
        yield {"docno": str(record["docid"]), "text": text}


def read_teacher(path: str | Path, column: str, system: str | None = None) -> dict[str, dict[str, float]]:
    """``teacher.tsv`` -> {qid: {docid: score}} from one score column, optionally one first-stage system."""
    teacher: dict[str, dict[str, float]] = defaultdict(dict)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if not reader.fieldnames or column not in reader.fieldnames:
            raise ValueError(f"{path} has no column {column!r}; columns: {reader.fieldnames}")
        for row in reader:
            if system is None or row["system"] == system:
                teacher[row["qid"]][row["docid"]] = float(row[column])
    return dict(teacher)


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str = "lite") -> None:
    """Write {qid: {docid: score}} as a TREC run, ranks by descending score; atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        for qid, scores in run.items():
            ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
            for rank, (docid, score) in enumerate(ranked, start=1):
                handle.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
    os.replace(temporary, path)


def read_run(path: str | Path) -> dict[str, dict[str, float]]:
    """TREC run -> {qid: {docid: score}}."""
    run: dict[str, dict[str, float]] = defaultdict(dict)
    for number, line in _open_text(path):
        parts = line.split()
        if len(parts) != 6:
            raise ValueError(f"{path}:{number}: expected 'qid Q0 docid rank score tag', got {line[:80]!r}")
        run[parts[0]][parts[2]] = float(parts[4])
    return dict(run)


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    relevance_level: int = 1,
    measures: Iterable[str] = ("nDCG@10", "RR@10", "R@100"),
) -> dict[str, float]:
    """Mean measures over the queries with judgments, via ir_measures (nDCG uses the graded qrels;
    RR and R count grades >= ``relevance_level``, 2 for TREC DL passages)."""
    import ir_measures

    parsed = []
    for name in measures:
        measure = ir_measures.parse_measure(name)
        if relevance_level != 1 and not name.lower().startswith("ndcg"):
            measure = measure(rel=relevance_level)
        parsed.append((name, measure))
    judged = {qid: dict(docs) for qid, docs in qrels.items() if qid in run}
    if not judged:
        raise ValueError("no query of the run has judgments in the qrels (check the qids)")
    results = ir_measures.calc_aggregate([m for _, m in parsed], judged, {q: dict(run[q]) for q in judged})
    return {name: float(results[measure]) for name, measure in parsed}
