"""``LiteReranker``: re-rank any first stage's results by their text: ``bm25 >> LiteReranker(ckpt)``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyterrier as pt
import torch

from lite_plugins.core import LiteModel
from lite_plugins.pyterrier._frames import (
    ModelLike,
    check_result_frame,
    check_strings,
    describe_model,
    empty_results,
    load_model,
    rank_results,
)

logger = logging.getLogger(__name__)


class LiteReranker(pt.Estimator):
    """Scores each (query, text) row of a result frame with a LITE model, then re-sorts and re-ranks.

    Input: a result frame with ``qid``, ``query``, ``docno`` and ``text`` (PISA and other indexes that
    store no text: add it with ``pt.text.get_text``). Output: the same rows with ``score`` replaced by
    the LITE score and ``rank`` recomputed, each query's rows sorted by score.
    Each distinct query is encoded once; documents go through the encoder in batches of ``batch_size``.

    A :class:`pt.Estimator`: ``fit`` trains the model on labelled (and optionally teacher-scored) results.

    Example (a ``LiteModel`` object works as well as a checkpoint folder)::

        from pyterrier_pisa import PisaIndex
        bm25 = PisaIndex("./index").bm25(num_results=100)
        pipeline = bm25 >> pt.text.get_text(texts, "text") >> LiteReranker("path/to/lite-checkpoint")
        pipeline.search("what is late interaction?")
    """

    def __init__(
        self,
        checkpoint_or_model: ModelLike,
        batch_size: int = 32,
        verbose: bool = False,
        device: str | torch.device | None = None,
        text_field: str = "text",
        fit_args: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model: LiteModel = load_model(checkpoint_or_model, device)
        self._checkpoint_or_model = checkpoint_or_model
        self.batch_size = batch_size
        self.verbose = verbose
        self.device = device
        self.text_field = text_field
        #: defaults for :meth:`fit` (a pipeline's ``fit`` passes no options through to its stages).
        self.fit_args: dict[str, Any] = dict(fit_args or {})

    @classmethod
    def default(cls, **kwargs: Any) -> LiteReranker:
        """The re-ranker over lite_plugins' shipped default checkpoint (frozen MiniLM + trained LITE head)."""
        from lite_plugins.core.default import default_checkpoint

        return cls(default_checkpoint(), **kwargs)

    def __repr__(self) -> str:
        arguments = [describe_model(self._checkpoint_or_model, self.model)]
        if self.batch_size != 32:
            arguments.append(f"batch_size={self.batch_size}")
        if self.device is not None:
            arguments.append(f"device={str(self.device)!r}")
        if self.text_field != "text":
            arguments.append(f"text_field={self.text_field!r}")
        if self.fit_args:
            arguments.append(f"fit_args={self.fit_args!r}")
        return f"LiteReranker({', '.join(arguments)})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        check_result_frame(
            inp,
            ["query", self.text_field],
            hint="Add the document text first, e.g. "
            f"first_stage >> pt.text.get_text(index, {self.text_field!r}) >> reranker.",
        )
        if len(inp) == 0:
            return empty_results(inp)
        queries = check_strings(inp, "query")
        texts = check_strings(inp, self.text_field)
        scores = self.model.score_pairs(queries, texts, batch_size=self.batch_size, show_progress_bar=self.verbose)
        return rank_results(inp, scores.tolist())

    def fit(
        self,
        topics_or_res_tr: pd.DataFrame,
        qrels_tr: pd.DataFrame,
        topics_or_res_va: pd.DataFrame | None = None,
        qrels_va: pd.DataFrame | None = None,
        **training_arguments: Any,
    ) -> LiteReranker:
        """Train on first-stage results (with ``text``) labelled by qrels, or distil from teacher scores.

        Runs sentence-transformers' ``CrossEncoderTrainer`` with a listwise KL loss; ``training_arguments``
        go to :func:`~lite_plugins.pyterrier.training.fit_model` (``teacher_scores``, ``freeze_encoder``,
        ``epochs``, ``max_steps``, ``batch_size`` (lists per step), ``learning_rate``, ...), over the
        constructor's ``fit_args``. Inside a pipeline, ``(bm25 >> get_text >> reranker).fit(topics, qrels,
        valid_topics, valid_qrels)`` runs the first stages and calls this with their results (and no
        options: give them as ``fit_args``). Returns ``self``, trained in place.
        """
        from lite_plugins.pyterrier.training import fit_model

        for name, frame in (("training results", topics_or_res_tr), ("validation results", topics_or_res_va)):
            if frame is not None:
                check_result_frame(
                    frame,
                    ["query", self.text_field],
                    hint=f"fit() needs the {name} of a first stage with text: bm25 >> get_text >> reranker.",
                )
        self.model = fit_model(
            self.model,
            topics_or_res_tr,
            qrels_tr,
            topics_or_res_va,
            qrels_va,
            text_field=self.text_field,
            verbose=self.verbose,
            **{**self.fit_args, **training_arguments},
        ).eval()
        return self

    def save(self, directory: str | Path) -> Path:
        """Save the (trained) model as a LITE checkpoint folder; ``LiteReranker(directory)`` loads it back."""
        return self.model.save_pretrained(directory)
