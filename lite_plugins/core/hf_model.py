"""LITE as a transformers sequence-classification model, so a stock sentence-transformers CrossEncoder
loads it.

``import lite_plugins`` registers :class:`LiteConfig` (``model_type="lite"``) and
:class:`LiteForSequenceClassification` with ``AutoConfig`` / ``AutoModelForSequenceClassification``.
Both read and write the one LITE checkpoint format (:mod:`lite_plugins.core.checkpoint`): the same
folder loads with ``LiteModel.from_pretrained(path)`` and ``CrossEncoder(path)``, with the same scores.

A cross-encoder hands the model a tokenized pair ``[CLS] query [SEP] document [SEP]``. LITE is a dual
encoder, so :meth:`LiteForSequenceClassification.forward` splits each pair back into the query's and
the document's raw token ids (token type ids where the tokenizer has them, the separator otherwise),
rebuilds ``[CLS] [Q] query [SEP]`` / ``[CLS] [D] document [SEP]`` exactly as the encoder does for plain
texts, encodes every distinct query of the batch once and scores with the LITE head.

Only transformers is imported here (no sentence-transformers): this module is part of the core.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from lite_plugins.core.checkpoint import (
    CONFIG_NAME,
    FORMAT_VERSION,
    MODEL_TYPE,
    WEIGHTS_NAME,
    CheckpointError,
    check_no_foreign_model,
    give_default_file_mode,
    resolve_checkpoint_dir,
    write_config,
)
from lite_plugins.core.model import LiteModel

logger = logging.getLogger(__name__)

#: What sentence-transformers stores to pick the activation: raw LITE scores, not Sigmoid.
IDENTITY_ACTIVATION = "torch.nn.modules.linear.Identity"
#: config.json keys of the core format (the rest is transformers' or an adapter's).
CORE_KEYS = ("model_type", "lite_format_version", "encoder", "scorer", "token_budget")


class LiteConfig(PretrainedConfig):
    """transformers view of a LITE ``config.json``: the core sections plus transformers' own fields.

    Defaults make any core checkpoint a one-score model with raw outputs: ``num_labels=1`` and an
    Identity activation for sentence-transformers (a CrossEncoder otherwise applies Sigmoid).

    >>> config = LiteConfig(scorer={"type": "maxsim"})
    >>> config.model_type, config.num_labels, config.sentence_transformers["activation_fn"]
    ('lite', 1, 'torch.nn.modules.linear.Identity')
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        encoder: dict[str, Any] | None = None,
        scorer: dict[str, Any] | None = None,
        token_budget: dict[str, Any] | None = None,
        lite_format_version: int = FORMAT_VERSION,
        sentence_transformers: dict[str, Any] | None = None,
        num_labels: int | None = None,
        **kwargs: Any,
    ) -> None:
        if num_labels is None and kwargs.get("id2label") is None:
            num_labels = 1
        super().__init__(num_labels=num_labels, **kwargs)
        self.encoder = encoder
        self.scorer = scorer
        self.token_budget = token_budget
        self.lite_format_version = lite_format_version
        self.sentence_transformers = {"activation_fn": IDENTITY_ACTIVATION, **(sentence_transformers or {})}

    def core_config(self) -> dict[str, Any]:
        """The sections :class:`~lite_plugins.core.model.LiteModel` reads."""
        return {
            "model_type": MODEL_TYPE,
            "lite_format_version": self.lite_format_version,
            "encoder": self.encoder,
            "scorer": self.scorer,
            "token_budget": self.token_budget,
        }


class PairSplitter:
    """Splits tokenized ``(query, document)`` pairs back into each side's raw text token ids.

    The tokenizer's pair template (what goes before, between and after the two texts) is read off a
    probe, as transformers 5 tokenizers no longer expose it. Token type ids decide the boundary where
    the tokenizer makes them differ between the two texts (BERT); otherwise the first occurrence of the
    separator between them does (RoBERTa ``</s></s>``, ModernBERT ``[SEP]``).
    """

    def __init__(self, tokenizer: Any) -> None:
        first, second = self._bare(tokenizer, "query"), self._bare(tokenizer, "document")
        probe = tokenizer("query", "document", add_special_tokens=True)
        ids = list(probe["input_ids"])
        start = _find(ids, first, 0)
        middle_start = start + len(first) if start >= 0 else -1
        end = _find(ids, second, middle_start) if middle_start >= 0 else -1
        if start < 0 or end < 0:
            raise ValueError(
                f"cannot locate the two texts in the tokenizer's pair template {ids}; "
                "LITE needs a tokenizer whose pairs keep each text's own token ids"
            )
        self.prefix = ids[:start]
        self.middle = ids[middle_start:end]
        self.suffix = ids[end + len(second) :]
        types = probe.get("token_type_ids")
        self.first_type: int | None = None
        self.second_type: int | None = None
        self.middle_second_typed = 0
        if types is not None and types[start] != types[end]:
            self.first_type, self.second_type = int(types[start]), int(types[end])
            self.middle_second_typed = sum(int(t) == self.second_type for t in types[middle_start:end])
        if self.second_type is None and not self.middle:
            raise ValueError(
                "the tokenizer puts neither a separator nor token type ids between the two texts of a pair"
            )

    @staticmethod
    def _bare(tokenizer: Any, text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def split(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> list[tuple[list[int], list[int]]]:
        """``[B, T]`` pair batch -> ``B`` (query ids, document ids), special tokens and padding removed."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape [batch, tokens], got {tuple(input_ids.shape)}")
        ids_rows = input_ids.tolist()
        mask_rows = (
            attention_mask.tolist() if attention_mask is not None else [[1] * input_ids.shape[1]] * len(ids_rows)
        )
        use_types = token_type_ids is not None and self.second_type is not None
        type_rows = token_type_ids.tolist() if use_types else None  # type: ignore[union-attr]
        pairs = []
        for row, (ids, mask) in enumerate(zip(ids_rows, mask_rows, strict=False)):
            keep = [i for i, m in enumerate(mask) if m]
            tokens = [ids[i] for i in keep]
            tail = len(tokens) - len(self.suffix)
            if tokens[: len(self.prefix)] != self.prefix or tokens[tail:] != self.suffix:
                raise ValueError(
                    f"pair {row} does not follow the tokenizer's pair template "
                    f"({self.prefix} A {self.middle} B {self.suffix}); use the model's own tokenizer"
                )
            body = tokens[len(self.prefix) : tail]
            if type_rows is not None:
                types = [type_rows[row][i] for i in keep][len(self.prefix) : tail]
                first_second = next((i for i, t in enumerate(types) if t == self.second_type), len(body))
                query_end = first_second - (len(self.middle) - self.middle_second_typed)
                document_start = first_second + self.middle_second_typed
            else:
                query_end = _find(body, self.middle, 0)
                if query_end < 0:
                    raise ValueError(f"pair {row} has no separator {self.middle} between query and document")
                document_start = query_end + len(self.middle)
            pairs.append((body[: max(query_end, 0)], body[document_start:]))
        return pairs


def _find(sequence: Sequence[int], pattern: Sequence[int], start: int) -> int:
    """Index of the first occurrence of ``pattern`` in ``sequence`` at or after ``start`` (-1 if none)."""
    n = len(pattern)
    for i in range(start, len(sequence) - n + 1):
        if list(sequence[i : i + n]) == list(pattern):
            return i
    return -1


class LiteForSequenceClassification(PreTrainedModel):
    """A LITE model that scores tokenized ``(query, document)`` pairs: ``logits [B, 1]`` are LITE scores.

    Weights are the core's (``encoder.*``, ``scorer.*``); :meth:`save_pretrained` and
    :meth:`from_pretrained` write and read the core checkpoint format directly, so no transformers key
    renaming (e.g. BERT's legacy LayerNorm names) ever applies and a trainer's best-checkpoint reload
    restores every weight.
    """

    config_class = LiteConfig
    base_model_prefix = "lite"
    main_input_name = "input_ids"
    _no_split_modules: list[str] = []  # noqa: RUF012 (transformers reads this class attribute)

    def __init__(self, config: LiteConfig, lite_model: LiteModel | None = None) -> None:
        super().__init__(config)
        if config.num_labels != 1:
            raise ValueError(f"a LITE model gives one score per pair: num_labels must be 1, got {config.num_labels}")
        if lite_model is None:
            # Architecture + tokenizer from the config's folder; from_pretrained loads the weights.
            directory = config.name_or_path
            if not directory or not Path(directory).is_dir():
                raise CheckpointError(
                    "LiteForSequenceClassification(config) needs the checkpoint folder (for the tokenizer): "
                    "use LiteForSequenceClassification.from_pretrained(path) or .from_lite_model(model)"
                )
            lite_model = LiteModel.from_config(config.core_config(), directory)
        encoder = lite_model.encoder
        if not hasattr(encoder, "build_features") or not hasattr(encoder, "tokenizer"):
            raise TypeError(
                "scoring tokenized pairs needs a transformer token encoder with a tokenizer, "
                f"got {type(encoder).__name__}"
            )
        self.encoder = encoder
        self.scorer = lite_model.scorer
        self.token_budget = lite_model.token_budget
        self.pair_splitter = PairSplitter(encoder.tokenizer)
        self.encoder_frozen = False
        self.post_init()

    def init_weights(self) -> None:
        """No-op: the encoder arrives pretrained, the scorer initialized by the core; never re-initialize."""

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Train only the LITE head: no encoder gradients, and the encoder stays in eval mode (no dropout).

        Token vectors then do not change while training, which is also what stored document vectors need.
        """
        self.encoder_frozen = bool(frozen)
        self.encoder.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> LiteForSequenceClassification:
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_lite_model(cls, lite_model: LiteModel, **config_overrides: Any) -> LiteForSequenceClassification:
        """Wrap a core :class:`LiteModel` (weights shared, not copied)."""
        settings = {k: v for k, v in lite_model.get_config().items() if k != "model_type"}
        settings.update(config_overrides)
        return cls(LiteConfig(**settings), lite_model=lite_model)

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        config: LiteConfig | None = None,
        dtype: torch.dtype | str | None = None,
        revision: str | None = None,
        **kwargs: Any,
    ) -> LiteForSequenceClassification:
        """Load a LITE checkpoint folder (or Hub id) with the core loader; ``dtype`` as transformers takes it.

        Only JSON and safetensors are read. Loader options of other models (``device_map``,
        quantization, ...) do not apply and are ignored with a debug message.
        """
        dtype = dtype if dtype is not None else kwargs.pop("torch_dtype", None)
        ignored = sorted(k for k in kwargs if k not in ("cache_dir", "local_files_only", "token", "trust_remote_code"))
        if ignored:
            logger.debug("LiteForSequenceClassification.from_pretrained ignores %s", ignored)
        directory = resolve_checkpoint_dir(pretrained_model_name_or_path, revision)
        lite_model = LiteModel.from_pretrained(directory)
        if config is None:
            config = LiteConfig.from_pretrained(str(directory))
        model = cls(config, lite_model=lite_model)
        if isinstance(dtype, str) and dtype != "auto":
            dtype = getattr(torch, dtype)
        if isinstance(dtype, torch.dtype):
            model = model.to(dtype)
        model.eval()
        return model

    def lite_model(self) -> LiteModel:
        """The core :class:`LiteModel` over the same modules (weights shared): encode, store, score texts."""
        extra = {k: v for k, v in self.config.to_diff_dict().items() if k not in CORE_KEYS}
        return LiteModel(self.encoder, self.scorer, self.token_budget, extra)

    # --- scoring ------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        """Score a tokenized pair batch; ``labels`` (if given) give a mean-squared-error loss."""
        pairs = self.pair_splitter.split(input_ids, attention_mask, token_type_ids)
        logits = self.score_token_ids([q for q, _ in pairs], [d for _, d in pairs]).unsqueeze(-1)
        loss = None
        if labels is not None:
            loss = nn.functional.mse_loss(logits.view(-1).float(), labels.view(-1).float())
        if return_dict is False:
            return (logits,) if loss is None else (loss, logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def score_token_ids(
        self, query_ids: Sequence[Sequence[int]], document_ids: Sequence[Sequence[int]]
    ) -> torch.Tensor:
        """Scores ``[n]`` of aligned raw text ids (no special tokens); each distinct query is encoded once."""
        if len(query_ids) != len(document_ids):
            raise ValueError(f"got {len(query_ids)} queries but {len(document_ids)} documents; pairs must align")
        device = self.device
        if not query_ids:
            return torch.zeros(0, device=device, dtype=self.scorer.parameter_dtype)
        unique: dict[tuple[int, ...], int] = {}
        rows = [unique.setdefault(tuple(ids), len(unique)) for ids in query_ids]
        encoder = self.encoder
        query_features = {k: v.to(device) for k, v in encoder.build_features(list(unique), "query").items()}
        document_features = {k: v.to(device) for k, v in encoder.build_features(document_ids, "document").items()}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            queries = encoder(query_features)
            documents = encoder(document_features)
        if self.token_budget is not None:
            documents = type(documents)(*self.token_budget(documents.embeddings, documents.mask))
        index = torch.tensor(rows, device=device)
        return self.scorer.score(
            queries.embeddings[index], documents.embeddings, queries.mask[index], documents.mask, "aligned"
        )

    # --- saving -------------------------------------------------------------------------------
    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict[str, torch.Tensor] | None = None,
        save_tokenizer: bool = True,
        **kwargs: Any,
    ) -> None:
        """Write config.json + model.safetensors in the core format (file by file, each atomically).

        The folder may hold other files (a trainer's checkpoint folder does); a ``config.json`` of a model
        that is not LITE is never overwritten. ``safe_serialization`` and other transformers options are
        accepted and ignored: weights are always safetensors.
        """
        if not is_main_process:
            return
        directory = Path(save_directory)
        check_no_foreign_model(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if getattr(self.encoder, "source", None) and not self.encoder_frozen:
            # A checkpoint may reference unchanged pretrained encoder weights instead of holding them; once
            # the encoder could have been trained, that reference no longer holds: save the weights.
            logger.info("saving the full encoder weights instead of the reference %s", self.encoder.source)
            self.encoder.source = None
        lite_model = self.lite_model()
        config = {**self.config.to_diff_dict(), **lite_model.get_config()}
        config["architectures"] = [type(self).__name__]
        _atomic_write(directory / CONFIG_NAME, lambda path: write_config(path.parent, config), directory)
        referenced = lite_model._referenced_keys() if hasattr(lite_model, "_referenced_keys") else set()
        state = state_dict if state_dict is not None else self.state_dict()
        state = {k: v.detach().contiguous().cpu() for k, v in state.items() if k not in referenced}
        metadata = {"format": "pt", "lite_format_version": str(FORMAT_VERSION)}
        _atomic_write(directory / WEIGHTS_NAME, lambda path: save_file(state, str(path), metadata=metadata), directory)
        if save_tokenizer and not (directory / "tokenizer_config.json").is_file():
            self.encoder.save_tokenizer(directory)


def _atomic_write(target: Path, write: Any, directory: Path) -> None:
    """Write ``target`` through a hidden temporary file (or folder, for config) and rename it into place."""
    temporary_dir = directory / f".{target.name}.tmp-{os.getpid()}"
    temporary_dir.mkdir(exist_ok=True)
    temporary = temporary_dir / target.name
    try:
        write(temporary)
        give_default_file_mode(temporary)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
        temporary_dir.rmdir()


def register() -> None:
    """Teach ``AutoConfig`` / ``AutoModelForSequenceClassification`` ``model_type="lite"`` (idempotent)."""
    AutoConfig.register(MODEL_TYPE, LiteConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(LiteConfig, LiteForSequenceClassification, exist_ok=True)


register()
