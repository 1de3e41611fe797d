"""Bad input at every public entry point: each case is data, asserted here and rendered into docs.

``docs/reliability.md`` is generated from :data:`CASES` (and the other ``test_reliability_*`` modules'
summaries below); a test fails when it is out of date. Regenerate it with::

    python tests/test_reliability.py --write-docs

A case runs one call against small offline fixtures (a tiny BERT, a LITE checkpoint saved from it and
damaged copies of that checkpoint) and states what must happen: an exception of a given class whose
message matches a pattern (the pattern is what makes the message *clear*: it names the problem), or a
result that passes a check.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_PATH = REPO_ROOT / "docs" / "reliability.md"
MEMORY_RESULTS = REPO_ROOT / "benchmarks" / "results" / "memory.json"

LONG_TEXT = " ".join(["late interaction ranking of token vectors"] * 2000)  # ~10,000 words
QUERIES = {"q1": "what is late interaction ranking", "q2": "cat on a mat"}
DOCUMENTS = [
    "what is late interaction ranking",
    "the cat sat on the mat",
    "a neural ranker learns a similarity matrix of token vectors",
    "quantum field theory of light and energy",
]


# --- the environment the cases run in ----------------------------------------------------------
class Env:
    """Fixtures the cases share, built on first use (a case only pays for what it touches)."""

    def __init__(self, root: Path, bert: Path) -> None:
        self.root = root
        self.bert = bert

    @cached_property
    def model(self) -> Any:
        from lite_plugins.core import LiteModel

        return LiteModel.from_encoder(self.bert, "separable", query_length=8, document_length=16, seed=0).eval()

    @cached_property
    def checkpoint(self) -> Path:
        return self.model.save_pretrained(self.root / "checkpoint")

    def damaged(self, kind: str) -> Path:
        """A copy of :attr:`checkpoint` damaged one way (see :data:`DAMAGE`)."""
        target = self.root / f"damaged-{kind}"
        if not target.exists():
            shutil.copytree(self.checkpoint, target)
            DAMAGE[kind](target)
        return target

    @cached_property
    def cross_encoder(self) -> Any:
        from lite_plugins.sentence_transformers import LiteCrossEncoder

        return LiteCrossEncoder(str(self.checkpoint))

    @cached_property
    def reranker(self) -> Any:
        from lite_plugins.pyterrier import LiteReranker

        return LiteReranker(self.model)

    @cached_property
    def records(self) -> list[dict[str, str]]:
        return [{"docno": f"d{i}", "text": text} for i, text in enumerate(DOCUMENTS)]

    @cached_property
    def index(self) -> Any:
        from lite_plugins.pyterrier import LiteIndex

        return LiteIndex(self.root / "index.lite").indexer(self.model).index(self.records)

    def damaged_index(self, kind: str) -> Any:
        from lite_plugins.pyterrier import LiteIndex

        target = self.root / f"index-{kind}"
        if not target.exists():
            shutil.copytree(self.index.path, target)
            INDEX_DAMAGE[kind](target)
        return LiteIndex(target)

    def frame(self, **changes: Any) -> Any:
        """A result frame of every document for every query (``text=None`` drops the text column)."""
        import pandas as pd

        rows = [
            {"qid": qid, "query": query, "docno": r["docno"], "text": r["text"], "score": 0.0, "rank": i}
            for qid, query in QUERIES.items()
            for i, r in enumerate(self.records)
        ]
        frame = pd.DataFrame(rows)
        for column, value in changes.items():
            if value is None:
                frame = frame.drop(columns=column)
            else:
                frame[column] = frame[column].astype(object)
                frame.loc[0, column] = value
        return frame

    @cached_property
    def scorer(self) -> Any:
        from lite_plugins.core import SeparableLite

        torch.manual_seed(0)
        return SeparableLite(query_length=8, document_length=16, row_hidden=12, column_hidden=6).eval()

    @cached_property
    def colbert(self) -> Any:
        from pylate import models

        from lite_plugins.pylate import LiteColBERT

        torch.manual_seed(0)
        colbert = models.ColBERT(
            model_name_or_path=str(self.bert), embedding_size=16, query_length=8, document_length=16, device="cpu"
        )
        return LiteColBERT.from_colbert(colbert, scorer="separable", seed=0, row_hidden=12, column_hidden=6).eval()

    @cached_property
    def colbert_folder(self) -> Path:
        return self.colbert.save_pretrained(self.root / "colbert-lite")

    def colbert_damaged(self) -> Path:
        target = self.root / "colbert-lite-truncated"
        if not target.exists():
            shutil.copytree(self.colbert_folder, target)
            _truncate(target / "lite_scorer" / "model.safetensors")
        return target

    @cached_property
    def static_model(self) -> Any:
        from model2vec import StaticModel
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(self.bert)).backend_tokenizer
        vectors = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 8)).astype(np.float32)
        return StaticModel(vectors, tokenizer, normalize=True, base_model_name="tiny")

    @cached_property
    def static_lite(self) -> Any:
        from lite_plugins.core import LiteModel
        from lite_plugins.model2vec import StaticTokenEncoder

        encoder = StaticTokenEncoder.from_static_model(self.static_model, query_length=8, document_length=16)
        return LiteModel.from_encoder(encoder, "separable", seed=0).eval()

    def file(self, name: str, text: str) -> Path:
        path = self.root / "files" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def cli(self, *argv: str) -> tuple[int, str]:
        """Run the command line in-process: (exit status, stderr)."""
        from lite_plugins.cli import main

        stderr, stdout = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                status = main([str(a) for a in argv])
            except SystemExit as exit_:  # argparse usage errors
                status = int(exit_.code or 0)
        return status, stderr.getvalue()

    def cli_rerank(self, candidates: str, model: Path | None = None) -> tuple[int, str, int | None]:
        """``lite-plugins rerank`` of these candidates: (exit status, stderr, lines in the run file or None)."""
        run = self.root / "files" / "run.txt"
        run.unlink(missing_ok=True)
        status, stderr = self.cli(
            "rerank",
            "--model",
            model or self.checkpoint,
            "--queries",
            self.file("queries.tsv", "".join(f"{q}\t{t}\n" for q, t in QUERIES.items())),
            "--candidates",
            self.file("candidates.jsonl", candidates),
            "--output",
            run,
            "--device",
            "cpu",
            "--quiet",
        )
        return status, stderr, len(run.read_text().splitlines()) if run.is_file() else None


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_json(path: Path, **changes: Any) -> None:
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _widen_scorer(directory: Path) -> None:
    config = json.loads((directory / "config.json").read_text())
    config["scorer"]["row_hidden"] = config["scorer"].get("row_hidden", 8) + 3
    (directory / "config.json").write_text(json.dumps(config))


def _drop_a_tensor(directory: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(directory / "model.safetensors"))
    state.pop(sorted(k for k in state if k.startswith("scorer."))[0])
    save_file(state, str(directory / "model.safetensors"))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": lambda d: _truncate(d / "model.safetensors"),
    "garbage": lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 1000),
    "huge-header": lambda d: (d / "model.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}"),
    "no-weights": lambda d: (d / "model.safetensors").unlink(),
    "config-not-json": lambda d: (d / "config.json").write_text("{not json"),
    "future-format": lambda d: _edit_json(d / "config.json", lite_format_version=99),
    "shape-mismatch": _widen_scorer,
    "missing-tensor": _drop_a_tensor,
    "no-tokenizer-json": lambda d: (d / "tokenizer.json").unlink(),
}

INDEX_DAMAGE: dict[str, Callable[[Path], None]] = {
    "meta-not-json": lambda d: (d / "pt_meta.json").write_text("{oops"),
    "vectors-truncated": lambda d: _truncate(d / "vectors.f16"),
    "pickled-docnos": lambda d: np.save(d / "docnos.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True),
    "other-artifact": lambda d: _edit_json(d / "pt_meta.json", type="dense_index", format="flex"),
}


# --- the cases ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One call with bad (or odd) input, and what must happen."""

    entry: str  #: public entry point, as users write it
    given: str  #: the input, in words
    outcome: str  #: what happens, in words (rendered into the docs)
    run: Callable[[Env], Any]
    raises: type[BaseException] | None = None
    match: str = ""  #: regex the error message must contain (what makes it clear)
    check: Callable[[Any], bool] | None = None  #: for a documented result
    open_issue: str = ""  #: what happens today instead, when that is a known bug (the case is xfail, strict)

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", f"{self.entry} {self.given}".lower()).strip("-")[:90]


def _empty_array(result: Any) -> bool:
    return isinstance(result, np.ndarray) and result.shape == (0,)


def _finite(values: Any, n: int) -> bool:
    array = np.asarray(values.tolist() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    return array.shape == (n,) and bool(np.isfinite(array).all())


def _empty_ranked_frame(frame: Any) -> bool:
    return len(frame) == 0 and {"score", "rank"} <= set(frame.columns)


def _ranked_frame(frame: Any) -> bool:
    return len(frame) == 2 * len(DOCUMENTS) and bool(np.isfinite(frame["score"]).all())


def _cli_run(lines: int) -> Callable[[tuple[int, str, int | None]], bool]:
    """Exit status 0 and a run file of this many lines."""
    return lambda result: result[0] == 0 and result[2] == lines


def _cli_error(pattern: str) -> Callable[[tuple[Any, ...]], bool]:
    """Exit status 2 and a one-line message matching ``pattern`` on stderr (no traceback)."""

    def check(result: tuple[Any, ...]) -> bool:
        status, stderr = result[:2]
        return status == 2 and "Traceback" not in stderr and re.search(pattern, stderr) is not None

    return check


def _candidates(*rows: dict[str, Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


GOOD_ROW = {"qid": "q1", "docid": "d0", "rank": 1, "score": 1.0, "text": "the cat sat on the mat"}
CHECKPOINT_KINDS = {
    "truncated": ("a truncated model.safetensors", "CheckpointError", r"truncated or corrupt"),
    "garbage": ("model.safetensors of zero bytes", "CheckpointError", r"truncated or corrupt"),
    "huge-header": ("a safetensors header claiming 2^62 bytes", "CheckpointError", r"truncated or corrupt"),
    "no-weights": ("no model.safetensors", "CheckpointError", r"has no model\.safetensors"),
    "config-not-json": ("config.json that is not JSON", "CheckpointError", r"not valid JSON"),
    "future-format": ("lite_format_version 99", "CheckpointError", r"format 99.*Upgrade"),
    "shape-mismatch": ("weights of another shape than config.json says", "CheckpointError", r"has shape"),
    "missing-tensor": ("a weight missing from the safetensors", "CheckpointError", r"missing \['scorer\."),
    "no-tokenizer-json": (
        "tokenizer_config.json but no tokenizer.json",
        "CheckpointError",
        r"knows only its special tokens",
    ),
}


def _checkpoint_cases() -> list[Case]:
    from lite_plugins.core import CheckpointError

    loaders: dict[str, Callable[[Env, Path], Any]] = {
        "LiteModel.from_pretrained": lambda env, path: _load_lite_model(path),
        "LiteCrossEncoder(path)": lambda env, path: _load_cross_encoder(path),
        "LiteReranker(path)": lambda env, path: _load_reranker(path),
    }
    cases = []
    for entry, load in loaders.items():
        cases.append(
            Case(
                entry,
                "a plain BERT folder (a checkpoint of another kind)",
                "refused, naming its model_type and how to start a LITE model from it",
                lambda env, load=load: load(env, env.bert),
                CheckpointError,
                r"not a LITE checkpoint \(model_type='bert'\).*from_encoder",
            )
        )
        for kind, (given, _, pattern) in CHECKPOINT_KINDS.items():
            cases.append(
                Case(
                    entry,
                    f"a checkpoint with {given}",
                    "refused before any weight is used",
                    lambda env, load=load, kind=kind: load(env, env.damaged(kind)),
                    CheckpointError,
                    pattern,
                )
            )
    return cases


def _load_lite_model(path: Path) -> Any:
    from lite_plugins.core import LiteModel

    return LiteModel.from_pretrained(path)


def _load_cross_encoder(path: Path) -> Any:
    from lite_plugins.sentence_transformers import LiteCrossEncoder

    return LiteCrossEncoder(str(path))


def _load_reranker(path: Path) -> Any:
    from lite_plugins.pyterrier import LiteReranker

    return LiteReranker(path)


def _stock_cross_encoder(path: Path) -> Any:
    from sentence_transformers import CrossEncoder

    import lite_plugins  # noqa: F401  (registers the LITE model type)

    return CrossEncoder(str(path))


def _build_cases() -> list[Case]:
    from pyterrier_alpha.validate import InputValidationError

    from lite_plugins.core import CheckpointError, TokenEmbeddings

    def tokens(n: int, length: int, dim: int) -> TokenEmbeddings:
        return TokenEmbeddings(torch.rand(n, length, dim), torch.ones(n, length, dtype=torch.bool))

    cases = [
        # --- LiteModel ------------------------------------------------------------------------
        Case("LiteModel.score", "no documents", "empty tensor", lambda env: env.model.score("q", []),
             check=lambda r: r.shape == (0,)),
        Case("LiteModel.score", "a list as the query", "TypeError naming the query",
             lambda env: env.model.score(["q"], ["d"]), TypeError, r"query must be a string"),
        Case("LiteModel.score", "one string instead of a list of documents", "TypeError: wrap it in a list",
             lambda env: env.model.score("q", "a document"), TypeError, r"single string; wrap it in a list"),
        Case("LiteModel.score", "None among the documents", "TypeError naming the position",
             lambda env: env.model.score("q", ["d", None]), TypeError, r"documents\[1\] must be a string"),
        Case("LiteModel.score", "a 10,000-word document", "truncated to document_length tokens; a finite score",
             lambda env: env.model.score("q", [LONG_TEXT]), check=lambda r: _finite(r, 1)),
        Case("LiteModel.score", "empty and blank strings", "scored like any text (only special tokens)",
             lambda env: env.model.score("", ["", "   "]), check=lambda r: _finite(r, 2)),
        Case("LiteModel.score_pairs", "3 queries, 2 documents", "ValueError: pairs must align",
             lambda env: env.model.score_pairs(["a", "b", "c"], ["x", "y"]), ValueError, r"pairs must align"),
        Case("LiteModel.score_embeddings", "32-d queries against 7-d documents",
             "ValueError naming both dimensions",
             lambda env: env.model.score_embeddings(tokens(1, 4, 32), tokens(2, 3, 7)),
             ValueError, r"dimension 32 != document token dimension 7"),
        Case("LiteModel.score_embeddings", "documents longer than the scorer's document_length",
             "ValueError naming the lengths the scorer takes",
             lambda env: env.model.score_embeddings(tokens(1, 4, 32), tokens(1, 40, 32)),
             ValueError, r"takes at most 8 x 16"),
        Case("LiteModel.score_embeddings", "NaN in stored vectors", "ValueError: S contains NaN or Inf",
             lambda env: env.model.score_embeddings(
                 tokens(1, 4, 32), TokenEmbeddings(torch.full((1, 3, 32), math.nan), torch.ones(1, 3, dtype=bool))),
             ValueError, r"NaN or Inf"),
        Case("LiteModel.from_pretrained", "a folder that does not exist", "CheckpointError: no checkpoint folder",
             lambda env: _load_lite_model(env.root / "nowhere"), CheckpointError, r"no checkpoint folder"),
        Case("LiteModel.from_pretrained", "a file instead of a folder", "CheckpointError: a checkpoint is a folder",
             lambda env: _load_lite_model(env.checkpoint / "config.json"), CheckpointError, r"is a folder"),
        Case("LiteModel.save_pretrained", "a non-empty folder that is not a LITE checkpoint",
             "FileExistsError; the folder is left untouched",
             lambda env: env.model.save_pretrained(env.bert), FileExistsError, r"not a LITE checkpoint; refusing"),
        # --- LiteCrossEncoder (sentence-transformers) -----------------------------------------
        Case("LiteCrossEncoder(path)", "a folder that does not exist",
             "CheckpointError: no checkpoint folder (no Hub lookup of a path)",
             lambda env: _load_cross_encoder(env.root / "nowhere"), CheckpointError, r"no checkpoint folder"),
        Case("LiteCrossEncoder(path)", "a file instead of a folder", "CheckpointError: a checkpoint is a folder",
             lambda env: _load_cross_encoder(env.checkpoint / "config.json"), CheckpointError, r"is a folder"),
        Case("LiteCrossEncoder.predict", "an empty list", "empty float array of shape (0,)",
             lambda env: env.cross_encoder.predict([]), check=_empty_array),
        Case("LiteCrossEncoder.predict", "a single string", "TypeError asking for (query, document) pairs",
             lambda env: env.cross_encoder.predict("a query"), TypeError, r"list of \(query, document\) string pairs"),
        Case("LiteCrossEncoder.predict", "a pair of three texts", "TypeError naming the pair",
             lambda env: env.cross_encoder.predict([("q", "d", "x")]), TypeError,
             r"pair 0 must be a \(query, document\)"),
        Case("LiteCrossEncoder.predict", "a number as the document", "TypeError naming pair and side",
             lambda env: env.cross_encoder.predict([("q", "d"), ("q", 3)]), TypeError,
             r"pair 1: the document must be a string"),
        Case("LiteCrossEncoder.predict", "a 10,000-word document", "truncated; one finite score",
             lambda env: env.cross_encoder.predict([("q", LONG_TEXT)]), check=lambda r: _finite(r, 1)),
        Case("LiteCrossEncoder.rank", "no documents", "empty list",
             lambda env: env.cross_encoder.rank("q", []), check=lambda r: r == []),
        Case("LiteCrossEncoder.rank", "one string instead of a list of documents", "TypeError: wrap it in a list",
             lambda env: env.cross_encoder.rank("q", "a document"), TypeError, r"wrap it in a list"),
        Case("CrossEncoder(path) (stock)", "a LITE checkpoint with a truncated model.safetensors",
             "CheckpointError (the LITE loader runs inside the stock class)",
             lambda env: _stock_cross_encoder(env.damaged("truncated")), CheckpointError, r"truncated or corrupt"),
        Case("CrossEncoder(path) (stock)", "a LITE checkpoint whose config.json is not JSON",
             "OSError from transformers: not a valid JSON file",
             lambda env: _stock_cross_encoder(env.damaged("config-not-json")), OSError, r"not a valid JSON"),
        # --- PyTerrier: LiteReranker ----------------------------------------------------------
        Case("LiteReranker.transform", "an empty result frame", "empty frame with score and rank columns",
             lambda env: env.reranker.transform(env.frame().iloc[:0]), check=_empty_ranked_frame),
        Case("LiteReranker.transform", "a list of dicts instead of a DataFrame", "TypeError naming the columns",
             lambda env: env.reranker.transform(env.frame().to_dict("records")), TypeError,
             r"expected a pandas DataFrame with columns qid, docno, query, text"),
        Case("LiteReranker.transform", "no text column", "InputValidationError naming 'text' and how to add it",
             lambda env: env.reranker.transform(env.frame(text=None)), InputValidationError,
             r"missing column\(s\) \['text'\].*get_text"),
        Case("LiteReranker.transform", "NaN as one text", "TypeError naming qid and docno of the row",
             lambda env: env.reranker.transform(env.frame(text=math.nan)), TypeError,
             r"column 'text' must hold strings; qid='q1' docno='d0'"),
        Case("LiteReranker.transform", "a 10,000-word text", "truncated; every row scored and ranked",
             lambda env: env.reranker.transform(env.frame(text=LONG_TEXT)), check=_ranked_frame),
        Case("LiteReranker(path)", "an integer instead of a model", "TypeError naming what it accepts",
             lambda env: _load_reranker(42), TypeError, r"expected a LiteModel or the path"),
        Case("LiteReranker(path)", "batch_size=0", "ValueError",
             lambda env: type(env.reranker)(env.model, batch_size=0), ValueError, r"positive int"),
        # --- PyTerrier: LiteIndex -------------------------------------------------------------
        Case("LiteIndex.indexer().index", "no documents", "an empty index (len 0) that loads",
             lambda env: _fresh_index(env, "empty").index([]), check=lambda index: len(index) == 0),
        Case("LiteIndex.indexer().index", "a record without 'text'", "KeyError naming the record and field",
             lambda env: _fresh_index(env, "bad").index([{"docno": "d0"}]), KeyError, r"document 0 lacks \['text'\]"),
        Case("LiteIndex.indexer().index", "a string instead of a record", "TypeError naming the record",
             lambda env: _fresh_index(env, "bad").index(["just text"]), TypeError,
             r"document 0 must be a dict with 'docno' and 'text'"),
        Case("LiteIndex.indexer().index", "an integer docno", "TypeError: docno and text must be strings",
             lambda env: _fresh_index(env, "bad").index([{"docno": 7, "text": "x"}]), TypeError, r"must be strings"),
        Case("LiteIndex.indexer().index", "a repeated docno", "ValueError: docnos must be unique",
             lambda env: _fresh_index(env, "bad").index(env.records + env.records[:1]), ValueError, r"unique"),
        Case("LiteIndex.indexer().index", "a 10,000-word text", "stores at most document_length vectors",
             lambda env: _fresh_index(env, "long").index([{"docno": "d0", "text": LONG_TEXT}]),
             check=lambda index: int(np.diff(np.load(index.path / "offsets.npy"))[0]) <= 16),
        Case("LiteIndex.indexer().index", "mode='create' over an existing index",
             "FileExistsError pointing to mode='overwrite'; the index is untouched",
             lambda env: env.index.indexer(env.model).index(env.records), FileExistsError, r"mode='overwrite'"),
        Case("LiteIndex.reranker().transform", "a docno that is not in the index",
             "KeyError naming the docno", lambda env: env.index.reranker(env.model).transform(env.frame(docno="zz")),
             KeyError, r"not in LiteIndex.*'zz'"),
        Case("LiteIndex.reranker().transform", "no query column", "InputValidationError naming 'query'",
             lambda env: env.index.reranker(env.model).transform(env.frame(query=None)), InputValidationError,
             r"missing column\(s\) \['query'\]"),
        Case("LiteIndex.reranker().transform", "an empty result frame", "empty frame with score and rank columns",
             lambda env: env.index.reranker(env.model).transform(env.frame().iloc[:0]), check=_empty_ranked_frame),
        Case("LiteIndex.reranker()", "a model with another encoder than the index was built with",
             "ValueError: rebuild the index or pass check_encoder=False",
             lambda env: env.index.reranker(_other_encoder_model(env)), ValueError, r"another encoder"),
        Case("LiteIndex.reranker()", "a folder with no index", "FileNotFoundError: build it with .indexer(model)",
             lambda env: _index_at(env, "nothing").reranker(env.model), FileNotFoundError, r"build it with"),
        Case("LiteIndex(path)", "pt_meta.json that is not JSON", "ValueError naming the file",
             lambda env: len(env.damaged_index("meta-not-json")), ValueError, r"pt_meta\.json"),
        Case("LiteIndex(path)", "a truncated vectors.f16", "ValueError naming the file and the sizes",
             lambda env: len(env.damaged_index("vectors-truncated")), ValueError, r"vectors\.f16"),
        Case("LiteIndex(path)", "docnos.npy holding a pickled object array",
             "ValueError naming the file: memory-mapped loading never unpickles",
             lambda env: env.damaged_index("pickled-docnos").docnos(), ValueError, r"docnos\.npy is unreadable"),
        Case("LiteIndex(path)", "another artifact's folder", "ValueError naming both artifact types",
             lambda env: len(env.damaged_index("other-artifact")), ValueError, r"dense_index\.flex artifact"),
        # --- PyLate functions -----------------------------------------------------------------
        Case("lite_plugins.pylate.lite_scores", "no queries", "empty [0, Nd] tensor",
             lambda env: _pylate().lite_scores(torch.zeros(0, 4, 8), torch.rand(3, 5, 8), scorer=env.scorer),
             check=lambda r: tuple(r.shape) == (0, 3)),
        Case("lite_plugins.pylate.lite_scores", "a string as the queries", "TypeError naming the accepted types",
             lambda env: _pylate().lite_scores("abc", torch.rand(2, 5, 8), scorer=env.scorer), TypeError,
             r"queries_embeddings must be a torch\.Tensor, a numpy array or a list"),
        Case("lite_plugins.pylate.lite_scores", "8-d queries against 16-d documents",
             "ValueError naming both dimensions",
             lambda env: _pylate().lite_scores(torch.rand(1, 4, 8), torch.rand(2, 5, 16), scorer=env.scorer),
             ValueError, r"dimension 8 != document token dimension 16"),
        Case("lite_plugins.pylate.lite_scores", "a mask of the wrong shape", "ValueError naming both shapes",
             lambda env: _pylate().lite_scores(torch.rand(1, 4, 8), torch.rand(2, 5, 8), torch.ones(1, 3),
                                               scorer=env.scorer),
             ValueError, r"queries mask has shape \(1, 3\), expected \(1, 4\)"),
        Case("lite_plugins.pylate.lite_scores", "documents longer than the scorer's document_length",
             "ValueError naming the lengths the scorer takes",
             lambda env: _pylate().lite_scores(torch.rand(1, 4, 8), torch.rand(2, 50, 8), scorer=env.scorer),
             ValueError, r"takes at most 8 x 16"),
        Case("lite_plugins.pylate.lite_scores", "a scorer that is not LITE", "TypeError naming what it accepts",
             lambda env: _pylate().lite_scores(torch.rand(1, 4, 8), torch.rand(2, 5, 8), scorer="maxsim"),
             TypeError, r"scorer must be a lite_plugins LiteScorer"),
        Case("lite_plugins.pylate.lite_kd_scores", "3-d documents (no candidate axis)",
             "ValueError naming the expected shape",
             lambda env: _pylate().lite_kd_scores(torch.rand(2, 4, 8), torch.rand(2, 5, 8), scorer=env.scorer),
             ValueError, r"\[batch_size, n_candidates, document_tokens, dim\]"),
        Case("lite_plugins.pylate.lite_scores_pairwise", "2 queries, 1 document", "ValueError naming both counts",
             lambda env: _pylate().lite_scores_pairwise([torch.rand(4, 8)] * 2, [torch.rand(3, 8)],
                                                        scorer=env.scorer),
             ValueError, r"2 vs 1"),
        Case("lite_plugins.pylate.lite_scores_pairwise", "empty lists", "empty tensor",
             lambda env: _pylate().lite_scores_pairwise([], [], scorer=env.scorer), check=lambda r: r.shape == (0,)),
        Case("lite_plugins.pylate.rerank", "a query with no candidates", "an empty result list for that query",
             lambda env: _pylate().rerank([[]], [torch.rand(4, 8)], [[]], scorer=env.scorer),
             check=lambda r: r == [[]]),
        Case("lite_plugins.pylate.rerank", "2 id lists for 1 query", "ValueError: one list per query",
             lambda env: _pylate().rerank([["a"], ["b"]], [torch.rand(4, 8)], [[torch.rand(3, 8)]],
                                          scorer=env.scorer),
             ValueError, r"must align \(one list per query\)"),
        Case("lite_plugins.pylate.rerank", "a 1-d query embedding", "ValueError naming the expected shape",
             lambda env: _pylate().rerank([["a"]], [torch.rand(8)], [[torch.rand(3, 8)]], scorer=env.scorer),
             ValueError, r"\[query_tokens, dim\], got \(8,\)"),
        Case("lite_plugins.pylate.rerank", "candidates of different dimensions", "ValueError listing the shapes",
             lambda env: _pylate().rerank([["a", "b"]], [torch.rand(4, 8)], [[torch.rand(3, 8), torch.rand(3, 6)]],
                                          scorer=env.scorer),
             ValueError, r"one dim, got shapes \[\(3, 8\), \(3, 6\)\]"),
        Case("lite_plugins.pylate.rerank", "NaN in a candidate's vectors", "ValueError: S contains NaN or Inf",
             lambda env: _pylate().rerank([["a"]], [torch.rand(4, 8)], [[torch.full((3, 8), math.nan)]],
                                          scorer=env.scorer),
             ValueError, r"NaN or Inf"),
        Case("lite_plugins.pylate.LiteScores", "mode='pairwise'", "ValueError naming the modes",
             lambda env: _pylate().LiteScores(env.scorer, mode="pairwise"), ValueError, r"'contrastive' or 'kd'"),
        Case("lite_plugins.pylate.LiteRetriever", "an object that is not a PyLate index", "TypeError",
             lambda env: _pylate().LiteRetriever(index=object(), scorer=env.scorer), TypeError,
             r"not a PyLate index"),
        Case("LiteColBERT.score", "no documents", "empty tensor",
             lambda env: env.colbert.score("q", []), check=lambda r: r.shape == (0,)),
        Case("LiteColBERT.score", "a 10,000-word document", "truncated by PyLate; a finite score",
             lambda env: env.colbert.score("q", [LONG_TEXT]), check=lambda r: _finite(r, 1)),
        Case("LiteColBERT.from_pretrained", "a core LITE checkpoint (another kind)",
             "CheckpointError: not a LiteColBERT folder",
             lambda env: _pylate().LiteColBERT.from_pretrained(env.checkpoint), CheckpointError,
             r"not a LiteColBERT folder"),
        Case("LiteColBERT.from_pretrained", "a truncated lite_scorer/model.safetensors",
             "CheckpointError naming the scorer weights",
             lambda env: _pylate().LiteColBERT.from_pretrained(env.colbert_damaged()), CheckpointError,
             r"cannot load the scorer weights"),
        # --- Model2Vec ------------------------------------------------------------------------
        Case("StaticTokenEncoder.from_pretrained", "a folder with no Model2Vec model", "OSError naming the folder",
             lambda env: _static_from(env.root / "files"), OSError, r"not a loadable Model2Vec local folder"),
        Case("StaticTokenEncoder.from_static_model", "a LiteModel instead of a StaticModel", "TypeError",
             lambda env: _static_encoder_class().from_static_model(env.model), TypeError, r"StaticModel"),
        Case("LiteModel over StaticTokenEncoder .score", "only words the vocabulary lacks",
             "a finite score (unknown tokens are the [UNK] vector)",
             lambda env: env.static_lite.score("zzzz qqqq", ["xxxx"]), check=lambda r: _finite(r, 1)),
        Case("LiteModel over StaticTokenEncoder .score", "no documents", "empty tensor",
             lambda env: env.static_lite.score("q", []), check=lambda r: r.shape == (0,)),
        # --- command line ---------------------------------------------------------------------
        Case("lite-plugins rerank", "a --queries file that does not exist", "exit 2, 'not found', no traceback",
             lambda env: env.cli("rerank", "--queries", env.root / "none.tsv", "--candidates", env.root / "none",
                                 "--output", env.root / "run.txt"),
             check=_cli_error(r"--queries file not found")),
        Case("lite-plugins rerank", "--model pointing to a plain BERT folder", "exit 2, 'not a LITE checkpoint'",
             lambda env: env.cli_rerank(_candidates(GOOD_ROW), model=env.bert),
             check=_cli_error(r"not a LITE checkpoint")),
        Case("lite-plugins rerank", "--model with a truncated model.safetensors", "exit 2, 'truncated or corrupt'",
             lambda env: env.cli_rerank(_candidates(GOOD_ROW), model=env.damaged("truncated")),
             check=_cli_error(r"truncated or corrupt")),
        Case("lite-plugins rerank", "a candidates line that is not JSON", "exit 2 naming file and line",
             lambda env: env.cli_rerank(_candidates(GOOD_ROW) + "{oops\n"),
             check=_cli_error(r"candidates\.jsonl:2: not valid JSON")),
        Case("lite-plugins rerank", "a candidate without 'text'", "exit 2 naming the missing field",
             lambda env: env.cli_rerank(_candidates({k: v for k, v in GOOD_ROW.items() if k != "text"})),
             check=_cli_error(r"candidates\.jsonl:1: missing field\(s\) \['text'\]")),
        Case("lite-plugins rerank", "an empty candidates file", "exit 0, an empty run file",
             lambda env: env.cli_rerank(""), check=_cli_run(0)),
        Case("lite-plugins rerank", "a candidate qid with no query text", "exit 2 naming the qids",
             lambda env: env.cli_rerank(_candidates({**GOOD_ROW, "qid": "q9"})), check=_cli_error(r"q9")),
        Case("lite-plugins rerank", "a 10,000-word candidate text", "exit 0 (truncated), one run line",
             lambda env: env.cli_rerank(_candidates({**GOOD_ROW, "text": LONG_TEXT})), check=_cli_run(1)),
        Case("lite-plugins evaluate", "a --run file that does not exist", "exit 2, 'not found'",
             lambda env: env.cli("evaluate", "--run", env.root / "none.txt",
                                 "--qrels", env.file("q.txt", "q1 0 d0 1\n")),
             check=_cli_error(r"--run file not found")),
        Case("lite-plugins evaluate", "a run line with 3 fields", "exit 2 naming file and line",
             lambda env: env.cli("evaluate", "--run", env.file("bad.run", "q1 Q0 d0\n"),
                                 "--qrels", env.file("q.txt", "q1 0 d0 1\n")),
             check=_cli_error(r"bad\.run:1: expected 'qid Q0 docid rank score tag'")),
    ]  # fmt: skip
    return cases + _checkpoint_cases()


def _pylate() -> Any:
    import lite_plugins.pylate as module

    return module


def _static_encoder_class() -> Any:
    from lite_plugins.model2vec import StaticTokenEncoder

    return StaticTokenEncoder


def _static_from(path: Path) -> Any:
    path.mkdir(exist_ok=True)
    return _static_encoder_class().from_pretrained(path)


def _fresh_index(env: Env, name: str) -> Any:
    from lite_plugins.pyterrier import LiteIndex

    target = env.root / "fresh" / name
    shutil.rmtree(target, ignore_errors=True)
    return LiteIndex(target).indexer(env.model)


def _index_at(env: Env, name: str) -> Any:
    from lite_plugins.pyterrier import LiteIndex

    return LiteIndex(env.root / "fresh" / name)


def _other_encoder_model(env: Env) -> Any:
    from lite_plugins.core import LiteModel

    return LiteModel.from_encoder(env.bert, "separable", query_length=8, document_length=16, projection_dim=8, seed=1)


CASES: list[Case] = _build_cases()


# --- the tests ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_bert_path: Path) -> Env:
    pytest.importorskip("pylate")
    pytest.importorskip("pyterrier")
    pytest.importorskip("model2vec")
    return Env(tmp_path_factory.mktemp("reliability"), tiny_bert_path)


def _params(cases: list[Case]) -> list[Any]:
    strict_xfail = pytest.mark.xfail(strict=True, raises=(AssertionError, Exception))
    return [pytest.param(case, id=case.id, marks=strict_xfail if case.open_issue else ()) for case in cases]


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input_gives_a_clear_error_or_a_documented_result(case: Case, env: Env) -> None:
    if case.raises is not None:
        with pytest.raises(case.raises) as caught:
            case.run(env)
        assert re.search(case.match, str(caught.value), flags=re.S), f"unclear message: {caught.value}"
    else:
        result = case.run(env)
        assert case.check is not None and case.check(result), f"unexpected result: {result!r:.300}"


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_docs_are_generated_from_these_cases() -> None:
    assert DOCS_PATH.is_file(), "docs/reliability.md is missing: run python tests/test_reliability.py --write-docs"
    assert DOCS_PATH.read_text(encoding="utf-8") == render_docs(), (
        "docs/reliability.md is out of date: run python tests/test_reliability.py --write-docs"
    )


# --- the docs ----------------------------------------------------------------------------------
def _outcome(case: Case) -> str:
    text = case.outcome
    if case.raises is not None:
        name = case.raises.__name__
        named = re.match(rf"{name}(:?)\s*(.*)", case.outcome)
        text = f"`{name}`{named[1]} {named[2]}" if named else f"`{name}`: {case.outcome}"
    return f"{text}. **Open:** {case.open_issue}" if case.open_issue else text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_docs() -> str:
    """docs/reliability.md: the table of :data:`CASES`, plus the other reliability guarantees."""
    import test_reliability_loading
    import test_reliability_threads
    import test_reliability_writes

    sections = [
        module.SUMMARY for module in (test_reliability_writes, test_reliability_threads, test_reliability_loading)
    ]

    lines = [
        "# Reliability",
        "",
        "<!-- Generated by tests/test_reliability.py: do not edit. Regenerate with",
        "     python tests/test_reliability.py --write-docs -->",
        "",
        "A re-ranker sits in someone's search path: odd input must give a clear error (or a documented",
        "result), an interrupted write must not lose an index or a checkpoint, memory must stay bounded, and",
        "loading a checkpoint must never run code from it. Every row below is a test case",
        "(`tests/test_reliability.py`): the error class and the pattern its message must contain are asserted",
        "(CLI rows: exit status 2 and that pattern on stderr, no traceback).",
        "",
        "## What each public entry point does with bad input",
        "",
    ]
    entries: dict[str, list[Case]] = {}
    for case in CASES:
        entries.setdefault(case.entry, []).append(case)
    for entry, cases in entries.items():
        lines += [f"### `{entry}`", "", "| input | what happens | the message matches |", "|---|---|---|"]
        lines += [
            f"| {_cell(case.given)} | {_cell(_outcome(case))} | {_cell(f'`{case.match}`') if case.match else ''} |"
            for case in cases
        ]
        lines.append("")
    for title, body in sections:
        lines += [f"## {title}", "", *body, ""]
    lines += memory_section(MEMORY_RESULTS)
    return "\n".join(lines).rstrip() + "\n"


def memory_section(path: Path) -> list[str]:
    """The peak-RSS table from ``benchmarks/memory.py``'s results, when they exist."""
    lines = ["## Bounded memory (`benchmarks/memory.py`)", ""]
    if not path.is_file():
        return [*lines, "No results yet: run `python benchmarks/memory.py`."]
    report = json.loads(path.read_text(encoding="utf-8"))
    machine = report["machine"]
    lines += [
        f"`{report['command']}` ({machine['cpus']} CPUs, {machine['threads']} torch threads). Each row is a fresh "
        "process; *extra* is the peak RSS during the work minus the RSS before it (model and input loaded). "
        "Re-ranking goes through `LiteReranker.transform` (documents encoded `batch_size` at a time, one "
        "query), indexing through `LiteIndex.indexer(chunk_size=1024)` (vectors streamed to disk). "
        "`static` is MiniLM's token-embedding table as a static encoder (same vocabulary and 384-d vectors, "
        "no transformer layers), used where the real MiniLM is too slow on a shared 2-core CPU. Under glibc's "
        "default allocator, freed per-batch buffers stay in the process heap, so *extra* grows with the number "
        "of batches although no batch is kept (`--mmap-threshold 131072` returns them to the OS).",
        "",
        "| task | encoder | items | RSS before (MiB) | peak RSS (MiB) | extra (MiB) | items/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['task']} | {r['encoder']} | {r['size']:,} | {r['rss_before_mib']:.0f} | {r['peak_rss_mib']:.0f} "
        f"| {r['extra_mib']:.0f} | {r['per_second']:.0f} |"
        for r in report["rows"]
    ]
    return lines


def _write_docs() -> None:
    DOCS_PATH.write_text(render_docs(), encoding="utf-8")
    print(f"wrote {DOCS_PATH.relative_to(REPO_ROOT)} ({len(CASES)} cases)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-docs"]:
        sys.exit("usage: python tests/test_reliability.py --write-docs")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _write_docs()
