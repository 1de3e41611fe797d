"""``rerank``: the inputs and outputs of ``pylate.rank.rerank``, scored by LITE instead of MaxSim."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pylate.rank import RerankResult

from lite_plugins.core import TokenEmbeddings, mask_from_padding
from lite_plugins.pylate.scores import as_tensor, lite_scores, resolve_scorer


def _query_tokens(query: Any) -> TokenEmbeddings:
    """One query as a padded batch of one; zero rows (padding) are masked out."""
    vectors = as_tensor(query, "queries_embeddings")
    if vectors.dim() == 3 and vectors.shape[0] == 1:
        vectors = vectors[0]
    if vectors.dim() != 2:
        raise ValueError(f"each query embedding must be [query_tokens, dim], got {tuple(vectors.shape)}")
    return TokenEmbeddings(vectors[None], mask_from_padding(vectors)[None])


def _document_tokens(documents: Any) -> TokenEmbeddings:
    """A query's candidates: a list of unpadded ``[n_i, d]`` items (exact lengths) or a padded tensor."""
    if isinstance(documents, torch.Tensor) or (isinstance(documents, np.ndarray) and documents.dtype != object):
        padded = as_tensor(documents, "documents_embeddings")
        if padded.dim() != 3:
            raise ValueError(f"padded documents must be [n_documents, tokens, dim], got {tuple(padded.shape)}")
        return TokenEmbeddings(padded, mask_from_padding(padded))
    items = [as_tensor(np.asarray(item, dtype=np.float32), "documents_embeddings") for item in documents]
    dims = {item.shape[-1] for item in items if item.dim() == 2 and item.shape[0] > 0}
    dim = dims.pop() if len(dims) == 1 else None
    items = [item.reshape(0, dim) if item.numel() == 0 and dim is not None else item for item in items]
    return TokenEmbeddings.pad(items)


def rerank(
    documents_ids: list[list[int | str]],
    queries_embeddings: Any,
    documents_embeddings: Any,
    device: str | None = None,
    *,
    scorer: Any,
) -> list[list[RerankResult]]:
    """Re-rank each query's candidates with LITE; same inputs and outputs as ``pylate.rank.rerank``.

    ``queries_embeddings``: one ``[query_tokens, d]`` item per query (list, array or tensor);
    ``documents_embeddings``: per query, its candidates' ``[n_tokens, d]`` items (or one padded
    tensor), aligned with ``documents_ids``. Returns per query ``[{"id", "score"}]``, best first.
    Masks come from the item lengths (or from zero padding for padded input), so documents with
    no tokens are scored too; ``scorer`` is a LiteScorer or a LiteColBERT / LiteModel. ``device`` is
    kept for signature compatibility: scoring runs where the scorer's parameters are.

    >>> import torch
    >>> from lite_plugins.core import MaxSim
    >>> query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> docs = [torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])]
    >>> [r["id"] for r in rerank([["a", "b"]], [query], [docs], scorer=MaxSim())[0]]
    ['b', 'a']
    """
    lite = resolve_scorer(scorer)
    if isinstance(queries_embeddings, (torch.Tensor, np.ndarray)) and queries_embeddings.ndim == 2:
        queries_embeddings = [queries_embeddings]
    if len(documents_ids) != len(queries_embeddings) or len(documents_embeddings) != len(queries_embeddings):
        raise ValueError(
            f"got {len(queries_embeddings)} queries, {len(documents_ids)} id lists and "
            f"{len(documents_embeddings)} embedding lists; they must align (one list per query)"
        )
    target = next(lite.parameters()).device
    results: list[list[RerankResult]] = []
    for query, ids, candidates in zip(queries_embeddings, documents_ids, documents_embeddings, strict=True):
        if len(ids) != len(candidates):
            raise ValueError(f"a query has {len(ids)} document ids but {len(candidates)} document embeddings")
        if not len(ids):
            results.append([])
            continue
        query_tokens = _query_tokens(query).to(target)
        document_tokens = _document_tokens(candidates).to(target)
        with torch.no_grad():
            scores = lite_scores(
                query_tokens.embeddings,
                document_tokens.embeddings,
                query_tokens.mask,
                document_tokens.mask,
                scorer=lite,
            )[0]
        ordered_scores, order = torch.sort(scores.float(), descending=True, stable=True)
        results.append(
            [
                RerankResult(id=ids[i], score=score)
                for i, score in zip(order.tolist(), ordered_scores.cpu().tolist(), strict=True)
            ]
        )
    return results
