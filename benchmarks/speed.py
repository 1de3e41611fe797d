"""Per-query CPU time to re-rank 100 candidates, every system in one process, round-robin per query.

Systems (same MiniLM-L6 backbone everywhere):

* LITE (separable, and small LITE k=50) and MaxSim from stored document vectors: encode the query,
  score the stored vectors (the documents were encoded once, beforehand, like an index);
* PyLate's ``rank.rerank`` (MaxSim) from stored vectors: PyLate encodes the query, reranks;
* a sentence-transformers ``CrossEncoder`` with the same backbone, on text (query + each passage).

Each query is run through every system in turn (round-robin), so load on the machine hits all of
them alike; the table gives medians and the ratios the goals are stated in. Also: indexing
throughput (documents encoded per second) for LITE and PyLate.

    python benchmarks/speed.py [--queries 10] [--candidates 100] [--threads 0] [--device cpu]

Writes ``benchmarks/results/speed.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_sets import RESULTS, load_set

from lite_plugins.core import LiteModel
from lite_plugins.training import default_encoder

logger = logging.getLogger("speed")


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-cross-encoder", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS / "speed.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    encoder_path = default_encoder()
    data = load_set("dl21-bm25", args.queries)
    work = [(data.queries[qid], [h.text for h in hits[: args.candidates]]) for qid, hits in data.candidates.items()]
    all_docs = [d for _, docs in work for d in docs]

    try:
        lite = LiteModel.default(device=device)
        lite_name = "LITE separable (default checkpoint)"
    except FileNotFoundError:
        lite = LiteModel.from_encoder(encoder_path, scorer="separable", device=device, seed=0)
        lite_name = "LITE separable (untrained head)"
    lite.eval()
    small = LiteModel.from_encoder(encoder_path, scorer="separable", document_tokens=50, device=device, seed=0).eval()
    maxsim = LiteModel.from_encoder(encoder_path, scorer="maxsim", device=device).eval()

    import pylate.models
    import pylate.rank
    from sentence_transformers import CrossEncoder

    colbert = pylate.models.ColBERT(
        model_name_or_path=encoder_path,
        device=device,
        query_length=32,
        document_length=180,
        embedding_size=384,  # same width as the LITE vectors, so stored sizes compare one to one
    )
    cross_encoder = None
    if not args.skip_cross_encoder:
        cross_encoder = CrossEncoder(encoder_path, num_labels=1, max_length=212, device=device)

    # Indexing: encode every candidate once (not part of the per-query time).
    with torch.inference_mode():
        lite_index_time, lite_docs = timed(lambda: lite.encoder.encode(all_docs, "document", batch_size=32))
        pylate_index_time, pylate_docs = timed(
            lambda: colbert.encode(all_docs, is_query=False, batch_size=32, convert_to_tensor=False)
        )
    small_docs = small.apply_token_budget(lite_docs)
    stored = {}
    offset = 0
    for qid_index, (_, docs) in enumerate(work):
        n = len(docs)
        stored[qid_index] = (
            lite_docs[offset : offset + n],
            small_docs[offset : offset + n],
            pylate_docs[offset : offset + n],
        )
        offset += n

    systems = {
        lite_name: lambda i, q, docs: lite.score_embeddings(lite.encode_queries([q]), stored[i][0]),
        "small LITE k=50 (untrained head)": lambda i, q, docs: small.score_embeddings(
            small.encode_queries([q]), stored[i][1]
        ),
        "MaxSim (lite_plugins)": lambda i, q, docs: maxsim.score_embeddings(maxsim.encode_queries([q]), stored[i][0]),
        "PyLate rank.rerank (MaxSim)": lambda i, q, docs: pylate.rank.rerank(
            documents_ids=[list(range(len(docs)))],
            queries_embeddings=colbert.encode([q], is_query=True, convert_to_tensor=False),
            documents_embeddings=[stored[i][2]],
            device=device,
        ),
    }
    if cross_encoder is not None:
        systems["CrossEncoder, same backbone (text)"] = lambda i, q, docs: cross_encoder.predict(
            [(q, d) for d in docs], batch_size=32
        )
    times: dict[str, list[float]] = {name: [] for name in systems}
    with torch.inference_mode():
        for fn in systems.values():  # warm-up
            fn(0, *work[0])
        for i, (query, docs) in enumerate(work):
            for name, fn in systems.items():
                times[name].append(timed(lambda fn=fn, i=i, query=query, docs=docs: fn(i, query, docs))[0])

    medians = {name: 1000 * statistics.median(values) for name, values in times.items()}
    lite_ms = medians[lite_name]
    rows = []
    for name, ms in medians.items():
        rows.append({"system": name, "median_ms_per_query": ms, "relative_to_lite": ms / lite_ms})
    index = {
        "LITE documents/s": len(all_docs) / lite_index_time,
        "PyLate documents/s": len(all_docs) / pylate_index_time,
    }
    print(
        f"{len(work)} queries x {args.candidates} candidates (DL21 BM25), device={device}, "
        f"torch threads={torch.get_num_threads()}, {platform.machine()}"
    )
    print(f"{'system':<40}{'ms/query':>12}{'x LITE':>10}")
    for row in rows:
        print(f"{row['system']:<40}{row['median_ms_per_query']:>12.1f}{row['relative_to_lite']:>10.2f}")
    for name, value in index.items():
        print(f"indexing: {name} {value:.1f}")
    goals = {}
    if cross_encoder is not None:
        goals["CrossEncoder / LITE (goal >= 20)"] = medians["CrossEncoder, same backbone (text)"] / lite_ms
    goals["LITE / PyLate MaxSim rerank (goal <= 2)"] = lite_ms / medians["PyLate rank.rerank (MaxSim)"]
    for name, value in goals.items():
        print(f"{name}: {value:.2f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "settings": {
                    "queries": len(work),
                    "candidates": args.candidates,
                    "device": device,
                    "torch_threads": torch.get_num_threads(),
                    "machine": platform.machine(),
                },
                "rows": rows,
                "indexing": index,
                "goals": goals,
                "raw_seconds": times,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
