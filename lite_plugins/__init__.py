"""lite_plugins: LITE learnable late-interaction re-ranking for sentence-transformers, PyLate, PyTerrier
and Model2Vec.

``import lite_plugins`` loads only the core (torch + transformers). Each ecosystem adapter is imported
on its own (``lite_plugins.sentence_transformers``, ``.pylate``, ``.pyterrier``, ``.model2vec``) and
tells you which extra to install if its ecosystem is missing.
"""

from lite_plugins.core import (
    CheckpointError,
    FlattenedLite,
    LiteModel,
    LiteScorer,
    MaxSim,
    MeanMLP,
    SeparableLite,
    TokenBudget,
    TokenEmbeddings,
    TransformerTokenEncoder,
    build_scorer,
    similarity,
)
from lite_plugins.core import hf_model as _hf_model  # noqa: F401  registers model_type "lite" with transformers' Auto classes

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "FlattenedLite",
    "LiteModel",
    "LiteScorer",
    "MaxSim",
    "MeanMLP",
    "SeparableLite",
    "TokenBudget",
    "TokenEmbeddings",
    "TransformerTokenEncoder",
    "__version__",
    "build_scorer",
    "similarity",
]
