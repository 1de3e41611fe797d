"""PyLate adapter: score functions, rerank, Voyager/PLAID retrieval, conversion, training (tiny ColBERT)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

pytest.importorskip("pylate")

from pylate import indexes, losses, models
from pylate import rank as pylate_rank
from pylate import retrieve as pylate_retrieve

from lite_plugins.core import LiteModel, MaxSim, SeparableLite
from lite_plugins.pylate import (
    LiteColBERT,
    LiteRetriever,
    LiteScores,
    lite_kd_scores,
    lite_scores,
    lite_scores_pairwise,
    plaid_method,
    plaid_token_scores,
    rerank,
)

QUERIES = ["what is late interaction ranking?", "cat on a mat", "money in the river bank, or not"]
EXTRA_DOCS = ["what? is, a cat!", "..."]  # punctuation is skiplisted; the second has no text tokens left


@pytest.fixture(scope="module")
def colbert(tiny_bert_path: Path) -> models.ColBERT:
    torch.manual_seed(0)
    return models.ColBERT(
        model_name_or_path=str(tiny_bert_path),
        embedding_size=16,
        query_length=8,
        document_length=16,
        device="cpu",
    )


@pytest.fixture(scope="module")
def lite(colbert: models.ColBERT) -> LiteColBERT:
    return LiteColBERT.from_colbert(colbert, scorer="separable", seed=0, row_hidden=24, column_hidden=12).eval()


@pytest.fixture(scope="module")
def documents(corpus: list[str]) -> list[str]:
    return list(corpus) + EXTRA_DOCS


def _padded(n: int, length: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (n,), generator=generator)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    vectors = torch.nn.functional.normalize(torch.randn(n, length, dim, generator=generator), dim=-1)
    return vectors * mask[..., None], mask


# --- score functions ---------------------------------------------------------------------------
def test_lite_scores_equal_core_and_infer_masks(lite: LiteColBERT) -> None:
    q, qm = _padded(2, 8, seed=1)
    d, dm = _padded(5, 16, seed=2)
    core = lite.scorer.score(q, d, qm, dm, pairing="all")
    assert torch.allclose(lite_scores(q, d, qm, dm, scorer=lite), core, atol=1e-6)
    # Masks inferred from PyLate's zero padding give the same scores; lists of unpadded items too.
    assert torch.allclose(lite_scores(q, d, scorer=lite.scorer), core, atol=1e-6)
    assert torch.allclose(lite_scores(q, [v[m] for v, m in zip(d, dm, strict=True)], scorer=lite), core, atol=1e-6)
    # Padding matters to LITE, so ignoring the masks would change the scores (the test can fail).
    unmasked = lite.scorer.score(q, d, pairing="all")
    assert not torch.allclose(unmasked, core, atol=1e-4)


def test_kd_pairwise_and_contrastive_layouts(lite: LiteColBERT) -> None:
    q, qm = _padded(3, 8, seed=3)
    d, dm = _padded(6, 16, seed=4)
    groups, group_masks = d.view(3, 2, 16, 16), dm.view(3, 2, 16)
    kd = lite_kd_scores(q, groups, qm, group_masks, scorer=lite)
    assert torch.allclose(kd, lite.scorer.score(q, groups, qm, group_masks, pairing="grouped"), atol=1e-6)
    everything = lite_scores(q, d, qm, dm, scorer=lite)
    contrastive = LiteScores(lite)(q, groups, qm, group_masks)
    assert contrastive.shape == (3, 6) and torch.allclose(contrastive, everything, atol=1e-6)
    # Query i's own group sits at columns i*N .. i*N+N-1, as in PyLate's ColBERTScores.
    own = torch.stack([contrastive[i, 2 * i : 2 * i + 2] for i in range(3)])
    assert torch.allclose(own, kd, atol=1e-6)
    assert torch.allclose(LiteScores(lite, mode="kd")(q, groups, qm, group_masks), kd, atol=1e-6)
    pairs = lite_scores_pairwise(
        [v[m] for v, m in zip(q, qm, strict=True)],
        [v[m] for v, m in zip(d[:3], dm[:3], strict=True)],
        scorer=lite,
    )
    assert torch.allclose(pairs, everything.diagonal(), atol=1e-6)


def test_document_mask_holes_are_compacted(lite: LiteColBERT) -> None:
    q, qm = _padded(1, 8, seed=5)
    d, _ = _padded(1, 6, seed=6)
    d = torch.nn.functional.normalize(torch.randn(1, 6, 16), dim=-1)
    holes = torch.tensor([[True, False, True, True, False, True]])
    compacted = d[holes][None]
    assert torch.allclose(
        lite_scores(q, d, qm, holes, scorer=lite), lite_scores(q, compacted, qm, scorer=lite), atol=1e-6
    )


def test_score_functions_reject_bad_input(lite: LiteColBERT) -> None:
    q, _ = _padded(2, 8)
    with pytest.raises(TypeError, match="LiteScorer"):
        lite_scores(q, q, scorer="maxsim")
    with pytest.raises(ValueError, match="n_candidates"):
        lite_kd_scores(q, torch.rand(2, 5, 16), scorer=lite)
    with pytest.raises(ValueError, match="mode"):
        LiteScores(lite, mode="pairwise")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most"):  # longer than the scorer's fixed lengths
        lite_scores(q, torch.rand(1, 40, 16), scorer=lite)
    assert lite_scores(q, torch.zeros(0, 4, 16), scorer=lite).shape == (2, 0)


# --- rerank ------------------------------------------------------------------------------------
def test_rerank_with_maxsim_matches_pylate(colbert: models.ColBERT, documents: list[str]) -> None:
    queries = colbert.encode(QUERIES, is_query=True, show_progress_bar=False)
    docs = colbert.encode(documents[:7], is_query=False, show_progress_bar=False)
    ids = [[f"d{i}" for i in range(7)]] * len(QUERIES)
    ours = rerank(ids, queries, [docs] * len(QUERIES), scorer=MaxSim())
    theirs = pylate_rank.rerank(ids, queries, [docs] * len(QUERIES))
    for mine, reference in zip(ours, theirs, strict=True):
        assert [r["id"] for r in mine] == [r["id"] for r in reference]
        assert [r["score"] for r in mine] == pytest.approx([r["score"] for r in reference], abs=1e-4)


def test_rerank_orders_by_lite_scores(lite: LiteColBERT, documents: list[str]) -> None:
    queries = lite.encode_queries(QUERIES)
    docs = lite.encode_documents(documents)
    assert docs[-1].shape[0] == 3  # "..." keeps only [CLS] [D] [SEP]
    ids = [list(range(len(documents)))] * len(QUERIES)
    ranked = rerank(ids, queries, [docs] * len(QUERIES), scorer=lite)
    for query_text, result in zip(QUERIES, ranked, strict=True):
        expected = lite.score(query_text, documents)
        assert [r["id"] for r in result] == torch.argsort(expected, descending=True, stable=True).tolist()
        assert [r["score"] for r in result] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-5)


def test_rerank_empty_inputs_and_tokenless_documents(lite: LiteColBERT) -> None:
    assert rerank([], [], [], scorer=lite) == []
    query = lite.encode_queries(["cat"])[0]
    assert rerank([[]], [query], [[]], scorer=lite) == [[]]
    result = rerank([["empty", "cat"]], [query], [[torch.zeros(0, 16), lite.encode_documents(["cat"])[0]]], scorer=lite)
    assert {r["id"] for r in result[0]} == {"empty", "cat"}
    assert all(torch.isfinite(torch.tensor(r["score"])) for r in result[0])
    with pytest.raises(ValueError, match="align"):
        rerank([["a"]], [query, query], [[query]], scorer=lite)


# --- conversion and folders --------------------------------------------------------------------
def test_conversion_gives_identical_vectors_and_scores(lite: LiteColBERT, documents: list[str], tmp_path: Path) -> None:
    long_text = " ".join(["the cat sat on the mat"] * 20)
    texts = [*documents, long_text]
    core = lite.to_lite_model()
    # Token vectors: what PyLate stores == what the core encoder yields (skiplist, prefixes, truncation).
    pylate_docs = lite.encode_documents(texts)
    core_docs = core.encode_documents(texts).unpadded()
    for ours, theirs in zip(core_docs, pylate_docs, strict=True):
        assert ours.shape == theirs.shape
        assert torch.allclose(ours, theirs, atol=1e-5)
    pylate_queries = lite.encode_queries([*QUERIES, long_text])
    core_queries = core.encode_queries([*QUERIES, long_text])
    assert core_queries.mask.all() and core_queries.embeddings.shape[1] == 8  # [MASK] expansion kept
    assert torch.allclose(core_queries.embeddings, torch.stack(pylate_queries), atol=1e-5)
    # Scores, also after a save/load of the core checkpoint.
    core.save_pretrained(tmp_path / "core")
    reloaded = LiteModel.from_pretrained(tmp_path / "core")
    for query in QUERIES:
        expected = lite.score(query, texts)
        assert torch.allclose(core.score(query, texts), expected, atol=1e-5)
        assert torch.allclose(reloaded.score(query, texts), expected, atol=1e-5)


def test_lite_colbert_folder_round_trip(lite: LiteColBERT, documents: list[str], tmp_path: Path) -> None:
    folder = lite.save_pretrained(tmp_path / "colbert-lite")
    assert (folder / "lite_scorer" / "model.safetensors").is_file() and (folder / "modules.json").is_file()
    loaded = LiteColBERT.from_pretrained(folder)
    assert isinstance(loaded.scorer, SeparableLite) and loaded.scorer.row_hidden == 24
    assert torch.allclose(loaded.score(QUERIES[0], documents), lite.score(QUERIES[0], documents), atol=1e-5)
    with pytest.raises(ValueError, match="not a LiteColBERT"):
        LiteColBERT.from_pretrained(tmp_path)


def test_lite_colbert_rejects_small_scorer(colbert: models.ColBERT) -> None:
    with pytest.raises(ValueError, match="larger scorer"):
        LiteColBERT(colbert, SeparableLite(query_length=4, document_length=8))
    with pytest.raises(TypeError):
        LiteColBERT(colbert, torch.nn.Linear(2, 2))  # type: ignore[arg-type]


# --- retrieval ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoded(lite: LiteColBERT, documents: list[str]) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor]]:
    ids = [f"doc{i}" for i in range(len(documents))]
    return ids, lite.encode_documents(documents), lite.encode_queries(QUERIES)


def test_voyager_retrieval_end_to_end(lite: LiteColBERT, encoded, tmp_path: Path) -> None:
    ids, docs, queries = encoded
    index = indexes.Voyager(index_folder=str(tmp_path), index_name="v", override=True, embedding_size=16)
    index.add_documents(documents_ids=ids, documents_embeddings=[d.numpy() for d in docs])
    # With MaxSim as the "LITE" scorer the results equal PyLate's own retriever.
    baseline = pylate_retrieve.ColBERT(index=index).retrieve(queries, k=4, device="cpu")
    ours = LiteRetriever(index=index, scorer=MaxSim()).retrieve(queries, k=4)
    for mine, reference in zip(ours, baseline, strict=True):
        assert [r["score"] for r in mine] == pytest.approx([r["score"] for r in reference], abs=1e-4)
    # With LITE: the scores are LITE's over the stored vectors, best first; k beyond the index is fine.
    results = LiteRetriever(index=index, scorer=lite).retrieve(queries, k=100, k_token=100)
    by_id = dict(zip(ids, docs, strict=True))
    for query_vectors, result in zip(queries, results, strict=True):
        assert 0 < len(result) <= len(ids)
        scores = [r["score"] for r in result]
        assert scores == sorted(scores, reverse=True)
        hit_ids = [r["id"] for r in result]
        exact = lite_scores(query_vectors[None], [by_id[i] for i in hit_ids], scorer=lite)[0]
        assert scores == pytest.approx(exact.tolist(), abs=1e-4)
    assert LiteRetriever(index=index, scorer=lite).retrieve([], k=3) == []
    subset = LiteRetriever(index=index, scorer=lite).retrieve(queries, k=5, subset=["doc1", "doc2"])
    assert all({r["id"] for r in result} <= {"doc1", "doc2"} for result in subset)


@pytest.fixture(scope="module")
def plaid_index(encoded, tmp_path_factory: pytest.TempPathFactory):
    ids, docs, _ = encoded
    folder = tmp_path_factory.mktemp("plaid")
    index = indexes.PLAID(
        index_folder=str(folder),
        index_name="p",
        override=True,
        device="cpu",
        show_progress=False,
        kmeans_niters=2,
        nbits=4,
        use_triton=False,
    )
    index.add_documents(documents_ids=ids, documents_embeddings=docs)
    return index


@pytest.mark.parametrize("method", ["token_scores", "reconstruct"])
def test_plaid_token_scores_helper(plaid_index, encoded, method: str) -> None:
    ids, docs, queries = encoded
    hits = plaid_token_scores(plaid_index, queries, k=len(ids) + 5, method=method)  # k beyond the index
    own = plaid_index(queries, k=len(ids))
    by_id = dict(zip(ids, docs, strict=True))
    for query_vectors, per_query, reference in zip(queries, hits, own, strict=True):
        assert 0 < len(per_query) <= len(ids)
        assert {h.id for h in per_query} == {r["id"] for r in reference}
        for hit in per_query:
            assert hit.similarity.shape == (len(query_vectors), len(by_id[hit.id]))
            # S comes from compressed vectors: close to the exact S, and its MaxSim is PLAID's score.
            exact = query_vectors @ by_id[hit.id].T
            assert (hit.similarity.float() - exact).abs().max() < 0.25
            assert hit.similarity.float().max(-1).values.sum().item() == pytest.approx(hit.score, abs=0.05)
    assert plaid_token_scores(plaid_index, [], k=3) == []


def test_plaid_method_detection(plaid_index) -> None:
    assert plaid_method(plaid_index) == "token_scores"

    class OldEngine:  # a fast-plaid without search_token_scores
        def search(self): ...
        def get_embeddings(self): ...

    class Wrapper:
        fast_plaid = OldEngine()

        def _load_plaid_ids_to_documents_ids(self): ...

    assert plaid_method(Wrapper()) == "reconstruct"
    Wrapper.fast_plaid = object()
    with pytest.raises(NotImplementedError, match="neither"):
        plaid_method(Wrapper())
    with pytest.raises(NotImplementedError, match="use_fast=True"):
        plaid_method(object())


@pytest.mark.parametrize("method", ["token_scores", "reconstruct"])
def test_plaid_retrieval_end_to_end(lite: LiteColBERT, plaid_index, encoded, method: str) -> None:
    ids, docs, queries = encoded
    by_id = dict(zip(ids, docs, strict=True))
    retriever = LiteRetriever(index=plaid_index, scorer=lite, k_candidates=len(ids), method=method)
    results = retriever.retrieve(queries, k=100)
    for query_vectors, result in zip(queries, results, strict=True):
        assert 0 < len(result) <= len(ids)
        scores = [r["score"] for r in result]
        assert scores == sorted(scores, reverse=True)
        exact = lite_scores(query_vectors[None], [by_id[r["id"]] for r in result], scorer=lite)[0]
        # LITE over PLAID's S (compressed vectors) stays close to LITE over the exact vectors.
        assert (torch.tensor(scores) - exact).abs().max() < 0.5
    top2 = retriever.retrieve(queries, k=2)
    assert [len(r) for r in top2] == [2, 2, 2] and [r[0]["id"] for r in top2] == [r[0]["id"] for r in results]
    assert retriever.retrieve([], k=2) == []
    # MaxSim through the same path reproduces PLAID's own ranking scores.
    maxsim = LiteRetriever(index=plaid_index, scorer=MaxSim(), method=method).retrieve(queries, k=3)
    for mine, reference in zip(maxsim, plaid_index(queries, k=3), strict=True):
        assert [r["score"] for r in mine] == pytest.approx([r["score"] for r in reference], abs=0.05)


# --- training ----------------------------------------------------------------------------------
def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[n], p.detach()) for n, p in module.named_parameters())


def test_one_distillation_step_updates_scorer_and_encoder(lite: LiteColBERT) -> None:
    model = LiteColBERT(copy.deepcopy(lite.colbert), copy.deepcopy(lite.scorer)).train()
    metric = LiteScores(model.scorer, mode="kd")
    loss_fn = losses.Distillation(model=model.colbert, score_metric=metric, normalize_scores=False)
    assert any(p is next(model.scorer.parameters()) for p in loss_fn.parameters())  # the trainer optimizes it
    features = [
        model.colbert.tokenize(QUERIES[:2], is_query=True),
        model.colbert.tokenize(
            ["the cat sat on the mat", "air flow over a wing", "a book", "money, bank"], is_query=False
        ),
    ]
    labels = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    encoder_before = {n: p.detach().clone() for n, p in model.colbert.named_parameters()}
    scorer_before = {n: p.detach().clone() for n, p in model.scorer.named_parameters()}
    optimizer = torch.optim.SGD(loss_fn.parameters(), lr=0.5)
    loss = loss_fn(features, labels)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert _changed(scorer_before, model.scorer) and _changed(encoder_before, model.colbert)


def test_one_contrastive_step_gives_gradients_to_both(lite: LiteColBERT) -> None:
    model = LiteColBERT(copy.deepcopy(lite.colbert), copy.deepcopy(lite.scorer)).train()
    loss_fn = losses.Contrastive(model=model.colbert, score_metric=LiteScores(model.scorer))
    features = [
        model.colbert.tokenize(QUERIES[:2], is_query=True),
        # PyLate's collator pads every document column to document_length for Contrastive.
        model.colbert.tokenize(["late interaction ranking", "the cat sat on the mat"], is_query=False, pad=True),
        model.colbert.tokenize(["a book", "air flow over a wing"], is_query=False, pad=True),
    ]
    loss = loss_fn(features)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.scorer.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.colbert.parameters())


def test_exported_checkpoint_loads_in_the_other_adapters(
    lite: LiteColBERT, documents: list[str], tmp_path: Path
) -> None:
    """The converted checkpoint is an ordinary LITE checkpoint: CrossEncoder and PyTerrier score alike."""
    folder = lite.export_lite_checkpoint(tmp_path / "core")
    expected = torch.cat([lite.score(query, documents) for query in QUERIES])
    pairs = [(query, doc) for query in QUERIES for doc in documents]
    pytest.importorskip("sentence_transformers")
    from lite_plugins.sentence_transformers import LiteCrossEncoder

    predicted = LiteCrossEncoder(folder).predict(pairs, convert_to_tensor=True)
    assert torch.allclose(predicted.float().cpu(), expected, atol=1e-4)
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyterrier")
    from lite_plugins.pyterrier import LiteReranker

    frame = pd.DataFrame(
        [{"qid": str(i // len(documents)), "query": q, "docno": str(i), "text": d} for i, (q, d) in enumerate(pairs)]
    )
    reranked = LiteReranker(str(folder)).transform(frame).sort_values("docno", key=lambda s: s.astype(int))
    assert torch.allclose(torch.tensor(reranked["score"].tolist(), dtype=torch.float32), expected, atol=1e-4)
