"""Token similarity matrices S = Q·Dᵀ and their masks, for the three pairings every adapter needs.

All helpers take padded token embeddings ``[..., tokens, dim]`` with boolean masks ``[..., tokens]``
(True = real token) and return ``(S, query_mask, document_mask)`` where the masks are shaped to
broadcast against ``S`` over its leading dimensions:

============  ======================  ======================  ==========================  ===========
pairing       queries                 documents               S                           scores
============  ======================  ======================  ==========================  ===========
``all``       ``[Nq, Lq, d]``         ``[Nd, Ld, d]``         ``[Nq, Nd, Lq, Ld]``        ``[Nq, Nd]``
``grouped``   ``[Nq, Lq, d]``         ``[Nq, G, Ld, d]``      ``[Nq, G, Lq, Ld]``         ``[Nq, G]``
``aligned``   ``[N, Lq, d]``          ``[N, Ld, d]``          ``[N, Lq, Ld]``             ``[N]``
============  ======================  ======================  ==========================  ===========

Masked positions of ``S`` are set to zero, so whatever the padding holds cannot reach a scorer.
"""

from __future__ import annotations

from typing import Literal

import torch

Pairing = Literal["all", "grouped", "aligned"]
PAIRINGS: tuple[str, ...] = ("all", "grouped", "aligned")


def mask_from_padding(embeddings: torch.Tensor) -> torch.Tensor:
    """Infer a token mask from zero padding: a token is real when its vector is not all zeros.

    PyLate pads without masks; this recovers them.

    >>> import torch
    >>> mask_from_padding(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])).tolist()
    [[True, False]]
    """
    return embeddings.ne(0).any(dim=-1)


def _default_mask(embeddings: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones(embeddings.shape[:-1], dtype=torch.bool, device=embeddings.device)
    if mask.shape != embeddings.shape[:-1]:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match embeddings {tuple(embeddings.shape)}: "
            f"expected {tuple(embeddings.shape[:-1])}"
        )
    return mask.to(device=embeddings.device, dtype=torch.bool)


def _check_rank(name: str, tensor: torch.Tensor, rank: int, layout: str) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(tensor).__name__}")
    if tensor.dim() != rank:
        raise ValueError(f"{name} must have shape {layout}, got {tuple(tensor.shape)}")


def _check_dims(queries: torch.Tensor, documents: torch.Tensor) -> None:
    if queries.shape[-1] != documents.shape[-1]:
        raise ValueError(
            f"query token dimension {queries.shape[-1]} != document token dimension {documents.shape[-1]}: "
            "both sides must come from the same encoder (and the same projection)"
        )


def similarity(
    queries: torch.Tensor,
    documents: torch.Tensor,
    query_mask: torch.Tensor | None = None,
    document_mask: torch.Tensor | None = None,
    pairing: Pairing = "all",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Build S for a pairing (see the module table) with masks that broadcast against it.

    >>> import torch
    >>> q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])             # 1 query, 2 tokens
    >>> d = torch.tensor([[[1.0, 0.0], [0.5, 0.5], [9.0, 9.0]]])  # 1 document, 3 tokens (last is padding)
    >>> S, qm, dm = similarity(q, d, document_mask=torch.tensor([[True, True, False]]))
    >>> S.tolist()
    [[[[1.0, 0.5, 0.0], [0.0, 0.5, 0.0]]]]
    """
    if pairing == "all":
        _check_rank("queries", queries, 3, "[n_queries, query_tokens, dim]")
        _check_rank("documents", documents, 3, "[n_documents, document_tokens, dim]")
        _check_dims(queries, documents)
        qm = _default_mask(queries, query_mask)
        dm = _default_mask(documents, document_mask)
        S = torch.einsum("qid,njd->qnij", queries, documents)
        qm_b, dm_b = qm[:, None, :], dm[None, :, :]
    elif pairing == "grouped":
        _check_rank("queries", queries, 3, "[n_queries, query_tokens, dim]")
        _check_rank("documents", documents, 4, "[n_queries, group_size, document_tokens, dim]")
        _check_dims(queries, documents)
        if queries.shape[0] != documents.shape[0]:
            raise ValueError(
                f"grouped pairing needs one document group per query: {queries.shape[0]} queries, "
                f"{documents.shape[0]} groups"
            )
        qm = _default_mask(queries, query_mask)
        dm = _default_mask(documents, document_mask)
        S = torch.einsum("qid,qnjd->qnij", queries, documents)
        qm_b, dm_b = qm[:, None, :], dm
    elif pairing == "aligned":
        _check_rank("queries", queries, 3, "[n_pairs, query_tokens, dim]")
        _check_rank("documents", documents, 3, "[n_pairs, document_tokens, dim]")
        _check_dims(queries, documents)
        if queries.shape[0] != documents.shape[0]:
            raise ValueError(
                f"aligned pairing needs as many documents as queries: {queries.shape[0]} vs {documents.shape[0]}"
            )
        qm = _default_mask(queries, query_mask)
        dm = _default_mask(documents, document_mask)
        S = torch.einsum("nid,njd->nij", queries, documents)
        qm_b, dm_b = qm, dm
    else:
        raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    S = apply_masks(S, qm_b, dm_b)
    return S, qm_b, dm_b


def apply_masks(S: torch.Tensor, query_mask: torch.Tensor, document_mask: torch.Tensor) -> torch.Tensor:
    """Zero every entry of S whose query row or document column is padding."""
    valid = query_mask[..., :, None] & document_mask[..., None, :]
    return S.masked_fill(~valid, 0)
