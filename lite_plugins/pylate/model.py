"""A PyLate ColBERT plus a LITE scorer: one folder, and a conversion to the core LITE checkpoint.

The scorer is kept outside the ColBERT module list (PyLate turns extra modules into Dense layers and
drops them on load) and saved beside it in ``lite_scorer/``. :meth:`LiteColBERT.to_lite_model` maps
the ColBERT encoder onto the core :class:`~lite_plugins.core.TransformerTokenEncoder` (prefix tokens as
markers, the Dense layer as the projection, [MASK] query expansion, the document skiplist), so the
converted checkpoint gives the same scores and loads everywhere a LITE checkpoint does.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pylate import models
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lite_plugins.core import (
    CheckpointError,
    LiteModel,
    LiteScorer,
    TokenEmbeddings,
    TransformerTokenEncoder,
    atomic_directory,
    build_scorer,
)
from lite_plugins.pylate.scores import lite_scores

logger = logging.getLogger(__name__)

SCORER_FOLDER = "lite_scorer"
SCORER_CONFIG = "config.json"
SCORER_WEIGHTS = "model.safetensors"


class LiteColBERT(nn.Module):
    """A ``pylate.models.ColBERT`` encoder with a LITE scorer in place of MaxSim.

    Index documents with ``model.colbert.encode(..., is_query=False)`` as usual; then
    :func:`lite_plugins.pylate.rerank` and :class:`~lite_plugins.pylate.LiteRetriever` score with
    ``model.scorer``. Example (offline, a local ColBERT or encoder folder)::

        model = LiteColBERT.from_colbert("path/to/colbert", scorer="separable", seed=0)
        model.score("a query", ["a passage", "another passage"])
        model.save_pretrained("colbert-lite")          # ColBERT files + lite_scorer/
        LiteColBERT.from_pretrained("colbert-lite")
        model.export_lite_checkpoint("colbert-lite-core")  # core LITE checkpoint, same scores
    """

    def __init__(self, colbert: models.ColBERT, scorer: LiteScorer) -> None:
        super().__init__()
        if not isinstance(colbert, models.ColBERT):
            raise TypeError(f"colbert must be a pylate.models.ColBERT, got {type(colbert).__name__}")
        if not isinstance(scorer, LiteScorer):
            raise TypeError(f"scorer must be a lite_plugins LiteScorer, got {type(scorer).__name__}")
        if scorer.fixed_lengths and (
            scorer.query_length < colbert.query_length or scorer.document_length < colbert.document_length
        ):
            raise ValueError(
                f"scorer takes {scorer.query_length} x {scorer.document_length} tokens but the ColBERT "
                f"yields up to {colbert.query_length} x {colbert.document_length}; build a larger scorer"
            )
        self.colbert = colbert
        self.scorer = scorer

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_colbert(
        cls,
        colbert: str | Path | models.ColBERT,
        scorer: str | dict[str, Any] | LiteScorer = "separable",
        seed: int | None = None,
        device: str | None = None,
        **scorer_kwargs: Any,
    ) -> LiteColBERT:
        """A fresh LITE head sized to the ColBERT's query and document lengths.

        ``colbert`` may be a loaded model or a path/Hub id given to ``pylate.models.ColBERT``.
        """
        if seed is not None:
            torch.manual_seed(seed)
        if not isinstance(colbert, models.ColBERT):
            colbert = models.ColBERT(model_name_or_path=str(colbert), device=device or "cpu")
        if not isinstance(scorer, LiteScorer):
            base = {"type": scorer} if isinstance(scorer, str) else dict(scorer)
            defaults: dict[str, Any] = {
                "query_length": colbert.query_length,
                "document_length": colbert.document_length,
            }
            if base.get("type") == "mean_mlp":
                defaults["embedding_dim"] = _dense(colbert).out_features
            scorer = build_scorer({**defaults, **base, **scorer_kwargs})
        return cls(colbert, scorer.to(colbert.device))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None) -> LiteColBERT:
        """Load a folder written by :meth:`save_pretrained` (ColBERT files + ``lite_scorer/``)."""
        path = Path(path)
        scorer_dir = path / SCORER_FOLDER
        if not (scorer_dir / SCORER_CONFIG).is_file():
            raise CheckpointError(
                f"{path} has no {SCORER_FOLDER}/{SCORER_CONFIG}: it is not a LiteColBERT folder "
                "(start one with LiteColBERT.from_colbert)"
            )
        config = json.loads((scorer_dir / SCORER_CONFIG).read_text(encoding="utf-8"))
        scorer = build_scorer(config["scorer"])
        try:
            scorer.load_state_dict(load_file(str(scorer_dir / SCORER_WEIGHTS)), strict=True)
        except (OSError, RuntimeError, SafetensorError) as error:
            raise CheckpointError(f"{scorer_dir}: cannot load the scorer weights: {error}") from error
        colbert = models.ColBERT(model_name_or_path=str(path), device=device or "cpu")
        model = cls(colbert, scorer.to(colbert.device))
        return model.eval()

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the ColBERT (PyLate's own format) with the scorer in ``lite_scorer/``, atomically."""
        with atomic_directory(path) as temporary:
            self.colbert.save(str(temporary))
            scorer_dir = temporary / SCORER_FOLDER
            scorer_dir.mkdir()
            config = {"scorer": self.scorer.get_config(), "format": "lite_plugins.pylate", "version": 1}
            (scorer_dir / SCORER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            state = {k: v.detach().contiguous().cpu() for k, v in self.scorer.state_dict().items()}
            save_file(state, str(scorer_dir / SCORER_WEIGHTS), metadata={"format": "pt"})
        return Path(path)

    # --- conversion ---------------------------------------------------------------------------
    def to_lite_model(self) -> LiteModel:
        """The same model as a core :class:`LiteModel` (copied weights), scoring identically.

        Raises ValueError for ColBERT layouts the core encoder cannot express (several Dense
        layers, a bias or activation in the projection, a prefix that is not one token).
        """
        colbert = self.colbert
        dense = _dense(colbert)
        transformer = colbert[0]
        tokenizer = copy.deepcopy(colbert.tokenizer)
        encoder = TransformerTokenEncoder(
            copy.deepcopy(transformer.auto_model),
            tokenizer,
            query_length=colbert.query_length,
            document_length=colbert.document_length,
            query_marker=colbert.query_prefix,
            document_marker=colbert.document_prefix,
            projection_dim=dense.out_features,
            normalize=True,
            query_expansion=colbert.do_query_expansion,
            attend_to_expansion_tokens=colbert.attend_to_expansion_tokens,
            document_skiplist=[i for i in colbert.skiplist if i is not None],
        )
        for side, prefix_id in (("query", colbert.query_prefix_id), ("document", colbert.document_prefix_id)):
            expected = [] if prefix_id is None else [int(prefix_id)]
            if encoder.marker_ids[side] != expected:
                raise ValueError(
                    f"the {side} prefix {getattr(colbert, side + '_prefix')!r} tokenizes to "
                    f"{encoder.marker_ids[side]} but PyLate inserts {expected}; the core encoder cannot "
                    "reproduce this prefix"
                )
        assert encoder.projection is not None
        with torch.no_grad():
            encoder.projection.weight.copy_(dense.linear.weight)
        extra = {"pylate": {"converted_from": "pylate.models.ColBERT", "similarity_fn_name": "LITE"}}
        model = LiteModel(encoder, copy.deepcopy(self.scorer), extra_config=extra)
        return model.to(self.device).eval()

    def export_lite_checkpoint(self, path: str | Path) -> Path:
        """Save :meth:`to_lite_model` as a core LITE checkpoint (``LiteModel.from_pretrained`` loads it)."""
        return self.to_lite_model().save_pretrained(path)

    # --- encoding and scoring -----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.colbert.device

    def encode_queries(self, queries: Sequence[str], batch_size: int = 32, **kwargs: Any) -> list[torch.Tensor]:
        """PyLate's query vectors (one ``[query_length, d]`` tensor each)."""
        return self._encode(queries, True, batch_size, **kwargs)

    def encode_documents(self, documents: Sequence[str], batch_size: int = 32, **kwargs: Any) -> list[torch.Tensor]:
        """PyLate's document vectors (one ``[n_tokens, d]`` tensor each): exactly what its indexes store."""
        return self._encode(documents, False, batch_size, **kwargs)

    def _encode(self, texts: Sequence[str], is_query: bool, batch_size: int, **kwargs: Any) -> list[torch.Tensor]:
        from lite_plugins.core.encoders import check_texts

        texts = check_texts(texts, "queries" if is_query else "documents")
        if not texts:
            return []
        kwargs.setdefault("show_progress_bar", False)
        return list(
            self.colbert.encode(texts, is_query=is_query, batch_size=batch_size, convert_to_numpy=False, **kwargs)
        )

    @torch.no_grad()
    def score(self, query: str, documents: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """LITE scores ``[len(documents)]`` of one query against candidate texts."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        documents_vectors = self.encode_documents(documents, batch_size=batch_size)
        if not documents_vectors:
            return torch.zeros(0)
        queries = TokenEmbeddings.pad(self.encode_queries([query]))
        docs = TokenEmbeddings.pad(documents_vectors)
        return (
            lite_scores(queries.embeddings, docs.embeddings, queries.mask, docs.mask, scorer=self.scorer)[0]
            .float()
            .cpu()
        )


def _dense(colbert: models.ColBERT) -> nn.Module:
    """The ColBERT's single bias-free linear projection, or a ValueError naming what differs."""
    from pylate.models import Dense

    extra = list(colbert)[1:]
    if len(extra) != 1 or not isinstance(extra[0], Dense):
        layers = [type(m).__name__ for m in colbert]
        raise ValueError(f"expected a ColBERT of a Transformer and one Dense layer, got {layers}")
    dense = extra[0]
    if dense.linear.bias is not None or not isinstance(dense.activation_function, nn.Identity) or dense.use_residual:
        raise ValueError(
            "the ColBERT Dense layer has a bias, an activation or a residual; the core projection has none"
        )
    return dense
