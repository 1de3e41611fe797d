"""The token-encoder interface every encoder implements (transformer and static alike)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

Side = Literal["query", "document"]
SIDES: tuple[str, ...] = ("query", "document")


@dataclass
class TokenEmbeddings:
    """Padded token vectors ``embeddings [B, L, d]`` with ``mask [B, L]`` (True = real token).

    Padding positions hold zeros, so PyLate-style consumers that infer masks from zero padding agree.
    """

    embeddings: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def __getitem__(self, index: int | slice | Sequence[int] | torch.Tensor) -> TokenEmbeddings:
        if isinstance(index, int):
            index = slice(index, index + 1)
        return TokenEmbeddings(self.embeddings[index], self.mask[index])

    def to(self, *args: Any, **kwargs: Any) -> TokenEmbeddings:
        """Move/cast the vectors (the mask stays boolean)."""
        embeddings = self.embeddings.to(*args, **kwargs)
        return TokenEmbeddings(embeddings, self.mask.to(embeddings.device))

    def compacted(self) -> TokenEmbeddings:
        """Move each item's real tokens to the front (order kept) and drop all-padding columns.

        Position-sensitive scorers must see tokens where an index stores them: PyLate drops
        skiplisted document tokens, so a mask with holes is compacted before scoring.

        >>> import torch
        >>> mask = torch.tensor([[True, False, True]])
        >>> batch = TokenEmbeddings(torch.tensor([[[1.0], [0.0], [3.0]]]), mask)
        >>> batch.compacted().embeddings.squeeze(-1).tolist()
        [[1.0, 3.0]]
        """
        order = torch.argsort((~self.mask).to(torch.int32), dim=-1, stable=True)
        mask = torch.gather(self.mask, 1, order)
        embeddings = torch.gather(self.embeddings, 1, order[..., None].expand_as(self.embeddings))
        width = int(mask.sum(dim=-1).max()) if mask.numel() else 0
        return TokenEmbeddings(embeddings[:, :width], mask[:, :width])

    def unpadded(self) -> list[torch.Tensor]:
        """One ``[n_tokens, d]`` tensor per item, padding removed (what an index stores)."""
        return [emb[mask] for emb, mask in zip(self.embeddings, self.mask)]

    @staticmethod
    def pad(vectors: Sequence[torch.Tensor], length: int | None = None, dim: int | None = None) -> TokenEmbeddings:
        """Stack variable-length ``[n_i, d]`` tensors into a padded batch.

        >>> import torch
        >>> batch = TokenEmbeddings.pad([torch.ones(2, 3), torch.ones(1, 3)])
        >>> batch.embeddings.shape, batch.mask.tolist()
        (torch.Size([2, 2, 3]), [[True, True], [True, False]])
        """
        if not vectors:
            return TokenEmbeddings(torch.zeros(0, length or 0, dim or 0), torch.zeros(0, length or 0, dtype=torch.bool))
        dims = {v.shape[-1] for v in vectors}
        if len(dims) != 1 or any(v.dim() != 2 for v in vectors):
            raise ValueError(
                f"every item must be [n_tokens, dim] with one dim, got shapes {[tuple(v.shape) for v in vectors][:5]}"
            )
        longest = max(v.shape[0] for v in vectors)
        length = max(longest, length or 0)
        first = vectors[0]
        embeddings = first.new_zeros(len(vectors), length, first.shape[-1])
        mask = torch.zeros(len(vectors), length, dtype=torch.bool, device=first.device)
        for i, v in enumerate(vectors):
            embeddings[i, : v.shape[0]] = v
            mask[i, : v.shape[0]] = True
        return TokenEmbeddings(embeddings, mask)

    @staticmethod
    def concatenate(parts: Sequence[TokenEmbeddings]) -> TokenEmbeddings:
        """Join batches of different padded lengths along the batch axis."""
        length = max(p.embeddings.shape[1] for p in parts)

        def widen(t: torch.Tensor) -> torch.Tensor:
            extra = length - t.shape[1]
            if not extra:
                return t
            pad = (0, 0, 0, extra) if t.dim() == 3 else (0, extra)
            return nn.functional.pad(t, pad)

        return TokenEmbeddings(
            torch.cat([widen(p.embeddings) for p in parts]), torch.cat([widen(p.mask) for p in parts])
        )


def check_texts(texts: Any, what: str = "texts") -> list[str]:
    """Accept a list/tuple of strings; reject anything else with a message that names the problem."""
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, got a single string; wrap it in a list")
    if not isinstance(texts, (list, tuple)):
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{i}] must be a string, got {type(text).__name__}: {text!r:.80}")
    return list(texts)


class TokenEncoder(nn.Module):
    """Encodes queries and documents into L2-normalized token vectors of fixed maximum lengths.

    Subclasses implement :meth:`tokenize` (texts -> features) and :meth:`forward` (features ->
    :class:`TokenEmbeddings`), :meth:`get_config`, :meth:`save_tokenizer` and :meth:`from_config`.
    Weights are saved by the owning :class:`~lite_plugins.core.model.LiteModel`'s state dict.
    """

    kind: ClassVar[str] = ""

    def __init__(self, query_length: int, document_length: int, normalize: bool = True) -> None:
        super().__init__()
        if query_length < 1 or document_length < 1:
            raise ValueError(f"query_length and document_length must be >= 1, got {query_length}, {document_length}")
        self.query_length = int(query_length)
        self.document_length = int(document_length)
        self.normalize = bool(normalize)

    # --- to implement -------------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str], side: Side) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, features: dict[str, torch.Tensor]) -> TokenEmbeddings:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "query_length": self.query_length,
            "document_length": self.document_length,
            "normalize": self.normalize,
        }

    def save_tokenizer(self, directory: str | Path) -> None:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: str | Path) -> TokenEncoder:
        """Rebuild the architecture (random weights) and tokenizer from a checkpoint folder."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------
    def max_length(self, side: Side) -> int:
        if side not in SIDES:
            raise ValueError(f"side must be 'query' or 'document', got {side!r}")
        return self.query_length if side == "query" else self.document_length

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _finish(self, token_vectors: torch.Tensor, mask: torch.Tensor) -> TokenEmbeddings:
        """Normalize (optionally) and zero the padding: the common tail of every forward."""
        if self.normalize:
            token_vectors = nn.functional.normalize(token_vectors, dim=-1)
        token_vectors = token_vectors * mask[..., None].to(token_vectors.dtype)
        return TokenEmbeddings(token_vectors, mask.bool())

    def encode(
        self,
        texts: Sequence[str],
        side: Side,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        output_device: str | torch.device | None = None,
    ) -> TokenEmbeddings:
        """Encode texts in batches (longest first, order restored) without gradients.

        Returns one padded batch; ``output_device="cpu"`` collects the batches off the accelerator.
        """
        texts = check_texts(texts, f"{side} texts")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not texts:
            empty = torch.zeros(0, 0, self.embedding_dim, dtype=self.dtype, device=output_device or self.device)
            return TokenEmbeddings(empty, torch.zeros(0, 0, dtype=torch.bool, device=empty.device))
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        parts: list[TokenEmbeddings] = []
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                starts = range(0, len(texts), batch_size)
                for start in tqdm(starts, desc=f"Encoding {side}s", disable=not show_progress_bar, unit="batch"):
                    batch = [texts[i] for i in order[start : start + batch_size]]
                    features = {k: v.to(self.device) for k, v in self.tokenize(batch, side).items()}
                    output = self(features)
                    parts.append(output.to(output_device) if output_device is not None else output)
        finally:
            self.train(was_training)
        joined = TokenEmbeddings.concatenate(parts)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return joined[inverse.to(joined.embeddings.device)]
