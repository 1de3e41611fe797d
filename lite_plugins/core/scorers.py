"""Late-interaction scorers: the learned LITE heads and the baselines they are compared with.

Every scorer is an ``nn.Module`` with one public scoring signature, shared by all adapters::

    scorer.score(queries, documents, query_mask, document_mask, pairing="all") -> scores

Scorers built on the similarity matrix (all but :class:`MeanMLP`) also take S directly::

    scorer(S, query_mask, document_mask) -> scores      # S: [..., query_tokens, document_tokens]

which is what a PLAID index (that hands back S, not token vectors) feeds them.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from lite_plugins.core.similarity import Pairing, similarity

#: Paper sizes (Ji et al., 2024): L1=30, L2=200, row hidden 2400, column hidden 360, i.e. 12x the length.
HIDDEN_PER_TOKEN = 12


def _two_layer_block(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    """LN(ReLU(W2 · LN(ReLU(W1 · x + b1)) + b2)), the paper's row/column step."""
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.LayerNorm(hidden),
        nn.Linear(hidden, out_features),
        nn.ReLU(),
        nn.LayerNorm(out_features),
    )


def maxsim_sum(S: torch.Tensor, query_mask: torch.Tensor, document_mask: torch.Tensor) -> torch.Tensor:
    """Σ_i max_j S_ij over real tokens: padded columns are never the maximum, padded rows add 0,
    and a document without tokens adds 0 per query token."""
    neg_inf = torch.finfo(S.dtype).min
    best = S.masked_fill(~document_mask[..., None, :], neg_inf).amax(dim=-1)
    has_document_token = document_mask.any(dim=-1, keepdim=True)
    best = torch.where(query_mask & has_document_token, best, torch.zeros((), dtype=S.dtype, device=S.device))
    return best.sum(dim=-1)


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or Inf values; check the encoder output or the stored vectors")


class LiteScorer(nn.Module):
    """Base class: a scorer with fixed query and document lengths (the widths of its MLPs)."""

    kind: ClassVar[str] = ""
    #: False for scorers that need token vectors rather than S (they cannot score PLAID hits).
    uses_similarity: ClassVar[bool] = True
    #: True when the weights depend on the lengths, so S is zero-padded to exactly those lengths.
    fixed_lengths: ClassVar[bool] = True

    def __init__(self, query_length: int, document_length: int) -> None:
        super().__init__()
        if query_length < 1 or document_length < 1:
            raise ValueError(f"query_length and document_length must be >= 1, got {query_length}, {document_length}")
        self.query_length = int(query_length)
        self.document_length = int(document_length)

    # --- configuration -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "query_length": self.query_length, "document_length": self.document_length}

    @property
    def parameter_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # --- scoring ------------------------------------------------------------------------------
    def score(
        self,
        queries: torch.Tensor,
        documents: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        document_mask: torch.Tensor | None = None,
        pairing: Pairing = "all",
    ) -> torch.Tensor:
        """Score padded token embeddings; shapes per pairing are in :mod:`lite_plugins.core.similarity`."""
        S, qm, dm = similarity(queries, documents, query_mask, document_mask, pairing)
        return self(S, qm, dm)

    def forward(
        self,
        S: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        document_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        S, query_mask, document_mask = self._fit_to_lengths(S, query_mask, document_mask)
        return self._score_similarity(S, query_mask, document_mask)

    def _score_similarity(self, S: torch.Tensor, query_mask: torch.Tensor, document_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _fit_to_lengths(
        self, S: torch.Tensor, query_mask: torch.Tensor | None, document_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Zero the padding and pad S with zeros to [..., query_length, document_length]."""
        if not isinstance(S, torch.Tensor) or S.dim() < 2:
            raise ValueError(
                f"S must be a tensor of shape [..., query_tokens, document_tokens], got {getattr(S, 'shape', S)}"
            )
        _check_finite("S", S)
        n_q, n_d = S.shape[-2], S.shape[-1]
        if self.fixed_lengths and (n_q > self.query_length or n_d > self.document_length):
            raise ValueError(
                f"S has {n_q} query x {n_d} document tokens but this {type(self).__name__} takes at most "
                f"{self.query_length} x {self.document_length}; encode with query_length<={self.query_length} "
                f"and document_length<={self.document_length} (the encoders truncate to their lengths)"
            )
        lead = S.shape[:-2]
        if query_mask is None:
            query_mask = torch.ones((*lead, n_q), dtype=torch.bool, device=S.device)
        if document_mask is None:
            document_mask = torch.ones((*lead, n_d), dtype=torch.bool, device=S.device)
        if query_mask.shape[-1] != n_q or document_mask.shape[-1] != n_d:
            raise ValueError(
                f"masks must end in {n_q} (query) and {n_d} (document) tokens to match S {tuple(S.shape)}, "
                f"got {tuple(query_mask.shape)} and {tuple(document_mask.shape)}"
            )
        query_mask, document_mask = query_mask.bool(), document_mask.bool()
        valid = query_mask[..., :, None] & document_mask[..., None, :]
        S = S.to(self.parameter_dtype).masked_fill(~valid, 0)
        pad_q, pad_d = self.query_length - n_q, self.document_length - n_d
        if self.fixed_lengths and (pad_q or pad_d):
            S = nn.functional.pad(S, (0, pad_d, 0, pad_q))
            query_mask = nn.functional.pad(query_mask, (0, pad_q), value=False)
            document_mask = nn.functional.pad(document_mask, (0, pad_d), value=False)
        return S, query_mask, document_mask


class SeparableLite(LiteScorer):
    """Separable LITE (the paper's main model).

    A row MLP shared by all query rows maps each row of S over the document axis, a column MLP
    shared by all columns maps the result over the query axis, and a linear map gives the score.
    Rows of padded query tokens are zeroed after the row step, so padding never changes a score.

    >>> import torch
    >>> scorer = SeparableLite(query_length=4, document_length=6)
    >>> scorer(torch.rand(2, 3, 5)).shape          # 2 pairs, 3 query x 5 document tokens
    torch.Size([2])
    """

    kind = "separable"

    def __init__(
        self,
        query_length: int = 32,
        document_length: int = 180,
        row_hidden: int | None = None,
        column_hidden: int | None = None,
        maxsim_residual: bool = False,
    ) -> None:
        super().__init__(query_length, document_length)
        self.row_hidden = int(row_hidden or HIDDEN_PER_TOKEN * self.document_length)
        self.column_hidden = int(column_hidden or HIDDEN_PER_TOKEN * self.query_length)
        self.row_mlp = _two_layer_block(self.document_length, self.row_hidden, self.document_length)
        self.column_mlp = _two_layer_block(self.query_length, self.column_hidden, self.query_length)
        self.output = nn.Linear(self.query_length * self.document_length, 1)
        self.maxsim_residual = bool(maxsim_residual)
        if self.maxsim_residual:
            # Our extension (not in the paper): score = LITE(S) + a·MaxSim(S). The LITE output starts at
            # zero, so an untrained head ranks exactly as MaxSim and training learns a correction to it.
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)
            self.maxsim_scale = nn.Parameter(torch.tensor(1.0))

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "row_hidden": self.row_hidden, "column_hidden": self.column_hidden}
        return {**config, "maxsim_residual": True} if self.maxsim_residual else config

    def _score_similarity(self, S: torch.Tensor, query_mask: torch.Tensor, document_mask: torch.Tensor) -> torch.Tensor:
        rows = self.row_mlp(S) * query_mask[..., :, None].to(S.dtype)  # [..., L1, L2]
        columns = self.column_mlp(rows.transpose(-1, -2))  # [..., L2, L1]
        scores = self.output(columns.flatten(-2)).squeeze(-1)
        if self.maxsim_residual:
            scores = scores + self.maxsim_scale * maxsim_sum(S, query_mask, document_mask)
        return scores


class FlattenedLite(LiteScorer):
    """Flattened LITE: an MLP over vec(S) (a less structured head, kept for comparison).

    >>> import torch
    >>> FlattenedLite(query_length=4, document_length=6, hidden_sizes=(8,))(torch.rand(3, 4, 6)).shape
    torch.Size([3])
    """

    kind = "flattened"

    def __init__(
        self,
        query_length: int = 32,
        document_length: int = 180,
        hidden_sizes: tuple[int, ...] | list[int] = (512, 128),
    ) -> None:
        super().__init__(query_length, document_length)
        if not hidden_sizes:
            raise ValueError("hidden_sizes needs at least one layer size")
        self.hidden_sizes = [int(h) for h in hidden_sizes]
        layers: list[nn.Module] = []
        width = self.query_length * self.document_length
        for hidden in self.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.LayerNorm(hidden)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "hidden_sizes": self.hidden_sizes}

    def _score_similarity(self, S: torch.Tensor, query_mask: torch.Tensor, document_mask: torch.Tensor) -> torch.Tensor:
        return self.mlp(S.flatten(-2)).squeeze(-1)


class MaxSim(LiteScorer):
    """ColBERT's MaxSim with a learnable scale and bias: the fair baseline for a trained LITE.

    ``scale * Σ_i max_j S_ij + bias`` over real tokens; with scale 1 and bias 0 it is ColBERT MaxSim.
    It has no length-dependent weights, so S of any size is scored as it is.

    >>> import torch
    >>> S = torch.tensor([[[0.2, 0.9], [0.4, 0.1]]])
    >>> MaxSim()(S).tolist()   # 0.9 + 0.4
    [1.2999999523162842]
    """

    kind = "maxsim"
    fixed_lengths = False

    def __init__(
        self, query_length: int = 32, document_length: int = 180, scale: float = 1.0, bias: float = 0.0
    ) -> None:
        super().__init__(query_length, document_length)
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(
        self,
        S: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        document_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        S, query_mask, document_mask = self._fit_to_lengths(S, query_mask, document_mask)
        return self.scale * maxsim_sum(S, query_mask, document_mask) + self.bias


class MeanMLP(LiteScorer):
    """MLP(concat(mean_Q, mean_D)): the Model2Vec maintainers' cheaper alternative to LITE.

    It needs the token vectors themselves, so it overrides :meth:`score` and cannot score S alone.

    >>> import torch
    >>> scorer = MeanMLP(embedding_dim=8, hidden_size=16)
    >>> scorer.score(torch.rand(2, 3, 8), torch.rand(5, 4, 8)).shape
    torch.Size([2, 5])
    """

    kind = "mean_mlp"
    uses_similarity = False

    def __init__(
        self, embedding_dim: int, hidden_size: int = 256, query_length: int = 32, document_length: int = 180
    ) -> None:
        super().__init__(query_length, document_length)
        self.embedding_dim = int(embedding_dim)
        self.hidden_size = int(hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(2 * self.embedding_dim, self.hidden_size),
            nn.ReLU(),
            nn.LayerNorm(self.hidden_size),
            nn.Linear(self.hidden_size, 1),
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "hidden_size": self.hidden_size}

    @staticmethod
    def _masked_mean(embeddings: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return embeddings.mean(dim=-2)
        if mask.shape != embeddings.shape[:-1]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match embeddings {tuple(embeddings.shape)}")
        weights = mask.to(embeddings.dtype)[..., None]
        return (embeddings * weights).sum(dim=-2) / weights.sum(dim=-2).clamp_min(1.0)

    def score(
        self,
        queries: torch.Tensor,
        documents: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        document_mask: torch.Tensor | None = None,
        pairing: Pairing = "all",
    ) -> torch.Tensor:
        # Validate shapes and pairing exactly as the S-based scorers do (S itself is cheap and unused).
        similarity(queries, documents, query_mask, document_mask, pairing)
        if queries.shape[-1] != self.embedding_dim:
            raise ValueError(f"MeanMLP was built for {self.embedding_dim}-d token vectors, got {queries.shape[-1]}-d")
        dtype = self.parameter_dtype
        q = self._masked_mean(queries.to(dtype), query_mask)
        d = self._masked_mean(documents.to(dtype), document_mask)
        _check_finite("token embeddings", q)
        _check_finite("token embeddings", d)
        if pairing == "all":
            q, d = torch.broadcast_tensors(q[:, None, :], d[None, :, :])
        elif pairing == "grouped":
            q = q[:, None, :].expand_as(d)
        return self.mlp(torch.cat([q, d], dim=-1)).squeeze(-1)

    def forward(
        self,
        S: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        document_mask: torch.Tensor | None = None,
    ):
        raise TypeError(
            "MeanMLP scores mean token vectors, not a similarity matrix: call "
            "scorer.score(queries, documents, query_mask, document_mask, pairing=...)"
        )


SCORERS: dict[str, type[LiteScorer]] = {cls.kind: cls for cls in (SeparableLite, FlattenedLite, MaxSim, MeanMLP)}


def build_scorer(config: dict[str, Any] | str, **overrides: Any) -> LiteScorer:
    """Build a scorer from its config dict (as saved in checkpoints) or from its type name.

    >>> build_scorer("maxsim", query_length=8, document_length=16).get_config()
    {'type': 'maxsim', 'query_length': 8, 'document_length': 16}
    """
    config = {"type": config} if isinstance(config, str) else dict(config)
    config.update(overrides)
    kind = config.pop("type", None)
    if kind not in SCORERS:
        raise ValueError(f"unknown scorer type {kind!r}; expected one of {sorted(SCORERS)}")
    try:
        return SCORERS[kind](**config)
    except TypeError as error:
        raise ValueError(f"invalid settings for scorer {kind!r}: {error}") from None


def count_parameters(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
