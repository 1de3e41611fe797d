"""Re-ranking quality (nDCG@10, MRR@10) of every trained head and its baselines, on one machine, one run.

Rows: the first stage, untrained MaxSim over the frozen MiniLM, the heads of ``train_heads.py``
(trained MaxSim, separable and flattened LITE, small LITE with k stored tokens, MeanMLP), the
fine-tuned-encoder models of ``train_heads.py --setting finetuned`` (LITE and MaxSim, each with its own
encoder, so their documents are encoded anew), and the teacher scores (DL21 only: teacher.tsv covers
the TREC DL sets). Columns: DL21 BM25 and SPLADE top-100 (the development set, relevance >= 2 for MRR)
and the BM25 top-100 of the out-of-domain sets.

    python benchmarks/train_heads.py && python benchmarks/train_heads.py --setting finetuned
    python benchmarks/quality.py
    python benchmarks/quality.py --sets dl21-bm25 vaswani --max-queries 20     # a quicker look
    python benchmarks/quality.py --heads lite-small-k16 --merge   # add rows to the existing JSON

Document vectors come from the fp16 vector cache, so every row is what an fp16 index gives (the CLI's
fp32 path from text gives the same nDCG@10 for the shipped default: 0.5868 on DL21 BM25).

Writes ``benchmarks/results/quality.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_sets import DATA, DL, OUT_OF_DOMAIN, RESULTS, SCRATCH, EvaluationSet, first_stage_run, load_set

from lite_plugins.core import LiteModel
from lite_plugins.data import evaluate, read_teacher
from lite_plugins.training import VectorCache, default_encoder, mix_zscores

logger = logging.getLogger("quality")
SETS = ("dl21-bm25", "dl21-splade", *OUT_OF_DOMAIN)
HEADS = (
    "maxsim-trained",
    "lite-separable",
    "lite-compact",
    "lite-compact-residual",
    "lite-small-k50-residual",
    "lite-flattened",
    "lite-small-k50",
    "lite-small-k24",
    "lite-small-k24-residual",
    "lite-small-k16",
    "lite-small-k16-residual",
    "mean-mlp",
    "maxsim-trained-mix",
    "lite-separable-mix",
    "lite-compact-residual-mix",
    "lite-flattened-mix",
    "lite-small-k16-mix",
    "lite-separable-t0.25",
    "lite-compact-residual-t0.25",
    "lite-separable-480",
    "lite-compact-residual-480",
    "lite-separable-pseudo",
    "lite-compact-residual-pseudo",
    "lite-small-k16-pseudo",
    "lite-separable-pseudo5k",
    "lite-compact-residual-pseudo5k",
    "lite-small-k16-pseudo5k",
    "finetuned-maxsim",
    "finetuned-lite-separable",
    "finetuned-lite-compact-residual",
)


@torch.no_grad()
def rerank(
    model: LiteModel, cache: VectorCache, data: EvaluationSet, storage_dtype: torch.dtype | None = None
) -> dict[str, dict[str, float]]:
    run = {}
    for qid, hits in data.candidates.items():
        query = cache.batch([data.queries[qid]], "query")
        documents = cache.batch([hit.text for hit in hits], "document")
        if storage_dtype is not None:  # what an index of stored vectors in this dtype gives back
            documents = documents.to(storage_dtype)
        scores = model.score_embeddings(query, documents)[0]
        run[qid] = {hit.docid: float(score) for hit, score in zip(hits, scores)}
    return run


def teacher_run(data: EvaluationSet, column: str) -> dict[str, dict[str, float]] | None:
    """The teacher's own ranking (DL21 only); ``"mix"``: the z-score mean of SPLADE's score and mpnet_maxsim
    that the ``*-mix`` heads distill (SPLADE lists only)."""
    if not data.name.startswith("dl21-") or (column == "mix" and data.name != "dl21-splade"):
        return None
    system = {"dl21-bm25": "bm25", "dl21-splade": "splade_p_p_ensemble_distil"}[data.name]
    scores = read_teacher(DATA / DL / "teacher.tsv", "mpnet_maxsim" if column == "mix" else column, system)
    run = {}
    for qid, hits in data.candidates.items():
        teacher = [scores[qid][hit.docid] for hit in hits]
        if column == "mix":
            teacher = mix_zscores([teacher, [hit.score for hit in hits]])
        run[qid] = {hit.docid: value for hit, value in zip(hits, teacher)}
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--heads", nargs="+", default=list(HEADS))
    parser.add_argument("--heads-dir", type=Path, default=SCRATCH / "heads")
    parser.add_argument("--max-queries", type=int, help="evaluate only the first N judged queries of each set")
    parser.add_argument("--output", type=Path, default=RESULTS / "quality.json")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of the existing output for systems not evaluated now (nDCG does not depend on the run)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    sets = [load_set(name, args.max_queries) for name in args.sets]
    baseline = LiteModel.from_encoder(default_encoder(), scorer="maxsim", query_length=32, document_length=180).eval()
    cache = VectorCache(baseline, SCRATCH / "vectors", batch_size=64, show_progress_bar=True)
    for data in sets:
        cache.add(list(data.queries[q] for q in data.candidates), "query")
        cache.add(data.texts(), "document")

    systems: dict[str, dict] = {}  # row name -> (model, storage dtype) or a fixed run per set
    models = {"MaxSim, untrained (frozen MiniLM)": (baseline, None)}
    for head in args.heads:
        path = args.heads_dir / head
        if not path.is_dir():
            logger.warning("no trained head at %s (run benchmarks/train_heads.py); skipping", path)
            continue
        model = LiteModel.from_pretrained(path).eval()
        models[head] = (model, None)
    head_caches = {}
    for name, (model, _) in models.items():
        head_cache = VectorCache(model, SCRATCH / "vectors", batch_size=64, show_progress_bar=True)
        if head_cache.shares_encoder_with(cache):
            head_cache.vectors = cache.vectors  # the frozen encoder: vectors are shared
        else:  # a fine-tuned encoder: its own vectors (cached on disk under its own key)
            logger.info("%s has its own encoder: encoding the queries and documents of every set", name)
            for data in sets:
                head_cache.add(list(data.queries[q] for q in data.candidates), "query")
                head_cache.add(data.texts(), "document")
        head_caches[name] = head_cache
    results: dict[str, dict[str, dict[str, float]]] = {}
    for data in sets:
        first_stage = "BM25" if data.name != "dl21-splade" else "SPLADE++"
        rows = {f"first stage ({first_stage})": first_stage_run(data)}
        for column in ("mpnet_maxsim", "mpnet_dense", "mix"):
            run = teacher_run(data, column)
            if run is not None:
                rows["teacher: mpnet_maxsim + SPLADE score (z-mix)" if column == "mix" else f"teacher: {column}"] = run
        for name, (model, dtype) in models.items():
            rows[name] = rerank(model, head_caches[name], data, dtype)
        for name, run in rows.items():
            metrics = evaluate(run, data.qrels, data.relevance_level, ("nDCG@10", "RR@10"))
            results.setdefault(name, {})[data.name] = metrics
            logger.info("%-36s %-12s nDCG@10 %.4f RR@10 %.4f", name, data.name, metrics["nDCG@10"], metrics["RR@10"])
        systems[data.name] = {"queries": len(data.candidates)}

    ood = [s.name for s in sets if s.name in OUT_OF_DOMAIN]
    for per_set in results.values():
        values = [per_set[s]["nDCG@10"] for s in ood if s in per_set]
        if values and len(values) == len(ood):
            per_set["out-of-domain mean"] = {"nDCG@10": sum(values) / len(values)}
    columns = [s.name for s in sets] + (["out-of-domain mean"] if ood else [])
    print("nDCG@10 (MRR@10 in JSON); queries per set: " + ", ".join(f"{k} {v['queries']}" for k, v in systems.items()))
    print("| system | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, per_set in results.items():
        cells = [f"{per_set[c]['nDCG@10']:.4f}" if c in per_set else "-" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.merge and args.output.is_file():
        previous = json.loads(args.output.read_text())
        merged = previous["results"]
        for name, per_set in results.items():
            merged[name] = {**merged.get(name, {}), **per_set}
        results = merged
        systems = {**previous["sets"], **systems}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"sets": systems, "results": results}, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
