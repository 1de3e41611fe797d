"""Retrieval over existing PyLate indexes with LITE as the final scorer: no re-indexing.

* Voyager (and any token-level index with ``get_documents_embeddings``): candidates from the
  per-token nearest neighbours, LITE over the stored document vectors (exact).
* PLAID (fast-plaid backend): candidates from PLAID's own search; LITE over the per-hit token
  similarity matrices S that fast-plaid computes from its compressed vectors
  (:func:`plaid_token_scores`). PyLate's ``get_documents_embeddings`` raises for PLAID, so this goes
  through the fast-plaid object PyLate keeps privately; the helper detects what is there.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from pylate.rank import RerankResult
from torch import nn
from tqdm.auto import tqdm

from lite_plugins.core import mask_from_padding
from lite_plugins.pylate.rank import _query_tokens, rerank
from lite_plugins.pylate.scores import as_tensor, resolve_scorer

logger = logging.getLogger(__name__)

PlaidMethod = Literal["auto", "token_scores", "reconstruct"]


class PlaidHit(NamedTuple):
    """One PLAID result: document id, PLAID's MaxSim score, and S ``[query_tokens, document_tokens]``."""

    id: Any
    score: float
    similarity: torch.Tensor


def _fast_plaid_parts(index: Any) -> tuple[Any, Any]:
    """(PyLate's FastPlaid wrapper, the fast_plaid search object) or NotImplementedError saying why."""
    wrapper = getattr(index, "_index", index)
    engine = getattr(wrapper, "fast_plaid", None)
    if engine is None or not hasattr(wrapper, "_load_plaid_ids_to_documents_ids"):
        raise NotImplementedError(
            f"{type(index).__name__} does not expose a fast-plaid index: LITE over PLAID needs "
            "pylate.indexes.PLAID(use_fast=True) (the Stanford backend keeps no per-hit token scores)"
        )
    return wrapper, engine


def plaid_method(index: Any, method: PlaidMethod = "auto") -> str:
    """Which way :func:`plaid_token_scores` gets S from this index.

    ``"token_scores"``: fast-plaid's ``search_token_scores`` (S for each hit, fp16);
    ``"reconstruct"``: ``search`` then ``get_embeddings`` (decompressed vectors, S computed here).
    """
    _, engine = _fast_plaid_parts(index)
    available = {
        "token_scores": hasattr(engine, "search_token_scores"),
        "reconstruct": hasattr(engine, "search") and hasattr(engine, "get_embeddings"),
    }
    if method == "auto":
        for name, present in available.items():
            if present:
                return name
        raise NotImplementedError(
            f"this fast-plaid ({type(engine).__module__}) has neither search_token_scores nor get_embeddings"
        )
    if method not in available:
        raise ValueError(f"method must be 'auto', 'token_scores' or 'reconstruct', got {method!r}")
    if not available[method]:
        raise NotImplementedError(f"this fast-plaid does not support method={method!r}")
    return method


def plaid_token_scores(
    index: Any,
    queries_embeddings: Any,
    k: int = 10,
    subset: list[list[str]] | list[str] | None = None,
    method: PlaidMethod = "auto",
) -> list[list[PlaidHit]]:
    """PLAID's top-``k`` hits per query, each with its token similarity matrix S.

    ``queries_embeddings`` is what ``pylate.models.ColBERT.encode(..., is_query=True)`` returns.
    S has one row per query token (as passed) and one column per stored document token, in the
    order PyLate stored them. ``subset`` restricts the search to document ids, as in PyLate.
    """
    wrapper, engine = _fast_plaid_parts(index)
    chosen = plaid_method(index, method)
    queries = _query_list(queries_embeddings)
    if not queries:
        return []
    if not getattr(wrapper, "is_indexed", True):
        raise ValueError("the PLAID index is empty; add documents before searching")
    padded = nn.utils.rnn.pad_sequence(queries, batch_first=True, padding_value=0.0)
    plaid_to_document = wrapper._load_plaid_ids_to_documents_ids()
    settings = {
        "top_k": int(k),
        "batch_size": getattr(wrapper, "batch_size", 1 << 18),
        "n_full_scores": max(getattr(wrapper, "n_full_scores", 4096), int(k)),
        "n_ivf_probe": getattr(wrapper, "n_ivf_probe", 8),
        "show_progress": False,
        "subset": _plaid_subset(wrapper, subset),
        "n_processes": getattr(wrapper, "num_threads", None),
    }
    if settings["subset"] == []:
        return [[] for _ in queries]
    if chosen == "token_scores":
        raw = engine.search_token_scores(padded, **settings)
        hits = [[(pid, score, matrix) for pid, score, matrix in per_query] for per_query in raw]
    else:
        raw = engine.search(padded, **settings)
        hits = []
        for query, per_query in zip(padded, raw, strict=True):
            vectors = engine.get_embeddings([pid for pid, _ in per_query]) if per_query else []
            hits.append(
                [
                    (pid, score, query.float() @ torch.as_tensor(v).float().T)
                    for (pid, score), v in zip(per_query, vectors, strict=True)
                ]
            )
    return [
        [
            PlaidHit(plaid_to_document[pid], float(score), torch.as_tensor(matrix))
            for pid, score, matrix in per_query
            if pid in plaid_to_document
        ]
        for per_query in hits
    ]


def _plaid_subset(wrapper: Any, subset: list[list[str]] | list[str] | None) -> list | None:
    if subset is None:
        return None
    to_plaid = wrapper._load_documents_ids_to_plaid_ids()
    if subset and isinstance(subset[0], (list, tuple)):
        return [[to_plaid[d] for d in group if d in to_plaid] for group in subset]
    return [to_plaid[d] for d in subset if d in to_plaid]


def _query_list(queries_embeddings: Any) -> list[torch.Tensor]:
    if isinstance(queries_embeddings, (torch.Tensor, np.ndarray)) and queries_embeddings.ndim == 2:
        queries_embeddings = [queries_embeddings]
    return [_query_tokens(query).embeddings[0].float() for query in queries_embeddings]


class LiteRetriever:
    """Retrieve from a PyLate index with LITE as the final scorer (same results format as PyLate's).

    >>> # retriever = LiteRetriever(index=voyager_or_plaid_index, scorer=lite_colbert)
    >>> # retriever.retrieve(colbert.encode(queries, is_query=True), k=10)

    ``k_candidates`` (PLAID) is how many PLAID hits LITE re-scores per query; for token-level
    indexes (Voyager) the candidates are every document hit by ``k_token`` neighbours of any query
    token, as in ``pylate.retrieve.ColBERT``.
    """

    def __init__(self, index: Any, scorer: Any, k_candidates: int = 100, method: PlaidMethod = "auto") -> None:
        self.index = index
        self.scorer = resolve_scorer(scorer)
        if k_candidates < 1:
            raise ValueError(f"k_candidates must be >= 1, got {k_candidates}")
        self.k_candidates = int(k_candidates)
        self.plaid_method: PlaidMethod = method
        if getattr(index, "is_end_to_end_index", False):
            if not self.scorer.uses_similarity:
                raise ValueError(
                    f"{type(self.scorer).__name__} scores token vectors, not S; over PLAID use a LITE or MaxSim scorer"
                )
            self.plaid_method = plaid_method(index, method)  # type: ignore[assignment]  # fails early, saying why
        elif not hasattr(index, "get_documents_embeddings"):
            raise TypeError(f"{type(index).__name__} is not a PyLate index (no get_documents_embeddings)")

    def __repr__(self) -> str:
        return (
            f"LiteRetriever(index={type(self.index).__name__}, scorer={type(self.scorer).__name__}, "
            f"k_candidates={self.k_candidates})"
        )

    def retrieve(
        self,
        queries_embeddings: Any,
        k: int = 10,
        k_token: int = 100,
        device: str | None = None,
        batch_size: int = 50,
        subset: list[list[str]] | list[str] | None = None,
        show_progress: bool = False,
    ) -> list[list[RerankResult]]:
        """Per query, the top ``k`` documents by LITE score: ``[{"id", "score"}]``, best first."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if isinstance(queries_embeddings, (torch.Tensor, np.ndarray)) and queries_embeddings.ndim == 2:
            queries_embeddings = [queries_embeddings]
        queries = list(queries_embeddings)
        results: list[list[RerankResult]] = []
        starts = range(0, len(queries), batch_size)
        for start in tqdm(starts, desc="LITE retrieval", disable=not show_progress, unit="batch"):
            batch = queries[start : start + batch_size]
            if getattr(self.index, "is_end_to_end_index", False):
                results.extend(self._plaid_batch(batch, k, subset, start))
            else:
                results.extend(self._token_index_batch(batch, k, max(k, k_token), subset, start))
        return results

    # --- token-level indexes (Voyager) --------------------------------------------------------
    def _token_index_batch(
        self, batch: list, k: int, k_token: int, subset: Any, offset: int
    ) -> list[list[RerankResult]]:
        hits = self.index(queries_embeddings=[as_tensor(q, "queries_embeddings").float() for q in batch], k=k_token)
        candidates = []
        for i, per_token in enumerate(hits["documents_ids"]):
            ids = list(dict.fromkeys(doc_id for token_ids in per_token for doc_id in token_ids))
            allowed = _allowed(subset, offset + i)
            candidates.append([doc_id for doc_id in ids if allowed is None or doc_id in allowed])
        embeddings = self.index.get_documents_embeddings(candidates)
        ranked = rerank(candidates, batch, embeddings, scorer=self.scorer)
        return [per_query[:k] for per_query in ranked]

    # --- PLAID --------------------------------------------------------------------------------
    def _plaid_batch(self, batch: list, k: int, subset: Any, offset: int) -> list[list[RerankResult]]:
        query_subset = subset
        if subset and isinstance(subset[0], (list, tuple)):
            query_subset = subset[offset : offset + len(batch)]
        hits = plaid_token_scores(
            self.index, batch, k=max(k, self.k_candidates), subset=query_subset, method=self.plaid_method
        )
        results = []
        for query, per_query in zip(batch, hits, strict=True):
            if not per_query:
                results.append([])
                continue
            query_mask = mask_from_padding(_query_tokens(query).embeddings[0])
            similarity = nn.utils.rnn.pad_sequence(
                [hit.similarity.float().T for hit in per_query], batch_first=True, padding_value=0.0
            ).transpose(1, 2)  # [n_hits, query_tokens, document_tokens]
            lengths = torch.tensor([hit.similarity.shape[-1] for hit in per_query])
            document_mask = torch.arange(similarity.shape[-1])[None, :] < lengths[:, None]
            rows = similarity.shape[1]
            mask_q = torch.zeros(rows, dtype=torch.bool)
            mask_q[: min(rows, len(query_mask))] = query_mask[:rows]
            device = next(self.scorer.parameters()).device
            with torch.no_grad():
                scores = self.scorer(
                    similarity.to(device),
                    mask_q.expand(len(per_query), -1).to(device),
                    document_mask.to(device),
                )
            order = torch.sort(scores.float(), descending=True, stable=True)
            results.append(
                [
                    RerankResult(id=per_query[i].id, score=score)
                    for i, score in zip(order.indices.tolist()[:k], order.values.tolist()[:k], strict=True)
                ]
            )
        return results


def _allowed(subset: Any, query_index: int) -> set | None:
    if subset is None:
        return None
    if subset and isinstance(subset[0], (list, tuple)):
        return set(subset[query_index])
    return set(subset)
