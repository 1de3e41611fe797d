"""Thread safety: concurrent calls from threads give the sequential results, and never raise.

Inference is read-only on the model (no_grad, eval mode), so torch modules are safe to share. The
one shared mutable object is the Hugging Face fast tokenizer: every call with ``truncation=True``
reconfigures the Rust tokenizer, which raises ``RuntimeError: Already borrowed`` when another thread is
inside it (huggingface/tokenizers#537). Query and document texts are truncated to different lengths,
so concurrent query and document encoding hits exactly that; these tests mix both on purpose.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lite_plugins.core import LiteModel

THREADS = 6
ROUNDS = 4
QUERIES = ["what is late interaction ranking", "cat on a mat", "money in the river bank", "light energy"]

SUMMARY = (
    "Thread safety (`tests/test_reliability_threads.py`)",
    [
        f"{THREADS} threads x {ROUNDS} rounds call the same model object at once, each with its own inputs "
        "(queries and documents of different lengths, so tokenization with two truncation lengths interleaves); "
        "every result must equal the sequential one (within 1e-5) and no call may raise:",
        "",
        "- `LiteModel.score` and `LiteModel.score_pairs`",
        "- `LiteCrossEncoder.predict` and `.rank`",
        "- `LiteReranker.transform` and `LiteIndex.reranker().transform`",
        "",
        "Inference only reads the model. The Hugging Face fast tokenizer is not thread-safe when its "
        "truncation length changes between calls (huggingface/tokenizers#537: `RuntimeError: Already "
        "borrowed`), so `TransformerTokenEncoder.tokenize` holds a lock around the tokenizer call. "
        "Training, `save_pretrained`, `.to(device)` and `freeze_encoder` change the model: do not run them "
        "while other threads score with it. `LiteCrossEncoder.predict(device=...)` moves the model, so give "
        "the device once, at construction, when several threads share one.",
    ],
)


def documents_for(thread: int, corpus: list[str]) -> list[str]:
    """Different documents (and lengths) per thread: long ones get truncated, short ones not."""
    rotated = corpus[thread % len(corpus) :] + corpus[: thread % len(corpus)]
    return [f"{text} " * (1 + (i + thread) % 9) for i, text in enumerate(rotated)]


def assert_same_under_threads(work: Callable[[int], Any], compare: Callable[[Any, Any], bool]) -> None:
    """Run ``work(thread)`` sequentially, then from THREADS threads ROUNDS times; results must agree."""
    expected = [work(thread) for thread in range(THREADS)]
    start = threading.Barrier(THREADS)

    def threaded(thread: int) -> list[Any]:
        start.wait()
        return [work(thread) for _ in range(ROUNDS)]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(threaded, range(THREADS)))  # re-raises the first error of any thread
    for thread, rounds in enumerate(results):
        for result in rounds:
            assert compare(result, expected[thread]), (
                f"thread {thread} got {result!r:.200}, expected {expected[thread]!r:.200}"
            )


def close(a: Any, b: Any) -> bool:
    return np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=1e-5)


@pytest.fixture(scope="module")
def model(tiny_bert_path: Path) -> LiteModel:
    return LiteModel.from_encoder(tiny_bert_path, "separable", query_length=8, document_length=16, seed=0).eval()


def test_lite_model_score_from_threads(model: LiteModel, corpus: list[str]) -> None:
    assert_same_under_threads(
        lambda t: model.score(QUERIES[t % len(QUERIES)], documents_for(t, corpus), batch_size=3).tolist(), close
    )
    assert_same_under_threads(
        lambda t: model.score_pairs(
            [QUERIES[(t + i) % len(QUERIES)] for i in range(len(corpus))], documents_for(t, corpus), batch_size=4
        ).tolist(),
        close,
    )


def test_cross_encoder_predict_and_rank_from_threads(model: LiteModel, corpus: list[str]) -> None:
    pytest.importorskip("sentence_transformers")
    from lite_plugins.sentence_transformers import LiteCrossEncoder

    cross_encoder = LiteCrossEncoder.from_lite_model(model, device="cpu")

    def pairs(thread: int) -> list[tuple[str, str]]:
        return [(QUERIES[(thread + i) % len(QUERIES)], text) for i, text in enumerate(documents_for(thread, corpus))]

    assert_same_under_threads(lambda t: cross_encoder.predict(pairs(t), batch_size=3, show_progress_bar=False), close)
    assert_same_under_threads(
        lambda t: [(r["corpus_id"], r["score"]) for r in cross_encoder.rank(QUERIES[t % 4], documents_for(t, corpus))],
        lambda a, b: [i for i, _ in a] == [i for i, _ in b] and close([s for _, s in a], [s for _, s in b]),
    )


def test_pyterrier_rerankers_from_threads(model: LiteModel, corpus: list[str], tmp_path: Path) -> None:
    pytest.importorskip("pyterrier")
    import pandas as pd

    from lite_plugins.pyterrier import LiteIndex, LiteReranker

    records = [{"docno": f"d{i}", "text": text} for i, text in enumerate(corpus)]
    index = LiteIndex(tmp_path / "index.lite").indexer(model).index(records)
    reranker, index_reranker = LiteReranker(model, batch_size=3), index.reranker(model, batch_size=3)

    def frame(thread: int) -> pd.DataFrame:
        texts = documents_for(thread, corpus)
        return pd.DataFrame(
            [
                {"qid": f"q{q}", "query": QUERIES[(thread + q) % 4], "docno": f"d{i}", "text": texts[i]}
                for q in range(2)
                for i in range(len(corpus))
            ]
        )

    def ranked(result: pd.DataFrame) -> list[tuple[str, str, float]]:
        return list(zip(result["qid"], result["docno"], result["score"], strict=True))

    def same(a: list[tuple[str, str, float]], b: list[tuple[str, str, float]]) -> bool:
        return [r[:2] for r in a] == [r[:2] for r in b] and close([r[2] for r in a], [r[2] for r in b])

    assert_same_under_threads(lambda t: ranked(reranker.transform(frame(t))), same)
    assert_same_under_threads(lambda t: ranked(index_reranker.transform(frame(t))), same)


def test_concurrent_query_and_document_tokenization(model: LiteModel, corpus: list[str]) -> None:
    """The narrowest reproduction: two truncation lengths, one fast tokenizer, many threads."""
    encoder = model.encoder

    def work(thread: int) -> list[list[int]]:
        side = "query" if thread % 2 else "document"
        features = encoder.tokenize(documents_for(thread, corpus) * 20, side)
        return features["input_ids"].tolist()

    assert_same_under_threads(work, lambda a, b: a == b)


def test_torch_inference_does_not_need_a_lock(model: LiteModel, corpus: list[str]) -> None:
    """Scoring stored vectors (no tokenizer involved) from threads gives the sequential scores."""
    queries = model.encode_queries(QUERIES)
    documents = model.encode_documents(corpus)
    assert_same_under_threads(lambda t: model.score_embeddings(queries[t % 4], documents, chunk_size=2).tolist(), close)
    assert torch.isfinite(model.score_embeddings(queries, documents)).all()
