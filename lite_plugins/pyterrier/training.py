"""``LiteReranker.fit``: train on PyTerrier result frames through sentence-transformers' CrossEncoderTrainer.

A result frame (``qid``, ``query``, ``docno``, ``text``) from a first stage becomes one list per query:
the ``list_size`` candidates it trains on (the best one plus others drawn at random), with a target per
candidate, and :class:`~lite_plugins.sentence_transformers.ListwiseKLLoss` pulls the model's softmax over
the list towards the targets' softmax at ``temperature``:

=====================  ====================================================  ==================
targets                from                                                  default temperature
=====================  ====================================================  ==================
relevance labels       qrels (``qid``, ``docno``, ``label``; unjudged = 0)   0.1 (near one-hot on
                                                                             the best grade)
teacher scores         ``teacher_scores``: a column of the frame, or         1.0
                       ``{qid: {docno: score}}`` (e.g. ``data.read_teacher``)
=====================  ====================================================  ==================

With labels, queries whose candidates are all unjudged or non-relevant teach nothing and are skipped.
The model is trained in place (the CrossEncoder wraps the same modules). ``freeze_encoder=True`` trains
only the LITE head: fast on a CPU, and a :class:`~lite_plugins.pyterrier.LiteIndex` built before stays valid.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from typing import Any

import pandas as pd

from lite_plugins.core import LiteModel

logger = logging.getLogger(__name__)

TeacherScores = str | Mapping[str, Mapping[str, float]]


def frame_to_lists(
    results: pd.DataFrame,
    qrels: pd.DataFrame | None,
    teacher_scores: TeacherScores | None = None,
    text_field: str = "text",
) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]], dict[str, dict[str, float]]]:
    """(queries, candidates, targets) per qid from a result frame plus qrels labels or teacher scores.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"qid": ["1", "1"], "query": "q", "docno": ["a", "b"], "text": ["A", "B"]})
    >>> qrels = pd.DataFrame({"qid": ["1"], "docno": ["b"], "label": [2]})
    >>> frame_to_lists(frame, qrels)[2]
    {'1': {'a': 0.0, 'b': 2.0}}
    """
    queries: dict[str, str] = {}
    candidates: dict[str, list[tuple[str, str]]] = {}
    for qid, query, docno, text in zip(
        results["qid"].astype(str),
        results["query"],
        results["docno"].astype(str),
        results[text_field],
        strict=True,
    ):
        queries.setdefault(qid, query)
        candidates.setdefault(qid, []).append((docno, text))
    targets: dict[str, dict[str, float]] = {}
    if teacher_scores is not None:
        if isinstance(teacher_scores, str):
            if teacher_scores not in results.columns:
                raise KeyError(
                    f"teacher_scores={teacher_scores!r} is not a column of the training frame; "
                    f"it has {list(results.columns)}"
                )
            for qid, docno, score in zip(
                results["qid"].astype(str), results["docno"].astype(str), results[teacher_scores], strict=True
            ):
                targets.setdefault(qid, {})[docno] = float(score)
        else:
            targets = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in teacher_scores.items()}
    else:
        if qrels is None:
            raise ValueError("fit() needs qrels (labels) or teacher_scores (distillation)")
        missing = [c for c in ("qid", "docno", "label") if c not in qrels.columns]
        if missing:
            raise KeyError(f"qrels frame lacks column(s) {missing}; expected qid, docno, label")
        labels: dict[str, dict[str, float]] = {}
        for qid, docno, label in zip(qrels["qid"].astype(str), qrels["docno"].astype(str), qrels["label"], strict=True):
            labels.setdefault(qid, {})[docno] = float(label)
        for qid, hits in candidates.items():
            judged = labels.get(qid, {})
            if any(judged.get(docno, 0.0) > 0 for docno, _ in hits):
                targets[qid] = {docno: max(judged.get(docno, 0.0), 0.0) for docno, _ in hits}
    return queries, candidates, targets


def fit_model(
    model: LiteModel,
    train_results: pd.DataFrame,
    train_qrels: pd.DataFrame | None,
    valid_results: pd.DataFrame | None = None,
    valid_qrels: pd.DataFrame | None = None,
    *,
    teacher_scores: TeacherScores | None = None,
    valid_teacher_scores: TeacherScores | None = None,
    text_field: str = "text",
    temperature: float | None = None,
    list_size: int = 16,
    lists_per_query: int = 1,
    epochs: int = 1,
    max_steps: int = -1,
    batch_size: int = 8,
    learning_rate: float = 2e-5,
    freeze_encoder: bool = False,
    output_dir: str | None = None,
    seed: int = 0,
    verbose: bool = False,
    **training_arguments: Any,
) -> LiteModel:
    """Train ``model`` in place with ``CrossEncoderTrainer`` and :class:`ListwiseKLLoss`; returns it.

    ``batch_size`` counts lists (queries) per step, each of ``list_size`` candidates. Validation frames,
    if given, are scored with the same loss (``eval_loss``) once per epoch. ``training_arguments`` go to
    ``CrossEncoderTrainingArguments`` (e.g. ``warmup_ratio``, ``weight_decay``, ``use_cpu``).
    ``output_dir`` keeps the trainer's files (default: a temporary folder, removed afterwards).
    """
    from lite_plugins._extras import require

    require("sentence-transformers", "sentence_transformers", "datasets")
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    from lite_plugins.sentence_transformers import ListwiseKLLoss, LiteCrossEncoder, listwise_dataset

    distilling = teacher_scores is not None
    if temperature is None:
        temperature = 1.0 if distilling else 0.1

    def dataset(results: pd.DataFrame, qrels: pd.DataFrame | None, teacher: TeacherScores | None) -> Any:
        queries, candidates, targets = frame_to_lists(results, qrels, teacher, text_field)
        if not targets:
            what = "teacher scores" if teacher is not None else "a relevant (label > 0) candidate in the qrels"
            raise ValueError(f"no query of the frame has {what}; check that qids and docnos match")
        return listwise_dataset(
            queries, candidates, targets, list_size=list_size, lists_per_query=lists_per_query, seed=seed
        )

    train_dataset = dataset(train_results, train_qrels, teacher_scores)
    eval_dataset = None
    if valid_results is not None and (valid_qrels is not None or valid_teacher_scores is not None):
        eval_dataset = dataset(valid_results, valid_qrels, valid_teacher_scores)
    logger.info("training on %d lists (%s)", len(train_dataset), "teacher scores" if distilling else "labels")

    cross_encoder = LiteCrossEncoder.from_lite_model(model, device=str(model.device))
    if freeze_encoder:
        cross_encoder.freeze_encoder(True)
    loss = ListwiseKLLoss(cross_encoder, temperature=temperature)
    with tempfile.TemporaryDirectory(prefix="lite-fit-") as scratch:
        arguments = {
            "output_dir": output_dir or scratch,
            "num_train_epochs": epochs,
            "max_steps": max_steps,
            "per_device_train_batch_size": batch_size,
            "per_device_eval_batch_size": batch_size,
            "learning_rate": learning_rate,
            "save_strategy": "no",
            "eval_strategy": "epoch" if eval_dataset is not None else "no",
            "report_to": "none",
            "seed": seed,
            "disable_tqdm": not verbose,
            "use_cpu": model.device.type == "cpu",
            **training_arguments,
        }
        trainer = CrossEncoderTrainer(
            model=cross_encoder,
            args=CrossEncoderTrainingArguments(**arguments),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            loss=loss,
        )
        if not verbose:  # with progress bars off, transformers prints every log line instead
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        trainer.train()
    if freeze_encoder:
        cross_encoder.freeze_encoder(False)
    trained = cross_encoder.lite_model
    # A no-op when the trainer kept the shared modules, a copy if it replaced them.
    model.load_state_dict(trained.state_dict())
    return model.eval()
