"""Teacher scores for distillation, and the training datasets the LITE losses take.

:func:`teacher_scores` scores each query's candidates with any sentence-transformers model: a
``CrossEncoder`` (its raw scores), or a ``SentenceTransformer`` as a dense model (cosine of mean
token vectors as the model pools them) or as an untrained ColBERT (MaxSim over L2-normalized token
vectors). The shared ``teacher.tsv`` files were made with ``all-mpnet-base-v2`` in both
SentenceTransformer modes.

:func:`listwise_dataset` (for ``ListwiseKLLoss`` / ``ListNetLoss``) and :func:`margin_mse_dataset`
(for ``MarginMSELoss``) turn candidates + teacher scores into ``datasets.Dataset`` objects.
"""

from __future__ import annotations

import csv
import logging
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.cross_encoder import CrossEncoder
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

TeacherMethod = Literal["auto", "cross-encoder", "dense", "maxsim"]
#: {qid: [(docid, text), ...]} or {qid: [Candidate, ...]} (objects with .docid and .text).
Candidates = Mapping[str, Sequence[Any]]


def _docid_text(candidate: Any) -> tuple[str, str]:
    if isinstance(candidate, (tuple, list)) and len(candidate) == 2:
        return str(candidate[0]), candidate[1]
    if hasattr(candidate, "docid") and hasattr(candidate, "text"):
        return str(candidate.docid), candidate.text
    raise TypeError(f"a candidate must be (docid, text) or have .docid and .text, got {candidate!r:.80}")


def teacher_scores(
    teacher: CrossEncoder | SentenceTransformer,
    queries: Mapping[str, str],
    candidates: Candidates,
    method: TeacherMethod = "auto",
    query_length: int = 32,
    document_length: int = 180,
    batch_size: int = 32,
    show_progress_bar: bool = False,
) -> dict[str, dict[str, float]]:
    """{qid: {docid: score}} for every candidate of every query in ``queries``.

    ``method="auto"`` uses a CrossEncoder as one and a SentenceTransformer as ``"dense"``.
    For SentenceTransformers, queries are cut at ``query_length`` tokens and documents at
    ``document_length`` (as the shared teacher files were); a CrossEncoder truncates pairs itself.
    Raw CrossEncoder scores (no Sigmoid) are kept: they carry the margins distillation learns from.
    """
    if method == "auto":
        method = "cross-encoder" if isinstance(teacher, CrossEncoder) else "dense"
    if method == "cross-encoder" and not isinstance(teacher, CrossEncoder):
        raise TypeError(f"method='cross-encoder' needs a CrossEncoder teacher, got {type(teacher).__name__}")
    if method in ("dense", "maxsim") and not isinstance(teacher, SentenceTransformer):
        raise TypeError(f"method={method!r} needs a SentenceTransformer teacher, got {type(teacher).__name__}")
    if method not in ("cross-encoder", "dense", "maxsim"):
        raise ValueError(f"method must be 'auto', 'cross-encoder', 'dense' or 'maxsim', got {method!r}")
    missing = [qid for qid in candidates if qid not in queries]
    if missing:
        raise KeyError(f"candidates for queries without text: {missing[:5]}")
    scores: dict[str, dict[str, float]] = {}
    for qid in tqdm(list(candidates), desc="Teacher", disable=not show_progress_bar, unit="query"):
        hits = [_docid_text(c) for c in candidates[qid]]
        if not hits:
            scores[qid] = {}
            continue
        texts = [text for _, text in hits]
        if method == "cross-encoder":
            values = teacher.predict(  # type: ignore[union-attr]
                [(queries[qid], text) for text in texts], batch_size=batch_size,
                activation_fn=torch.nn.Identity(), convert_to_tensor=True, show_progress_bar=False,
            )  # fmt: skip
        else:
            values = _bi_encoder_scores(teacher, queries[qid], texts, method, query_length, document_length, batch_size)  # type: ignore[arg-type]
        values = values.float().cpu().tolist()
        scores[qid] = {docid: float(v) for (docid, _), v in zip(hits, values, strict=True)}
    return scores


def _bi_encoder_scores(
    model: SentenceTransformer,
    query: str,
    documents: list[str],
    method: str,
    query_length: int,
    document_length: int,
    batch_size: int,
) -> torch.Tensor:
    previous = model.max_seq_length
    try:
        model.max_seq_length = query_length
        output = "sentence_embedding" if method == "dense" else "token_embeddings"
        q = model.encode([query], output_value=output, batch_size=batch_size, convert_to_tensor=method == "dense")
        model.max_seq_length = document_length
        d = model.encode(documents, output_value=output, batch_size=batch_size, convert_to_tensor=method == "dense")
    finally:
        model.max_seq_length = previous
    if method == "dense":
        return torch.nn.functional.normalize(d, dim=-1) @ torch.nn.functional.normalize(q, dim=-1)[0]
    query_vectors = torch.nn.functional.normalize(q[0].float(), dim=-1)
    return torch.stack(
        [(query_vectors @ torch.nn.functional.normalize(v.float(), dim=-1).T).amax(dim=1).sum() for v in d]
    )


def listwise_dataset(
    queries: Mapping[str, str],
    candidates: Candidates,
    scores: Mapping[str, Mapping[str, float]],
    list_size: int | None = 16,
    lists_per_query: int = 1,
    seed: int = 0,
) -> Any:
    """A ``datasets.Dataset`` with columns ``query``, ``docs``, ``labels`` (teacher scores), listwise losses.

    Each list holds the teacher's best candidate plus ``list_size - 1`` others drawn at random
    (all candidates when ``list_size`` is None), so every list has a clear top and a spread below it.
    Candidates without a teacher score are skipped.
    """
    from datasets import Dataset

    if list_size is not None and list_size < 2:
        raise ValueError(f"list_size must be >= 2 (a list needs something to rank), got {list_size}")
    rng = random.Random(seed)
    rows: dict[str, list[Any]] = {"query": [], "docs": [], "labels": []}
    for qid, hits, teacher in _scored(queries, candidates, scores):
        for _ in range(lists_per_query if list_size is not None else 1):
            best = max(range(len(hits)), key=lambda i: teacher[i])
            others = [i for i in range(len(hits)) if i != best]
            if list_size is not None:
                others = rng.sample(others, min(list_size - 1, len(others)))
            chosen = [best, *others]
            rows["query"].append(queries[qid])
            rows["docs"].append([hits[i][1] for i in chosen])
            rows["labels"].append([teacher[i] for i in chosen])
    return Dataset.from_dict(rows)


def margin_mse_dataset(
    queries: Mapping[str, str],
    candidates: Candidates,
    scores: Mapping[str, Mapping[str, float]],
    pairs_per_query: int = 8,
    positive_pool: int = 5,
    seed: int = 0,
) -> Any:
    """A ``datasets.Dataset`` of ``query``, ``positive``, ``negative``, ``label`` (teacher margin).

    Positives are drawn from the teacher's top ``positive_pool`` candidates (fewer if a query has no
    more than that), negatives from the rest;
    the label is ``teacher(positive) - teacher(negative)``.
    """
    from datasets import Dataset

    if positive_pool < 1 or pairs_per_query < 1:
        raise ValueError(f"positive_pool and pairs_per_query must be >= 1, got {positive_pool}, {pairs_per_query}")
    rng = random.Random(seed)
    rows: dict[str, list[Any]] = {"query": [], "positive": [], "negative": [], "label": []}
    for qid, hits, teacher in _scored(queries, candidates, scores):
        order = sorted(range(len(hits)), key=lambda i: -teacher[i])
        pool = min(positive_pool, len(order) - 1)  # always leave at least one negative
        top, rest = order[:pool], order[pool:]
        for _ in range(pairs_per_query):
            positive, negative = rng.choice(top), rng.choice(rest)
            rows["query"].append(queries[qid])
            rows["positive"].append(hits[positive][1])
            rows["negative"].append(hits[negative][1])
            rows["label"].append(teacher[positive] - teacher[negative])
    return Dataset.from_dict(rows)


def _scored(
    queries: Mapping[str, str], candidates: Candidates, scores: Mapping[str, Mapping[str, float]]
) -> Iterable[tuple[str, list[tuple[str, str]], list[float]]]:
    """Per query: the candidates that have a teacher score, with those scores (queries with < 2 skipped)."""
    skipped = 0
    for qid in sorted(candidates):
        if qid not in queries or qid not in scores:
            skipped += 1
            continue
        hits = [h for h in (_docid_text(c) for c in candidates[qid]) if h[0] in scores[qid]]
        if len(hits) < 2:
            skipped += 1
            continue
        yield qid, hits, [float(scores[qid][docid]) for docid, _ in hits]
    if skipped:
        logger.info("skipped %d queries without text, teacher scores or at least 2 scored candidates", skipped)


def write_teacher_tsv(path: str | Path, scores: Mapping[str, Mapping[str, float]], column: str, system: str) -> None:
    """Write scores in the shared ``teacher.tsv`` layout (``system qid docid <column>``), see read_teacher."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["system", "qid", "docid", column])
        for qid, by_doc in scores.items():
            for docid, score in by_doc.items():
                writer.writerow([system, qid, docid, f"{score:.6f}"])
    os.replace(temporary, path)
