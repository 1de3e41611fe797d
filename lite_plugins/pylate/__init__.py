"""LITE for PyLate: score functions, rerank and retrieval over Voyager / PLAID indexes, training.

A PyLate ColBERT keeps encoding and indexing as it does; a LITE scorer trained on top of it replaces
MaxSim at scoring time, over the vectors the index already stores::

    from lite_plugins.pylate import LiteColBERT, LiteRetriever, LiteScores, rerank

Needs the ``pylate`` extra: ``pip install "lite-plugins[pylate]"``.
"""

from lite_plugins._extras import require

require("pylate", "pylate", "sentence_transformers")

from lite_plugins.pylate.model import LiteColBERT  # noqa: E402
from lite_plugins.pylate.rank import rerank  # noqa: E402
from lite_plugins.pylate.retrieve import LiteRetriever, PlaidHit, plaid_method, plaid_token_scores  # noqa: E402
from lite_plugins.pylate.scores import (  # noqa: E402
    LiteScores,
    compact,
    lite_kd_scores,
    lite_scores,
    lite_scores_pairwise,
)

__all__ = [
    "LiteColBERT",
    "LiteRetriever",
    "LiteScores",
    "PlaidHit",
    "compact",
    "lite_kd_scores",
    "lite_scores",
    "lite_scores_pairwise",
    "plaid_method",
    "plaid_token_scores",
    "rerank",
]
