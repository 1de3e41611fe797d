"""Static (Model2Vec) LITE vs the mean-vector MLP vs static MaxSim vs BM25, trained the same way.

    python benchmarks/model2vec_quality.py     # 17 minutes on 2 CPU cores shared with other jobs

1. A static model is distilled from the offline all-MiniLM-L6-v2 with model2vec.distill (256-d, cached
   in scratch/m2v-minilm-256; ``python -m lite_plugins.model2vec distill --output scratch/m2v-minilm-256``).
2. Each scorer is put on top of its own copy of those vectors and trained with one recipe: listwise KL
   to the teacher's softmax over groups of candidates of the TREC DL22 pool (BM25 + SPLADE top-100;
   teacher ``mpnet_maxsim`` from teacher.tsv, z-scored per query), embedding matrix fine-tuned.
3. Evaluation: re-ranking BM25 top-100 of TREC DL21 (nDCG@10, RR@10 at relevance >= 2) and of the
   out-of-domain sets vaswani, cranfield, cisi (BM25 top-100 built with pyterrier_pisa into scratch/bm25;
   first ``--max-queries`` judged queries each, 50 by default).
4. CPU time per query to re-rank 100 candidates (1 torch thread), query encoding included, from texts and
   from stored document vectors.

Writes benchmarks/results/model2vec_quality.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_sets import bm25_candidates  # the shared, cached BM25 top-100 of the classic collections

from lite_plugins.core import LiteModel, TokenEmbeddings
from lite_plugins.core.encoders.static import StaticTokenEncoder
from lite_plugins.data import (
    TREC_DL_RELEVANCE_LEVEL,
    Candidate,
    evaluate,
    read_candidates,
    read_qrels,
    read_queries,
    read_teacher,
)

logger = logging.getLogger("model2vec_quality")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LITE_SHARED_DATA", REPO.parent / "shared" / "data"))
SCRATCH = REPO / "scratch"
RESULTS = REPO / "benchmarks" / "results" / "model2vec_quality.json"
OUT_OF_DOMAIN = ("vaswani", "cranfield", "cisi")
QUERY_LENGTH, DOCUMENT_LENGTH = 32, 180

#: name -> scorer settings; every model gets its own fine-tuned copy of the static vectors.
MODELS: dict[str, dict[str, Any]] = {
    # Hidden widths 2x the lengths (the paper uses 12x) keep training + evaluation within the CPU budget.
    "static LITE (separable)": {
        "scorer": "separable",
        "row_hidden": 2 * DOCUMENT_LENGTH,
        "column_hidden": 2 * QUERY_LENGTH,
    },
    "MeanMLP (mean vectors)": {"scorer": "mean_mlp"},
    "static MaxSim (trained)": {"scorer": "maxsim"},
}


# --- data ---------------------------------------------------------------------------------------
def static_model_path(path: Path) -> Path:
    if not (path / "model.safetensors").is_file():
        from lite_plugins.model2vec import distill_static_model
        from lite_plugins.model2vec.distill import default_student_path

        logger.info("distilling a static model from the offline MiniLM into %s", path)
        distill_static_model(default_student_path(), path, pca_dims=256)
    return path


def evaluation_sets(max_queries: int | None = None) -> dict[str, dict[str, Any]]:
    """DL21 in full; out-of-domain sets cut to their first ``max_queries`` judged queries (by qid)."""
    sets = {
        "dl21": {
            "queries": read_queries(DATA / "trec-dl21-passage" / "queries.tsv"),
            "qrels": read_qrels(DATA / "trec-dl21-passage" / "qrels.txt"),
            "candidates": read_candidates(DATA / "trec-dl21-passage" / "candidates.bm25.top100.jsonl"),
            "relevance_level": TREC_DL_RELEVANCE_LEVEL,
        }
    }
    for name in OUT_OF_DOMAIN:
        qrels = read_qrels(DATA / name / "qrels.txt")
        candidates = bm25_candidates(name)
        judged = sorted((qid for qid in candidates if qid in qrels), key=lambda q: (len(q), q))
        keep = set(judged[:max_queries] if max_queries else judged)
        sets[name] = {
            "queries": read_queries(DATA / name / "queries.tsv"),
            "qrels": qrels,
            "candidates": {qid: hits for qid, hits in candidates.items() if qid in keep},
            "relevance_level": 1,
        }
    return sets


def training_pool() -> tuple[dict[str, str], list[str], dict[str, list[tuple[int, float]]]]:
    """DL22 queries, the passage texts, and per query (passage index, teacher z-score) over BM25 + SPLADE."""
    root = DATA / "trec-dl22-passage"
    queries = read_queries(root / "queries.tsv")
    teacher = read_teacher(root / "teacher.tsv", "mpnet_maxsim")
    texts: dict[str, dict[str, str]] = defaultdict(dict)
    for system in ("bm25", "splade"):
        for qid, hits in read_candidates(root / f"candidates.{system}.top100.jsonl").items():
            for hit in hits:
                texts[qid][hit.docid] = hit.text
    passages: list[str] = []
    pool: dict[str, list[tuple[int, float]]] = {}
    for qid, docs in texts.items():
        scored = [(docid, teacher[qid][docid]) for docid in docs if docid in teacher.get(qid, {})]
        if qid not in queries or len(scored) < 2:
            continue
        values = [score for _, score in scored]
        mean, std = statistics.fmean(values), statistics.pstdev(values) or 1.0
        pool[qid] = []
        for docid, score in scored:
            pool[qid].append((len(passages), (score - mean) / std))
            passages.append(docs[docid])
    return queries, passages, pool


# --- training -----------------------------------------------------------------------------------
def train(
    model: LiteModel,
    queries: dict[str, str],
    passages: list[str],
    pool: dict[str, list[tuple[int, float]]],
    steps: int,
    queries_per_step: int,
    group_size: int,
    learning_rate: float,
    temperature: float,
    seed: int,
) -> list[float]:
    """Listwise KL(teacher softmax || student softmax) over groups sampled from each query's pool."""
    rng = random.Random(seed)
    qids = sorted(pool)
    # Static tokenization does not change while training: tokenize every text once.
    query_rows = {qid: i for i, qid in enumerate(qids)}
    all_queries = model.encoder.tokenize([queries[qid] for qid in qids], "query")
    all_passages = model.encoder.tokenize(passages, "document")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (0.1 * steps)))
    model.train()
    losses = []
    for _ in range(steps):
        batch = rng.sample(qids, queries_per_step)
        groups = [rng.sample(pool[qid], min(group_size, len(pool[qid]))) for qid in batch]
        groups = [g if len(g) == group_size else g + rng.choices(g, k=group_size - len(g)) for g in groups]
        query_index = torch.tensor([query_rows[qid] for qid in batch])
        passage_index = torch.tensor([row for group in groups for row, _ in group])
        query_features = {k: v[query_index] for k, v in all_queries.items()}
        document_features = {k: v[passage_index] for k, v in all_passages.items()}
        scores = model(query_features, document_features, pairing="grouped", group_size=group_size)
        targets = torch.tensor([[score for _, score in group] for group in groups]) / temperature
        loss = torch.nn.functional.kl_div(
            scores.log_softmax(-1), targets.log_softmax(-1), log_target=True, reduction="batchmean"
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


# --- evaluation ---------------------------------------------------------------------------------
@torch.no_grad()
def rerank(model: LiteModel, queries: dict[str, str], candidates: dict[str, list[Candidate]]) -> dict:
    """Score each query's candidates; each distinct passage is encoded once (sets share passages)."""
    texts = {hit.docid: hit.text for hits in candidates.values() for hit in hits}
    docids = list(texts)
    encoded = model.encode_documents([texts[d] for d in docids], batch_size=256).unpadded()
    vectors = dict(zip(docids, encoded, strict=True))
    run: dict[str, dict[str, float]] = {}
    for qid, hits in candidates.items():
        if qid not in queries:
            continue
        query_vectors = model.encode_queries([queries[qid]])
        document_vectors = TokenEmbeddings.pad([vectors[hit.docid] for hit in hits], dim=model.encoder.embedding_dim)
        scores = model.score_embeddings(query_vectors, document_vectors)[0].tolist()
        run[qid] = {hit.docid: score for hit, score in zip(hits, scores, strict=True)}
    return run


def first_stage_run(candidates: dict[str, list[Candidate]]) -> dict:
    return {qid: {hit.docid: hit.score for hit in hits} for qid, hits in candidates.items()}


def measure(run: dict, data: dict[str, Any]) -> dict[str, float]:
    return evaluate(run, data["qrels"], data["relevance_level"], measures=("nDCG@10", "RR@10"))


@torch.no_grad()
def time_per_query(model: LiteModel, data: dict[str, Any], n_queries: int) -> dict[str, float]:
    """Median per-query cost to re-rank 100 candidates on one torch thread: process CPU time and wall time.

    "from text" encodes the query and the 100 passages; "stored" encodes the query and scores passage
    vectors computed beforehand (what an index holds).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        for qid in sorted(data["candidates"])[:n_queries]:
            texts = [hit.text for hit in data["candidates"][qid]]
            query = data["queries"][qid]
            stored = model.encode_documents(texts, batch_size=100)
            for mode in ("stored", "text"):
                cpu, wall = time.process_time(), time.perf_counter()
                documents = stored if mode == "stored" else model.encode_documents(texts, batch_size=100)
                model.score_embeddings(model.encode_queries([query]), documents)
                samples[f"cpu_ms_{mode}"].append(1000 * (time.process_time() - cpu))
                samples[f"wall_ms_{mode}"].append(1000 * (time.perf_counter() - wall))
    finally:
        torch.set_num_threads(threads)
    return {key: statistics.median(values) for key, values in samples.items()}


def new_model(static_path: Path, seed: int, scorer: str, **scorer_kwargs: Any) -> LiteModel:
    encoder = StaticTokenEncoder.from_pretrained(static_path, QUERY_LENGTH, DOCUMENT_LENGTH)
    return LiteModel.from_encoder(encoder, scorer=scorer, seed=seed, **scorer_kwargs)


def markdown_table(rows: list[dict[str, Any]], set_names: list[str]) -> str:
    header = (
        "| model | " + " | ".join(f"{name} nDCG@10 / RR@10" for name in set_names) + " | CPU ms/query (text / stored) |"
    )
    lines = [header, "|---" * (len(set_names) + 2) + "|"]
    for row in rows:
        cells = [f"{row['metrics'][n]['nDCG@10']:.3f} / {row['metrics'][n]['RR@10']:.3f}" for n in set_names]
        timing = row.get("timing")
        time_cell = f"{timing['cpu_ms_text']:.1f} / {timing['cpu_ms_stored']:.1f}" if timing else "-"
        lines.append(f"| {row['model']} | " + " | ".join(cells) + f" | {time_cell} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--static-model", type=Path, default=SCRATCH / "m2v-minilm-256")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--max-queries", type=int, default=50, help="judged queries per out-of-domain set (0: all)")
    parser.add_argument("--queries-per-step", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--timing-queries", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()

    static_path = static_model_path(args.static_model)
    sets = evaluation_sets(args.max_queries or None)
    set_names = list(sets)
    train_queries, passages, pool = training_pool()
    logger.info("training pool: %d queries, %d pairs", len(pool), len(passages))

    rows: list[dict[str, Any]] = [
        {
            "model": "BM25",
            "metrics": {n: measure(first_stage_run(d["candidates"]), d) for n, d in sets.items()},
        }
    ]
    untrained = new_model(static_path, args.seed, "maxsim").eval()
    rows.append(
        {
            "model": "static MaxSim (untrained)",
            "metrics": {n: measure(rerank(untrained, d["queries"], d["candidates"]), d) for n, d in sets.items()},
            "timing": time_per_query(untrained, sets["dl21"], args.timing_queries),
        }
    )
    logger.info("untrained MaxSim: %s", json.dumps(rows[-1]["metrics"]))
    for name, settings in MODELS.items():
        started = time.perf_counter()
        model = new_model(static_path, args.seed, **settings)
        losses = train(
            model,
            train_queries,
            passages,
            pool,
            args.steps,
            args.queries_per_step,
            args.group_size,
            args.learning_rate,
            args.temperature,
            args.seed,
        )
        trained_s = time.perf_counter() - started
        metrics = {n: measure(rerank(model, d["queries"], d["candidates"]), d) for n, d in sets.items()}
        row = {
            "model": name,
            "metrics": metrics,
            "timing": time_per_query(model, sets["dl21"], args.timing_queries),
            "scorer_parameters": model.num_parameters("scorer"),
            "train_seconds": round(trained_s, 1),
            "loss_first_last_20": [statistics.fmean(losses[:20]), statistics.fmean(losses[-20:])],
        }
        logger.info("%s: %s (trained in %.0fs)", name, json.dumps(metrics), trained_s)
        rows.append(row)

    table = markdown_table(rows, set_names)
    print(table)
    result = {
        "command": "python benchmarks/model2vec_quality.py",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "static_model": {
            "path": str(static_path.relative_to(REPO)) if static_path.is_relative_to(REPO) else str(static_path)
        },
        "encoder": {
            "query_length": QUERY_LENGTH,
            "document_length": DOCUMENT_LENGTH,
            "dim": untrained.encoder.embedding_dim,
        },
        "sets": {
            n: {"queries": len(d["candidates"]), "relevance_level": d["relevance_level"]} for n, d in sets.items()
        },
        "rows": rows,
        "table": table,
        "total_seconds": round(time.perf_counter() - begin, 1),
        "torch": torch.__version__,
        "cpu_threads": args.threads,
        "note": "timings are medians on a shared 2-core CPU with 1 torch thread; numbers vary between runs",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output} in {result['total_seconds'] / 60:.1f} minutes")


if __name__ == "__main__":
    main()
