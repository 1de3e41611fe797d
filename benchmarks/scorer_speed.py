"""CPU time to score 100 stored candidates for one query with each scorer (L1=32, L2=180).

Scorer time only: query and document token vectors are given (as they are when documents are stored),
so this isolates the head's cost. Timings are the median of repeated runs in this one process.

    python benchmarks/scorer_speed.py [--candidates 100] [--dim 384] [--repeats 30] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from lite_plugins.core import FlattenedLite, MaxSim, MeanMLP, SeparableLite, TokenBudget

RESULTS = Path(__file__).resolve().parent / "results" / "scorer_speed.json"


def time_call(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--query-length", type=int, default=32)
    parser.add_argument("--document-length", type=int, default=180)
    parser.add_argument("--dim", type=int, default=384, help="token vector size (MiniLM: 384)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    L1, L2, k = args.query_length, args.document_length, 50
    query = torch.nn.functional.normalize(torch.randn(1, L1, args.dim), dim=-1)
    docs = torch.nn.functional.normalize(torch.randn(args.candidates, L2, args.dim), dim=-1)
    qmask = torch.ones(1, L1, dtype=torch.bool)
    dmask = torch.ones(args.candidates, L2, dtype=torch.bool)
    pooled, pooled_mask = TokenBudget(k)(docs, dmask)
    setups = [
        ("MaxSim", MaxSim(L1, L2), docs, dmask),
        ("SeparableLite", SeparableLite(L1, L2), docs, dmask),
        ("FlattenedLite", FlattenedLite(L1, L2), docs, dmask),
        (f"SeparableLite k={k}", SeparableLite(L1, k), pooled, pooled_mask),
        ("MeanMLP", MeanMLP(args.dim, query_length=L1, document_length=L2), docs, dmask),
    ]
    rows = []
    with torch.inference_mode():
        for name, scorer, d, dm in setups:
            scorer.eval()
            times = time_call(lambda s=scorer, d=d, dm=dm: s.score(query, d, qmask, dm), args.repeats)
            rows.append(
                {
                    "scorer": name,
                    "parameters": sum(p.numel() for p in scorer.parameters()),
                    "median_ms": 1000 * statistics.median(times),
                    "p90_ms": 1000 * sorted(times)[int(0.9 * (len(times) - 1))],
                }
            )
    header = f"{'scorer':<22}{'params':>12}{'median ms':>12}{'p90 ms':>10}"
    print(
        f"{args.candidates} candidates x {L2} tokens, query {L1} tokens, d={args.dim}, "
        f"torch threads={torch.get_num_threads()}, CPU: {platform.processor() or platform.machine()}"
    )
    print(header)
    for row in rows:
        print(f"{row['scorer']:<22}{row['parameters']:>12,}{row['median_ms']:>12.2f}{row['p90_ms']:>10.2f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "machine": platform.machine(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
