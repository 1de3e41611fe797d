"""The ``lite-plugins`` command line: train, rerank, evaluate.

Examples (from the repository root, data beside it in ``../shared/data``)::

    lite-plugins rerank --queries ../shared/data/trec-dl21-passage/queries.tsv \\
        --candidates ../shared/data/trec-dl21-passage/candidates.bm25.top100.jsonl --output runs/dl21.txt
    lite-plugins evaluate --run runs/dl21.txt --qrels ../shared/data/trec-dl21-passage/qrels.txt
    lite-plugins train --queries .../queries.tsv --candidates .../candidates.bm25.top100.jsonl \\
        --teacher .../teacher.tsv --teacher-column mpnet_maxsim --output my-lite
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger("lite_plugins.cli")

DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


class CLIError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _dtype(name: str | None):
    import torch

    if name is None:
        return None
    if name not in DTYPES:
        raise CLIError(f"--dtype must be one of {sorted(set(DTYPES))}, got {name!r}")
    return getattr(torch, DTYPES[name])


def _device(name: str | None) -> str:
    import torch

    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {name} was asked for but no CUDA device is available; use --device cpu")
    return name


def _existing(path: str, what: str) -> Path:
    resolved = Path(path)
    if not resolved.exists():
        raise CLIError(f"{what} not found: {resolved}")
    return resolved


def load_model(name_or_path: str | None, device: str, dtype=None):
    """The given checkpoint, or the shipped default one."""
    from lite_plugins.core import CheckpointError, LiteModel

    if name_or_path is None:
        from lite_plugins.core.default import default_checkpoint

        name_or_path = str(default_checkpoint())
        logger.info("using the shipped default checkpoint %s", name_or_path)
    try:
        return LiteModel.from_pretrained(name_or_path, device=device, dtype=dtype)
    except (CheckpointError, ImportError) as error:
        raise CLIError(str(error)) from None


# --- rerank ------------------------------------------------------------------------------------
def run_rerank(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from lite_plugins.data import read_candidates, read_queries, write_run

    queries = read_queries(_existing(args.queries, "--queries file"))
    candidates = read_candidates(_existing(args.candidates, "--candidates file"))
    model = load_model(args.model, _device(args.device), _dtype(args.dtype))
    model.eval()
    missing = [qid for qid in candidates if qid not in queries]
    if missing:
        raise CLIError(f"{len(missing)} candidate qids have no query text in {args.queries} (e.g. {missing[:3]})")
    run: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    n_pairs = 0
    with torch.no_grad():
        for qid, hits in tqdm(candidates.items(), desc="Re-ranking", unit="query", disable=args.quiet):
            hits = hits[: args.top_k] if args.top_k else hits
            scores = model.score(queries[qid], [hit.text for hit in hits], batch_size=args.batch_size)
            run[qid] = {hit.docid: float(score) for hit, score in zip(hits, scores)}
            n_pairs += len(hits)
    elapsed = time.perf_counter() - started
    write_run(run, args.output, tag=args.tag)
    logger.info("re-ranked %d pairs of %d queries in %.1fs; wrote %s", n_pairs, len(run), elapsed, args.output)
    print(f"wrote {args.output}: {len(run)} queries, {n_pairs} candidates, {elapsed:.1f}s")
    return 0


# --- evaluate ----------------------------------------------------------------------------------
def run_evaluate(args: argparse.Namespace) -> int:
    from lite_plugins.data import evaluate, read_qrels, read_run

    qrels = read_qrels(_existing(args.qrels, "--qrels file"))
    level = args.relevance_level
    if level is None:  # graded TREC DL passage judgments (0-3) count from 2, binary ones from 1
        level = 2 if max((g for docs in qrels.values() for g in docs.values()), default=1) >= 3 else 1
    rows = []
    for run_path in args.run:
        try:
            metrics = evaluate(
                read_run(_existing(run_path, "--run file")),
                qrels,
                relevance_level=level,
                measures=args.measures,
            )
        except ValueError as error:
            raise CLIError(f"{run_path}: {error}") from None
        rows.append((run_path, metrics))
    names = list(args.measures)
    width = max(len(str(path)) for path, _ in rows)
    print(f"{'run':<{width}}  " + "  ".join(f"{m:>8}" for m in names) + f"   (relevance >= {level})")
    for path, metrics in rows:
        print(f"{path!s:<{width}}  " + "  ".join(f"{metrics[m]:8.4f}" for m in names))
    if args.json:
        Path(args.json).write_text(json.dumps({str(p): m for p, m in rows}, indent=2) + "\n")
    return 0


# --- train -------------------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    from lite_plugins.training import TrainingConfig, train_from_files

    config = TrainingConfig(
        encoder=args.encoder,
        scorer=args.scorer,
        loss=args.loss,
        query_length=args.query_length,
        document_length=args.document_length,
        document_tokens=args.document_tokens,
        budget_method=args.budget_method,
        projection_dim=args.projection_dim,
        freeze_encoder=args.freeze_encoder,
        group_size=args.group_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        encoder_learning_rate=args.encoder_learning_rate,
        temperature=args.temperature,
        seed=args.seed,
        device=_device(args.device),
        show_progress_bar=not args.quiet,
    )
    try:
        train_from_files(
            config,
            queries=_existing(args.queries, "--queries file"),
            candidates=[_existing(c, "--candidates file") for c in args.candidates],
            output=args.output,
            teacher=_existing(args.teacher, "--teacher file") if args.teacher else None,
            teacher_column=args.teacher_column[0] if len(args.teacher_column) == 1 else args.teacher_column,
            qrels=_existing(args.qrels, "--qrels file") if args.qrels else None,
            cache_dir=args.cache_dir,
        )
    except ValueError as error:
        raise CLIError(str(error)) from None
    print(f"wrote checkpoint {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lite-plugins", description="LITE late-interaction re-ranking")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    rerank = commands.add_parser("rerank", help="re-rank first-stage candidates into a TREC run")
    rerank.add_argument("--model", help="LITE checkpoint folder or Hub id (default: the shipped default checkpoint)")
    rerank.add_argument("--queries", required=True, help="queries.tsv: qid<TAB>text")
    rerank.add_argument("--candidates", required=True, help='JSONL lines {"qid", "docid", "text", ...}')
    rerank.add_argument("--output", required=True, help="TREC run file to write")
    rerank.add_argument("--top-k", type=int, default=0, help="re-rank only the first K candidates (0 = all)")
    rerank.add_argument("--batch-size", type=int, default=32)
    rerank.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    rerank.add_argument("--dtype", help="float32 (default), bfloat16 or float16")
    rerank.add_argument("--tag", default="lite", help="run tag written in the last column")
    rerank.add_argument("--quiet", action="store_true", help="no progress bar")
    rerank.set_defaults(handler=run_rerank)

    evaluate = commands.add_parser("evaluate", help="nDCG@10, MRR@10 and R@100 of TREC runs (ir_measures)")
    evaluate.add_argument("--run", required=True, nargs="+", help="one or more TREC run files")
    evaluate.add_argument("--qrels", required=True)
    evaluate.add_argument(
        "--relevance-level",
        type=int,
        help="minimum grade counted relevant for RR and R (default: 2 for graded 0-3 TREC DL judgments, else 1)",
    )
    evaluate.add_argument("--measures", nargs="+", default=["nDCG@10", "RR@10", "R@100"])
    evaluate.add_argument("--json", help="also write the numbers to this JSON file")
    evaluate.set_defaults(handler=run_evaluate)

    train = commands.add_parser("train", help="train a LITE checkpoint by distillation or from qrels")
    train.add_argument("--queries", required=True)
    train.add_argument("--candidates", required=True, nargs="+", help="candidate JSONL file(s)")
    train.add_argument("--teacher", help="teacher.tsv to distill from (columns: system qid docid scores...)")
    train.add_argument(
        "--teacher-column",
        nargs="+",
        default=["mpnet_maxsim"],
        help="teacher score column; several (e.g. 'mpnet_maxsim first_stage'): their per-query z-score mean; "
        "'first_stage' is the candidate file's own score (one --candidates file)",
    )
    train.add_argument("--qrels", help="train from relevance labels instead of a teacher")
    train.add_argument("--output", required=True, help="checkpoint folder to write")
    train.add_argument("--encoder", default=None, help="encoder folder or Hub id (default: offline all-MiniLM-L6-v2)")
    train.add_argument("--scorer", default="separable", choices=["separable", "flattened", "maxsim", "mean_mlp"])
    train.add_argument("--loss", default="listwise_kl", choices=["listwise_kl", "margin_mse", "listwise_ce"])
    train.add_argument("--query-length", type=int, default=32)
    train.add_argument("--document-length", type=int, default=180)
    train.add_argument("--document-tokens", type=int, help="store at most k token vectors per document")
    train.add_argument("--budget-method", default="pool", choices=["pool", "truncate"])
    train.add_argument("--projection-dim", type=int, help="project token vectors to d' dimensions")
    train.add_argument("--freeze-encoder", action="store_true", help="train the head only (cached vectors)")
    train.add_argument("--group-size", type=int, default=16, help="candidates per query per step")
    train.add_argument("--batch-size", type=int, default=8, help="queries per step")
    train.add_argument("--epochs", type=int, default=1)
    train.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = epochs decide)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="head learning rate")
    train.add_argument("--encoder-learning-rate", type=float, default=2e-5)
    train.add_argument("--temperature", type=float, default=1.0, help="teacher softmax temperature (listwise_kl)")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--device", default="auto")
    train.add_argument("--cache-dir", help="where frozen-encoder token vectors are cached between runs")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(handler=run_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.handler(args)
    except (CLIError, FileNotFoundError) as error:
        print(f"lite-plugins {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # malformed input files: the readers name file and line
        print(f"lite-plugins {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
