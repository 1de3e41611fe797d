"""LITE for sentence-transformers: a CrossEncoder that is a LITE re-ranker, losses, teacher scores.

Which trainer when:

* ``CrossEncoderTrainer`` trains a :class:`LiteCrossEncoder` end to end (encoder + LITE head) from
  texts, with any CrossEncoder loss (``MarginMSELoss``, ``ListNetLoss``, ``BinaryCrossEntropyLoss``) or
  :class:`~lite_plugins.sentence_transformers.losses.ListwiseKLLoss`. This is the route here.
* ``SentenceTransformerTrainer`` trains multi-vector encoders: that is PyLate's ColBERT model with a
  LITE score module (``lite_plugins.pylate``). Use it to train the encoder for an index.

See ``docs/sentence-transformers.md``.
"""

from lite_plugins._extras import require

require("sentence-transformers", "sentence_transformers")

from lite_plugins.sentence_transformers import losses  # noqa: E402
from lite_plugins.sentence_transformers.cross_encoder import LiteCrossEncoder, check_pairs  # noqa: E402
from lite_plugins.sentence_transformers.losses import ListwiseKLLoss  # noqa: E402
from lite_plugins.sentence_transformers.teacher import (  # noqa: E402
    listwise_dataset,
    margin_mse_dataset,
    teacher_scores,
    write_teacher_tsv,
)

__all__ = [
    "ListwiseKLLoss",
    "LiteCrossEncoder",
    "check_pairs",
    "listwise_dataset",
    "losses",
    "margin_mse_dataset",
    "teacher_scores",
    "write_teacher_tsv",
]
