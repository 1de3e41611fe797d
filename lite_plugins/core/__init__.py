"""The LITE core: scorers, similarity + masks, token encoders, storage levers, checkpoint format.

It knows nothing of sentence-transformers, PyLate, PyTerrier or Model2Vec; the adapters build on it.
"""

from lite_plugins.core.checkpoint import CheckpointError, atomic_directory, is_lite_checkpoint
from lite_plugins.core.encoders import TokenEmbeddings, TokenEncoder, TransformerTokenEncoder
from lite_plugins.core.model import LiteModel
from lite_plugins.core.scorers import (
    SCORERS,
    FlattenedLite,
    LiteScorer,
    MaxSim,
    MeanMLP,
    SeparableLite,
    build_scorer,
)
from lite_plugins.core.similarity import apply_masks, mask_from_padding, similarity
from lite_plugins.core.storage import TokenBudget, bytes_per_document

__all__ = [
    "SCORERS",
    "CheckpointError",
    "FlattenedLite",
    "LiteModel",
    "LiteScorer",
    "MaxSim",
    "MeanMLP",
    "SeparableLite",
    "TokenBudget",
    "TokenEmbeddings",
    "TokenEncoder",
    "TransformerTokenEncoder",
    "apply_masks",
    "atomic_directory",
    "build_scorer",
    "bytes_per_document",
    "is_lite_checkpoint",
    "mask_from_padding",
    "similarity",
]
