"""Shared plumbing of the PyTerrier transformers: model loading, frame checks, ranking."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta
import torch

from lite_plugins.core import LiteModel

#: What a LITE model can be given as, everywhere in this adapter.
ModelLike = LiteModel | str | Path


def load_model(model: Any, device: str | torch.device | None = None) -> LiteModel:
    """A :class:`LiteModel` from a model or a checkpoint folder / Hub id, moved to ``device`` if given."""
    if isinstance(model, (str, Path)):
        model = LiteModel.from_pretrained(model)
    elif not isinstance(model, LiteModel):
        raise TypeError(f"expected a LiteModel or the path of a LITE checkpoint folder, got {type(model).__name__}")
    if device is not None:
        model = model.to(device)
    return model.eval()


def describe_model(source: Any, model: LiteModel) -> str:
    """How a model was given, for ``__repr__``: the checkpoint path, or a short summary."""
    if isinstance(source, (str, Path)):
        return repr(str(source))
    encoder = model.encoder
    return f"<LiteModel {type(model.scorer).__name__}, {encoder.kind} encoder, {encoder.embedding_dim}-d>"


def check_result_frame(frame: Any, columns: Sequence[str], hint: str = "") -> None:
    """Raise the PyTerrier validation error naming the missing column(s), with a hint on how to add them."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"expected a pandas DataFrame with columns qid, docno, {', '.join(columns)}; got {type(frame).__name__}"
        )
    try:
        pta.validate.result_frame(frame, extra_columns=list(columns))
    except pta.validate.InputValidationError as error:
        missing = [c for c in ("qid", "docno", *columns) if c not in frame.columns]
        message = f"result frame is missing column(s) {missing}; it has {list(frame.columns)}."
        raise pta.validate.InputValidationError(f"{message} {hint}".strip(), error.modes) from None


def check_strings(frame: pd.DataFrame, column: str) -> list[str]:
    """The column as a list of strings; a non-string cell (e.g. NaN for a text never loaded) names its row."""
    values = frame[column].tolist()
    for position, value in enumerate(values):
        if not isinstance(value, str):
            row = frame.iloc[position]
            raise TypeError(
                f"column {column!r} must hold strings; qid={row['qid']!r} docno={row.get('docno')!r} has "
                f"{type(value).__name__} {value!r:.60}"
            )
    return values


def empty_results(frame: pd.DataFrame) -> pd.DataFrame:
    """An empty input gives an empty output with the columns a re-ranker adds (pt.inspect relies on it)."""
    out = frame.drop(columns=["score", "rank"], errors="ignore").copy()
    out["score"] = pd.Series(dtype="float64", index=out.index)
    out["rank"] = pd.Series(dtype="int64", index=out.index)
    return out


def rank_results(frame: pd.DataFrame, scores: Sequence[float] | Any) -> pd.DataFrame:
    """Set ``score``, then sort each query's results by it (queries keep their input order) and re-rank."""
    out = frame.drop(columns=["score", "rank"], errors="ignore").copy()
    out["score"] = np.asarray(scores, dtype=np.float64)  # positional: the frame's index may repeat labels
    query_order = {qid: i for i, qid in enumerate(pd.unique(out["qid"]))}
    order_key = out["qid"].map(query_order)
    out = (
        out.assign(_query_order=order_key)
        .sort_values(["_query_order", "score"], ascending=[True, False], kind="stable")
        .drop(columns="_query_order")
        .reset_index(drop=True)
    )
    out["rank"] = out.groupby("qid", sort=False).cumcount().astype("int64") + pt.model.FIRST_RANK
    return out


def encoder_fingerprint(model: LiteModel) -> str:
    """A hash of what decides stored vectors (encoder weights and settings, token budget)."""
    digest = hashlib.sha256()
    # The nested transformers config carries paths and versions that change on a save/reload; weights decide.
    encoder_config = {k: v for k, v in model.encoder.get_config().items() if k != "model_config"}
    budget = model.token_budget.get_config() if model.token_budget else None
    digest.update(repr((sorted(encoder_config.items()), budget)).encode())
    for name, tensor in sorted(model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
