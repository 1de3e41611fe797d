"""Levers on the size of stored document token vectors.

Three independent levers, each measured in bytes per document (``benchmarks/storage.py``):

* a bias-free projection d -> d' inside the encoder (``projection_dim``, as PyLate's 128-d Dense);
* a document token budget k: :class:`TokenBudget` maps a document's n token vectors to at most k;
* fp16 storage (``storage_dtype``) of whatever vectors remain.

Token budget methods (a design choice the paper leaves open; we measure both):

* ``"pool"`` (default): split the document's n real tokens into k contiguous segments of near-equal
  size and average each, then re-normalize. Documents of n <= k tokens are kept unchanged. Every
  token still contributes, so long documents lose resolution rather than content.
* ``"truncate"``: keep the first k tokens (cheapest; drops the rest of long documents).

Both are parameter-free and deterministic, so stored vectors never go stale when a head is retrained.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

BudgetMethod = Literal["pool", "truncate"]
BUDGET_METHODS: tuple[str, ...] = ("pool", "truncate")


class TokenBudget(nn.Module):
    """Reduce padded document token vectors ``[B, L, d]`` (mask ``[B, L]``) to ``[B, k, d]``.

    >>> import torch
    >>> budget = TokenBudget(2, method="pool", normalize=False)
    >>> emb = torch.tensor([[[1.0], [3.0], [5.0], [7.0]]])
    >>> out, mask = budget(emb, torch.ones(1, 4, dtype=torch.bool))
    >>> out.squeeze(-1).tolist(), mask.tolist()
    ([[2.0, 6.0]], [[True, True]])
    """

    def __init__(self, tokens: int, method: BudgetMethod = "pool", normalize: bool = True) -> None:
        super().__init__()
        if tokens < 1:
            raise ValueError(f"a token budget must keep at least 1 token, got {tokens}")
        if method not in BUDGET_METHODS:
            raise ValueError(f"token budget method must be one of {BUDGET_METHODS}, got {method!r}")
        self.tokens = int(tokens)
        self.method = method
        self.normalize = bool(normalize)

    def get_config(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "method": self.method, "normalize": self.normalize}

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.tokens
        batch, _, dim = embeddings.shape
        mask = mask.bool()
        position = mask.long().cumsum(dim=-1) - 1  # rank of each real token within its document
        n_real = mask.sum(dim=-1, keepdim=True)
        if self.method == "pool":
            segment = torch.where(n_real > k, position * k // n_real.clamp_min(1), position)
            keep = mask
        else:
            segment = position
            keep = mask & (position < k)
        segment = segment.clamp(0, k - 1).masked_fill(~keep, 0)
        weights = keep.to(embeddings.dtype)
        pooled = embeddings.new_zeros(batch, k, dim).scatter_add_(
            1, segment[..., None].expand(-1, -1, dim), embeddings * weights[..., None]
        )
        counts = embeddings.new_zeros(batch, k).scatter_add_(1, segment, weights)
        pooled = pooled / counts.clamp_min(1)[..., None]
        if self.normalize and self.method == "pool":
            pooled = nn.functional.normalize(pooled, dim=-1)
        return pooled, counts > 0


def bytes_per_document(stored_tokens: float, dim: int, dtype: torch.dtype = torch.float16) -> float:
    """Bytes to store one document's token vectors (plus an 8-byte offset, as LiteIndex stores).

    >>> bytes_per_document(50, 128, torch.float16)
    12808.0
    """
    element_size = torch.empty((), dtype=dtype).element_size()
    return float(stored_tokens) * dim * element_size + 8.0
