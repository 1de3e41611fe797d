"""A static token encoder: one learned vector per vocabulary token, no context (Model2Vec style).

The encoder is an ``nn.Embedding`` plus a Hugging Face ``tokenizers`` tokenizer, so it needs neither
model2vec nor a transformer at inference time: building S from it costs a table lookup, and a LITE
model over it runs comfortably on a CPU. :mod:`lite_plugins.model2vec` builds one from a Model2Vec
``StaticModel``; this module imports nothing of model2vec.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from lite_plugins.core.encoders.base import Side, TokenEmbeddings, TokenEncoder, check_texts

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
#: The tokenizer cuts texts at this many tokens per token of budget, before unknown tokens are dropped,
#: so that a huge text stays cheap to tokenize while a text full of unknown tokens still fills its budget.
TRUNCATION_SLACK = 4


def unknown_token_id(tokenizer: Tokenizer) -> int | None:
    """The id of the tokenizer's unknown token (WordPiece, BPE, WordLevel or Unigram), or None."""
    model = tokenizer.model
    if hasattr(model, "unk_token"):
        token = model.unk_token
        return None if token is None else tokenizer.token_to_id(token)
    return json.loads(tokenizer.to_str())["model"].get("unk_id")


def pad_token_id(tokenizer: Tokenizer) -> int:
    """The tokenizer's padding id (padding positions are masked, so any valid id would do)."""
    if tokenizer.padding is not None:
        return int(tokenizer.padding["pad_id"])
    for token in ("[PAD]", "<pad>"):
        if tokenizer.token_to_id(token) is not None:
            return int(tokenizer.token_to_id(token))
    return 0


def add_pair_template(tokenizer: Tokenizer, vectors: torch.Tensor) -> torch.Tensor:
    """Give a template-less tokenizer BERT's ``[CLS] a [SEP] b [SEP]`` pair template (token type ids 0/1).

    Model2Vec tokenizers drop [CLS]/[SEP], so a transformers tokenizer loaded from the checkpoint (as a
    sentence-transformers CrossEncoder does) would glue query and document together; with the template
    the pair can be split again. Missing frame tokens are added with zero vectors, which texts never
    reach (this encoder tokenizes without special tokens and drops them from raw ids).
    """
    from tokenizers import AddedToken, processors

    vocab = tokenizer.get_vocab(with_added_tokens=True)
    names = {"[CLS]": "<s>", "[SEP]": "</s>"}
    frame = {}
    for bert_name, roberta_name in names.items():
        name = bert_name if bert_name in vocab or roberta_name not in vocab else roberta_name
        if name not in vocab:
            tokenizer.add_special_tokens([AddedToken(name, special=True, normalized=False)])
        frame[bert_name] = (name, int(tokenizer.token_to_id(name)))
    (cls_name, cls_id), (sep_name, sep_id) = frame["[CLS]"], frame["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls_name} $A {sep_name}",
        pair=f"{cls_name} $A {sep_name} $B:1 {sep_name}:1",
        special_tokens=[(cls_name, cls_id), (sep_name, sep_id)],
    )
    rows = max(tokenizer.get_vocab(with_added_tokens=True).values()) + 1
    if rows > vectors.shape[0]:
        vectors = torch.cat([vectors, vectors.new_zeros(rows - vectors.shape[0], vectors.shape[1])])
    return vectors


def _plain_copy(tokenizer: Tokenizer) -> Tokenizer:
    """A copy without padding or truncation: this encoder pads and cuts itself."""
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    copy.no_truncation()
    return copy


class StaticTokenEncoder(TokenEncoder):
    """Per-token static vectors (not pooled) from an embedding matrix that can be fine-tuned or frozen.

    A text becomes ``[marker ids] + text ids`` without special tokens (as Model2Vec encodes), unknown
    tokens dropped (as Model2Vec does), cut to ``query_length`` / ``document_length`` tokens. Markers
    are off by default: a static marker vector adds the same row to every query's S.

    ``backend_tokenizer`` is the ``tokenizers`` tokenizer; ``tokenizer`` wraps it for transformers with a
    ``[CLS] q [SEP] d [SEP]`` pair template, so adapters that tokenize (query, document) pairs (a
    CrossEncoder) split them and rebuild each side with :meth:`build_features`, as for transformer encoders.

    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> vocab = {"[UNK]": 0, "[PAD]": 1, "late": 2, "interaction": 3, "ranking": 4}
    >>> tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    >>> tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> encoder = StaticTokenEncoder(torch.randn(5, 8), tokenizer, query_length=4, document_length=6)
    >>> output = encoder.encode(["late interaction", "ranking unknownword"], "query")
    >>> output.embeddings.shape, output.mask.tolist()
    (torch.Size([2, 2, 8]), [[True, True], [True, False]])
    """

    kind = "static"

    def __init__(
        self,
        vectors: torch.Tensor | np.ndarray,
        tokenizer: Tokenizer,
        query_length: int = 32,
        document_length: int = 180,
        query_marker: str | None = None,
        document_marker: str | None = None,
        normalize: bool = True,
        trainable: bool = True,
        drop_unknown: bool = True,
        base_model: str | None = None,
    ) -> None:
        super().__init__(query_length, document_length, normalize)
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(
                f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}; "
                "for a transformers tokenizer pass its .backend_tokenizer"
            )
        vectors = torch.as_tensor(np.asarray(vectors, dtype=np.float32) if isinstance(vectors, np.ndarray) else vectors)
        if vectors.dim() != 2 or vectors.shape[0] < 1 or vectors.shape[1] < 1:
            raise ValueError(f"vectors must be a [vocab_size, dim] matrix, got shape {tuple(vectors.shape)}")
        largest_id = max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1)
        if largest_id >= vectors.shape[0]:
            raise ValueError(
                f"the tokenizer has ids up to {largest_id} but there are {vectors.shape[0]} vectors; "
                "expected one row per token id"
            )
        self.pad_token_id = pad_token_id(tokenizer)
        #: the ``tokenizers`` tokenizer (what Model2Vec uses); ``tokenizer`` wraps it for transformers.
        self.backend_tokenizer = _plain_copy(tokenizer)
        if self.backend_tokenizer.post_processor is None:
            vectors = add_pair_template(self.backend_tokenizer, vectors)
        self.embedding = nn.Embedding.from_pretrained(vectors.float().clone(), freeze=not trainable)
        # Special tokens only frame a (query, document) pair for a transformers tokenizer; texts skip them.
        self.special_token_ids = frozenset(
            token_id for token_id, added in self.backend_tokenizer.get_added_tokens_decoder().items() if added.special
        )
        self.drop_unknown = bool(drop_unknown)
        self.unk_token_id = unknown_token_id(self.backend_tokenizer)
        self._skipped_ids = self.special_token_ids - {self.unk_token_id}
        if self.drop_unknown and self.unk_token_id is not None:
            self._skipped_ids = self._skipped_ids | {self.unk_token_id}
        self.base_model = base_model
        self.query_marker = query_marker or None
        self.document_marker = document_marker or None
        # The same frame attributes as TransformerTokenEncoder, so adapters that rebuild inputs from
        # raw ids (a CrossEncoder's tokenized pair) treat both encoders alike: no special tokens here.
        self.prefix_ids: list[int] = []
        self.suffix_ids: list[int] = []
        self.num_special_tokens = 0
        self.marker_ids = {
            "query": self._marker_ids(self.query_marker),
            "document": self._marker_ids(self.document_marker),
        }
        self.tokenizer = self._transformers_tokenizer()
        self._side_tokenizers: dict[str, Tokenizer] = {}
        sides: tuple[Side, Side] = ("query", "document")
        for side in sides:
            if self.text_budget(side) < 1:
                raise ValueError(
                    f"{side}_length={self.max_length(side)} leaves no room for text after the {side} marker"
                )
            side_tokenizer = _plain_copy(self.backend_tokenizer)
            side_tokenizer.enable_truncation(TRUNCATION_SLACK * self.max_length(side) + 16)
            self._side_tokenizers[side] = side_tokenizer

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_static_model(
        cls,
        static_model: Any,
        query_length: int = 32,
        document_length: int = 180,
        query_marker: str | None = None,
        document_marker: str | None = None,
        normalize: bool = True,
        trainable: bool = True,
    ) -> StaticTokenEncoder:
        """Wrap a Model2Vec ``StaticModel``: its per-token vectors become the embedding matrix.

        Vocabulary-quantized models (a token -> cluster mapping plus per-token weights) are expanded to
        one row per token id, ``vectors[mapping[id]] * weights[id]``, exactly what ``encode_as_sequence``
        returns; int8 vectors are cast to float (their global scale is lost, which cosine S ignores).
        """
        for attribute in ("embedding", "tokenizer"):
            if not hasattr(static_model, attribute):
                raise TypeError(f"expected a model2vec StaticModel, got {type(static_model).__name__}")
        rows = np.asarray(static_model.embedding).astype(np.float32)
        mapping = getattr(static_model, "token_mapping", None)
        if mapping is not None:
            rows = rows[np.asarray(mapping)]
        weights = getattr(static_model, "weights", None)
        if weights is not None:
            rows = rows * np.asarray(weights, dtype=np.float32)[:, None]
        return cls(
            rows,
            static_model.tokenizer,
            query_length=query_length,
            document_length=document_length,
            query_marker=query_marker,
            document_marker=document_marker,
            normalize=normalize,
            trainable=trainable,
            base_model=getattr(static_model, "base_model_name", None),
        )

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | Path,
        query_length: int = 32,
        document_length: int = 180,
        query_marker: str | None = None,
        document_marker: str | None = None,
        normalize: bool = True,
        trainable: bool = True,
        token: str | None = None,
    ) -> StaticTokenEncoder:
        """Load a Model2Vec folder or Hub id (e.g. ``minishlab/potion-retrieval-32M``); needs model2vec."""
        from lite_plugins._extras import import_optional

        model2vec = import_optional("model2vec", "model2vec")
        try:
            static_model = model2vec.StaticModel.from_pretrained(str(path_or_hub_id), token=token, force_download=False)
        except Exception as error:  # missing files, offline Hub, unknown repo: name what was tried
            where = "local folder" if Path(path_or_hub_id).is_dir() else "local folder or reachable Hub id"
            raise OSError(f"{str(path_or_hub_id)!r} is not a loadable Model2Vec {where}: {error}") from error
        encoder = cls.from_static_model(
            static_model, query_length, document_length, query_marker, document_marker, normalize, trainable
        )
        encoder.base_model = encoder.base_model or str(path_or_hub_id)
        return encoder

    def to_static_model(self) -> Any:
        """The (possibly fine-tuned) vectors as a Model2Vec ``StaticModel``; needs model2vec."""
        from lite_plugins._extras import import_optional

        model2vec = import_optional("model2vec", "model2vec")
        vectors = self.embedding.weight.detach().float().cpu().numpy()
        return model2vec.StaticModel(
            vectors, _plain_copy(self.backend_tokenizer), normalize=True, base_model_name=self.base_model
        )

    def _marker_ids(self, marker: str | None) -> list[int]:
        if not marker:
            return []
        ids = self._drop_skipped(self.backend_tokenizer.encode(marker, add_special_tokens=False).ids)
        if not ids:
            raise ValueError(f"marker {marker!r} has no known token in this vocabulary; pick another or pass None")
        return ids

    def _drop_skipped(self, ids: Sequence[int]) -> list[int]:
        """Drop unknown tokens (as Model2Vec does) and special tokens (a pair's frame, padding)."""
        return [int(i) for i in ids if int(i) not in self._skipped_ids]

    # --- configuration ------------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return int(self.embedding.embedding_dim)

    @property
    def vocab_size(self) -> int:
        return int(self.embedding.num_embeddings)

    @property
    def trainable(self) -> bool:
        return bool(self.embedding.weight.requires_grad)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freeze (False) or unfreeze (True) the embedding matrix; frozen, only the scorer learns."""
        self.embedding.weight.requires_grad_(bool(value))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "query_marker": self.query_marker,
            "document_marker": self.document_marker,
            "trainable": self.trainable,
            "drop_unknown": self.drop_unknown,
            "base_model": self.base_model,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: str | Path) -> StaticTokenEncoder:
        path = Path(directory) / TOKENIZER_FILE
        if not path.is_file():
            raise ValueError(f"{directory} has no {TOKENIZER_FILE}, which a static encoder needs")
        return cls(
            torch.zeros(int(config["vocab_size"]), int(config["embedding_dim"])),
            Tokenizer.from_file(str(path)),
            query_length=config["query_length"],
            document_length=config["document_length"],
            query_marker=config.get("query_marker"),
            document_marker=config.get("document_marker"),
            normalize=config.get("normalize", True),
            trainable=config.get("trainable", True),
            drop_unknown=config.get("drop_unknown", True),
            base_model=config.get("base_model"),
        )

    def save_tokenizer(self, directory: str | Path) -> None:
        """Write ``tokenizer.json`` plus a transformers config, so ``AutoTokenizer`` loads the folder too."""
        self.tokenizer.save_pretrained(str(directory))

    def _transformers_tokenizer(self) -> Any:
        """The tokenizer as transformers sees it (what a CrossEncoder loads), with the pair template."""
        from transformers import PreTrainedTokenizerFast

        vocab = self.backend_tokenizer.get_vocab(with_added_tokens=True)
        candidates = {
            "unk_token": ("[UNK]", "<unk>"),
            "pad_token": ("[PAD]", "<pad>"),
            "cls_token": ("[CLS]", "<s>"),
            "sep_token": ("[SEP]", "</s>"),
            "mask_token": ("[MASK]", "<mask>"),
        }
        specials = {
            name: next(token for token in tokens if token in vocab)
            for name, tokens in candidates.items()
            if any(token in vocab for token in tokens)
        }
        return PreTrainedTokenizerFast(
            tokenizer_object=_plain_copy(self.backend_tokenizer),
            model_input_names=["input_ids", "token_type_ids", "attention_mask"],
            # A pair longer than both sides' lengths (plus its 3 frame tokens) gets cut, longest side first.
            model_max_length=self.query_length + self.document_length + 3,
            **specials,
        )

    # --- tokenization -------------------------------------------------------------------------
    def text_budget(self, side: Side) -> int:
        """How many text tokens fit once the marker is added."""
        return self.max_length(side) - len(self.marker_ids[side])

    def build_features(self, text_ids: Sequence[Sequence[int]], side: Side) -> dict[str, torch.Tensor]:
        """``marker ids + text ids`` from raw token ids (unknown/special ids dropped, cut), padded."""
        budget = self.text_budget(side)
        marker = self.marker_ids[side]
        sequences = [marker + self._drop_skipped(ids)[:budget] for ids in text_ids]
        longest = max((len(s) for s in sequences), default=0)
        input_ids = torch.full((len(sequences), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        for i, sequence in enumerate(sequences):
            input_ids[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            attention_mask[i, : len(sequence)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def tokenize(self, texts: Sequence[str], side: Side) -> dict[str, torch.Tensor]:
        texts = check_texts(texts, f"{side} texts")
        self.max_length(side)  # validates the side
        encodings = (
            self._side_tokenizers[side].encode_batch_fast(list(texts), add_special_tokens=False) if texts else []
        )
        return self.build_features([encoding.ids for encoding in encodings], side)

    # --- encoding -----------------------------------------------------------------------------
    def forward(self, features: dict[str, torch.Tensor]) -> TokenEmbeddings:
        """Look up the vectors; a text with no known token yields an all-padding row (it scores as empty)."""
        mask = features["attention_mask"].bool()
        return self._finish(self.embedding(features["input_ids"]), mask)
