"""A token encoder over any Hugging Face encoder model (BERT, RoBERTa, ModernBERT, ...), ColBERT style."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lite_plugins.core.encoders.base import Side, TokenEmbeddings, TokenEncoder, check_texts

logger = logging.getLogger(__name__)


class TransformerTokenEncoder(TokenEncoder):
    """Token vectors from a transformers encoder, with ColBERT-style query/document markers.

    Each text becomes ``[CLS] marker text [SEP]`` (the tokenizer's own special tokens), cut to
    ``query_length`` / ``document_length`` tokens including specials and marker. Markers and lengths
    are configurable; an optional bias-free projection maps the hidden size d to ``projection_dim``.

    The input is assembled from token ids (:meth:`build_features`) so that a model that receives an
    already tokenized ``(query, document)`` pair (as a sentence-transformers CrossEncoder sends) can
    rebuild exactly the same inputs.
    """

    kind = "transformer"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        query_length: int = 32,
        document_length: int = 180,
        query_marker: str = "[Q]",
        document_marker: str = "[D]",
        projection_dim: int | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(query_length, document_length, normalize)
        self.model = model
        self.tokenizer = tokenizer
        self.query_marker = query_marker
        self.document_marker = document_marker
        hidden_size = int(model.config.hidden_size)
        self.projection_dim = int(projection_dim) if projection_dim else None
        self.projection = nn.Linear(hidden_size, self.projection_dim, bias=False) if self.projection_dim else None
        self.marker_ids = {
            "query": self._ids(query_marker),
            "document": self._ids(document_marker),
        }
        self.prefix_ids, self.suffix_ids = self._special_token_frame()
        self.num_special_tokens = len(self.prefix_ids) + len(self.suffix_ids)
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_token_id = int(pad_id)
        for side in ("query", "document"):
            room = self.text_budget(side)  # type: ignore[arg-type]
            if room < 1:
                raise ValueError(
                    f"{side}_length={self.max_length(side)} leaves no room for text after "  # type: ignore[arg-type]
                    f"{self.num_special_tokens} special tokens and the {side} marker"
                )

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | Path,
        query_length: int = 32,
        document_length: int = 180,
        query_marker: str = "[Q]",
        document_marker: str = "[D]",
        projection_dim: int | None = None,
        normalize: bool = True,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **model_kwargs: Any,
    ) -> TransformerTokenEncoder:
        """Load a Hugging Face encoder by Hub id or local path (e.g. the offline MiniLM folder)."""
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_name_or_path))
        model = AutoModel.from_pretrained(str(model_name_or_path), **model_kwargs)
        encoder = cls(
            model, tokenizer, query_length, document_length, query_marker, document_marker, projection_dim, normalize
        )
        return encoder.to(device=device, dtype=dtype) if (device or dtype) else encoder

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "query_marker": self.query_marker,
            "document_marker": self.document_marker,
            "projection_dim": self.projection_dim,
            "model_config": self.model.config.to_dict(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: str | Path) -> TransformerTokenEncoder:
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        model_config = dict(config["model_config"])
        model_type = model_config.pop("model_type")
        hf_config = AutoConfig.for_model(model_type, **model_config)
        model = AutoModel.from_config(hf_config)
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        return cls(
            model,
            tokenizer,
            query_length=config["query_length"],
            document_length=config["document_length"],
            query_marker=config.get("query_marker", "[Q]"),
            document_marker=config.get("document_marker", "[D]"),
            projection_dim=config.get("projection_dim"),
            normalize=config.get("normalize", True),
        )

    def save_tokenizer(self, directory: str | Path) -> None:
        self.tokenizer.save_pretrained(str(directory))

    # --- tokenization -------------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return self.projection_dim or int(self.model.config.hidden_size)

    def _special_token_frame(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts before and after one sequence ([CLS] ... [SEP], <s> ... </s>).

        Read off a probe, since transformers 5 tokenizers no longer expose build_inputs_with_special_tokens.
        """
        with_specials = list(self.tokenizer("probe", add_special_tokens=True)["input_ids"])
        bare = self._ids("probe")
        for start in range(len(with_specials) - len(bare) + 1):
            if with_specials[start : start + len(bare)] == bare:
                return with_specials[:start], with_specials[start + len(bare) :]
        raise ValueError("cannot locate the text inside the tokenizer's special-token template")

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def text_budget(self, side: Side) -> int:
        """How many text tokens fit once special tokens and the marker are added."""
        return self.max_length(side) - self.num_special_tokens - len(self.marker_ids[side])

    def build_features(self, text_ids: Sequence[Sequence[int]], side: Side) -> dict[str, torch.Tensor]:
        """Assemble ``[CLS] marker ids [SEP]`` from raw text token ids (truncating) and pad the batch."""
        budget = self.text_budget(side)
        marker = self.marker_ids[side]
        sequences = [self.prefix_ids + marker + list(ids[:budget]) + self.suffix_ids for ids in text_ids]
        longest = max((len(s) for s in sequences), default=0)
        input_ids = torch.full((len(sequences), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        for i, sequence in enumerate(sequences):
            input_ids[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            attention_mask[i, : len(sequence)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def tokenize(self, texts: Sequence[str], side: Side) -> dict[str, torch.Tensor]:
        texts = check_texts(texts, f"{side} texts")
        budget = self.text_budget(side)
        # Truncating here keeps over-long texts cheap; build_features cuts to the exact budget.
        text_ids = self.tokenizer(
            list(texts), add_special_tokens=False, truncation=True, max_length=budget
        )["input_ids"] if texts else []
        return self.build_features(text_ids, side)

    # --- encoding -----------------------------------------------------------------------------
    def forward(self, features: dict[str, torch.Tensor]) -> TokenEmbeddings:
        attention_mask = features["attention_mask"]
        inputs = {"input_ids": features["input_ids"], "attention_mask": attention_mask}
        hidden = self.model(**inputs).last_hidden_state
        if self.projection is not None:
            hidden = self.projection(hidden)
        return self._finish(hidden, attention_mask.bool())
