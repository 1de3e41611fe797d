"""LITE score functions with PyLate's signatures, so a LITE scorer drops in wherever MaxSim is used.

===========================  ==========================  ===============================  ==============
function                     queries                     documents                        scores
===========================  ==========================  ===============================  ==============
:func:`lite_scores`          ``[Nq, Lq, d]``             ``[Nd, Ld, d]``                  ``[Nq, Nd]``
:func:`lite_kd_scores`       ``[B, Lq, d]``              ``[B, N, Ld, d]``                ``[B, N]``
:func:`lite_scores_pairwise` ``[N, Lq, d]`` or a list    ``[N, Ld, d]`` or a list         ``[N]``
:class:`LiteScores`          as ``ColBERTScores`` (``mode="contrastive"``) or ``colbert_kd_scores`` (``"kd"``)
===========================  ==========================  ===============================  ==============

Masks are optional as in PyLate; when one is missing it is inferred from zero padding (PyLate pads
with zero vectors). Document tokens are moved to the front of their row before scoring (PyLate's
training masks have holes where skiplisted tokens were, its indexes store them without the holes);
a position-sensitive LITE head must see the same layout in training and at search time.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lite_plugins.core import LiteScorer, mask_from_padding

ArrayLike = torch.Tensor | np.ndarray | list


def resolve_scorer(scorer: Any) -> LiteScorer:
    """A :class:`LiteScorer`, or the one held as ``.scorer`` (LiteColBERT, LiteModel, LiteScores)."""
    candidate = getattr(scorer, "scorer", scorer)
    if not isinstance(candidate, LiteScorer):
        raise TypeError(
            "scorer must be a lite_plugins LiteScorer (or a LiteColBERT / LiteModel holding one), "
            f"got {type(scorer).__name__}"
        )
    return candidate


def as_tensor(embeddings: ArrayLike, what: str) -> torch.Tensor:
    """A padded tensor from a tensor, an array, or a list of ``[n_tokens, d]`` items (zero padded)."""
    if isinstance(embeddings, torch.Tensor):
        return embeddings
    if isinstance(embeddings, np.ndarray) and embeddings.dtype != object:
        return torch.from_numpy(embeddings)
    if isinstance(embeddings, (list, tuple, np.ndarray)):
        items = [torch.as_tensor(np.asarray(item, dtype=np.float32)) for item in embeddings]
        if not items:
            return torch.zeros(0, 0, 0)
        return nn.utils.rnn.pad_sequence(items, batch_first=True, padding_value=0.0)
    raise TypeError(
        f"{what} must be a torch.Tensor, a numpy array or a list of [n_tokens, dim] arrays, "
        f"got {type(embeddings).__name__}"
    )


def _mask(embeddings: torch.Tensor, mask: ArrayLike | None, what: str) -> torch.Tensor:
    if mask is None:
        return mask_from_padding(embeddings)
    mask = torch.as_tensor(mask, device=embeddings.device)
    if mask.shape != embeddings.shape[:-1]:
        raise ValueError(f"{what} mask has shape {tuple(mask.shape)}, expected {tuple(embeddings.shape[:-1])}")
    return mask.bool()


def compact(embeddings: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move real tokens to the front along the token axis (order kept) and cut all-padding columns.

    >>> import torch
    >>> emb = torch.tensor([[[1.0], [2.0], [3.0]]])
    >>> out, mask = compact(emb, torch.tensor([[False, True, True]]))
    >>> out.squeeze(-1).tolist(), mask.tolist()
    ([[2.0, 3.0]], [[True, True]])
    """
    order = torch.argsort((~mask).to(torch.int32), dim=-1, stable=True)
    mask = torch.gather(mask, -1, order)
    embeddings = torch.gather(embeddings, -2, order[..., None].expand_as(embeddings))
    width = int(mask.sum(dim=-1).max()) if mask.numel() else 0
    return embeddings[..., :width, :], mask[..., :width]


def _prepare(
    queries_embeddings: ArrayLike,
    documents_embeddings: ArrayLike,
    queries_mask: ArrayLike | None,
    documents_mask: ArrayLike | None,
    scorer: LiteScorer,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    queries = as_tensor(queries_embeddings, "queries_embeddings")
    documents = as_tensor(documents_embeddings, "documents_embeddings")
    query_mask = _mask(queries, queries_mask, "queries")
    document_mask = _mask(documents, documents_mask, "documents")
    documents, document_mask = compact(documents, document_mask)
    dtype = scorer.parameter_dtype
    device = next(scorer.parameters()).device
    return (
        queries.to(device, dtype),
        documents.to(device, dtype),
        query_mask.to(device),
        document_mask.to(device),
    )


def lite_scores(
    queries_embeddings: ArrayLike,
    documents_embeddings: ArrayLike,
    queries_mask: ArrayLike | None = None,
    documents_mask: ArrayLike | None = None,
    *,
    scorer: Any,
) -> torch.Tensor:
    """LITE scores of every query against every document, ``[Nq, Nd]``, like ``colbert_scores``.

    ``scorer`` is keyword-only so that ``functools.partial(lite_scores, scorer=...)`` fits any
    place that calls ``colbert_scores``.

    >>> import torch
    >>> from lite_plugins.core import SeparableLite
    >>> scorer = SeparableLite(query_length=4, document_length=6)
    >>> lite_scores(torch.rand(2, 4, 8), torch.rand(3, 5, 8), scorer=scorer).shape
    torch.Size([2, 3])
    """
    lite = resolve_scorer(scorer)
    queries, documents, query_mask, document_mask = _prepare(
        queries_embeddings, documents_embeddings, queries_mask, documents_mask, lite
    )
    if queries.shape[0] == 0 or documents.shape[0] == 0:
        return torch.zeros(queries.shape[0], documents.shape[0], device=queries.device, dtype=queries.dtype)
    return lite.score(queries, documents, query_mask, document_mask, pairing="all")


def lite_kd_scores(
    queries_embeddings: ArrayLike,
    documents_embeddings: ArrayLike,
    queries_mask: ArrayLike | None = None,
    documents_mask: ArrayLike | None = None,
    *,
    scorer: Any,
) -> torch.Tensor:
    """LITE scores of each query against its own candidates, ``[B, N]``, like ``colbert_kd_scores``.

    >>> import torch
    >>> from lite_plugins.core import SeparableLite
    >>> scorer = SeparableLite(query_length=4, document_length=6)
    >>> lite_kd_scores(torch.rand(2, 4, 8), torch.rand(2, 3, 5, 8), scorer=scorer).shape
    torch.Size([2, 3])
    """
    lite = resolve_scorer(scorer)
    queries, documents, query_mask, document_mask = _prepare(
        queries_embeddings, documents_embeddings, queries_mask, documents_mask, lite
    )
    if documents.dim() != 4:
        raise ValueError(
            f"documents_embeddings must have shape [batch_size, n_candidates, document_tokens, dim], "
            f"got {tuple(documents.shape)}"
        )
    if queries.shape[0] == 0:
        return torch.zeros(0, documents.shape[1], device=queries.device, dtype=queries.dtype)
    return lite.score(queries, documents, query_mask, document_mask, pairing="grouped")


def lite_scores_pairwise(
    queries_embeddings: ArrayLike,
    documents_embeddings: ArrayLike,
    *,
    scorer: Any,
) -> torch.Tensor:
    """LITE score of each (query, document) pair, ``[N]``, like ``colbert_scores_pairwise``.

    Lists of unpadded ``[n_tokens, d]`` items keep their exact lengths; padded tensors get their
    masks from zero padding.

    >>> import torch
    >>> from lite_plugins.core import SeparableLite
    >>> scorer = SeparableLite(query_length=4, document_length=6)
    >>> lite_scores_pairwise([torch.rand(4, 8)], [torch.rand(2, 8)], scorer=scorer).shape
    torch.Size([1])
    """
    lite = resolve_scorer(scorer)
    if len(queries_embeddings) != len(documents_embeddings):
        raise ValueError(
            "pairwise scoring needs as many documents as queries: "
            f"{len(queries_embeddings)} vs {len(documents_embeddings)}"
        )
    query_mask = _lengths_mask(queries_embeddings)
    document_mask = _lengths_mask(documents_embeddings)
    queries, documents, query_mask, document_mask = _prepare(
        queries_embeddings, documents_embeddings, query_mask, document_mask, lite
    )
    if queries.shape[0] == 0:
        return torch.zeros(0, device=queries.device, dtype=queries.dtype)
    return lite.score(queries, documents, query_mask, document_mask, pairing="aligned")


def _lengths_mask(items: ArrayLike) -> torch.Tensor | None:
    """For a list of unpadded items, the mask their lengths give (None for padded tensors)."""
    if isinstance(items, torch.Tensor) or (isinstance(items, np.ndarray) and items.dtype != object):
        return None
    lengths = [len(item) for item in items]
    longest = max(lengths, default=0)
    return torch.arange(longest)[None, :] < torch.tensor(lengths, dtype=torch.long)[:, None]


class LiteScores(nn.Module):
    """A LITE head as an ``nn.Module`` score metric for PyLate's losses (so the trainer optimizes it).

    ``mode="contrastive"`` mirrors ``ColBERTScores`` for ``losses.Contrastive``: queries
    ``[Bq, Lq, d]`` against stacked groups ``[Bd, N, Ld, d]`` -> ``[Bq, Bd * N]``, query-major
    (group ``j``'s ``k``-th document at column ``j * N + k``). ``mode="kd"`` mirrors
    ``colbert_kd_scores`` for ``losses.Distillation(normalize_scores=False)``: ``[B, N]``.

    Example::

        from pylate import losses
        metric = LiteScores(scorer, mode="kd")
        loss = losses.Distillation(model=colbert, score_metric=metric, normalize_scores=False)

    >>> import torch
    >>> from lite_plugins.core import SeparableLite
    >>> metric = LiteScores(SeparableLite(query_length=4, document_length=6))
    >>> metric(torch.rand(2, 4, 8), torch.rand(3, 2, 5, 8)).shape
    torch.Size([2, 6])
    """

    def __init__(self, scorer: Any, mode: Literal["contrastive", "kd"] = "contrastive") -> None:
        super().__init__()
        if mode not in ("contrastive", "kd"):
            raise ValueError(f"mode must be 'contrastive' or 'kd', got {mode!r}")
        self.scorer = resolve_scorer(scorer)
        self.mode = mode

    def forward(
        self,
        queries_embeddings: ArrayLike,
        documents_embeddings: ArrayLike,
        queries_mask: ArrayLike | None = None,
        documents_mask: ArrayLike | None = None,
        backend: str | None = None,
    ) -> torch.Tensor:
        """``backend`` is accepted for signature compatibility with PyLate and ignored."""
        if self.mode == "kd":
            return lite_kd_scores(
                queries_embeddings, documents_embeddings, queries_mask, documents_mask, scorer=self.scorer
            )
        documents = as_tensor(documents_embeddings, "documents_embeddings")
        if documents.dim() != 4:
            raise ValueError(
                "contrastive documents_embeddings must have shape "
                f"[n_groups, group_size, document_tokens, dim], got {tuple(documents.shape)}"
            )
        n_groups, group_size = documents.shape[:2]
        flat_mask = None
        if documents_mask is not None:
            flat_mask = torch.as_tensor(documents_mask).reshape(n_groups * group_size, -1)
        scores = lite_scores(
            queries_embeddings,
            documents.reshape(n_groups * group_size, *documents.shape[2:]),
            queries_mask,
            flat_mask,
            scorer=self.scorer,
        )
        return scores  # flattened group-major already: column j * N + k

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
