"""PyTerrier adapter: ``bm25 >> LiteReranker(ckpt)``, an index of stored token vectors, and ``fit``.

* :class:`LiteReranker` re-ranks result frames that carry ``query`` and ``text``; it is a
  ``pt.Estimator``, so ``pipeline.fit(train_topics, train_qrels, valid_topics, valid_qrels)`` trains it.
* :class:`LiteIndex` (an artifact: ``pta.Artifact.load(path)`` opens it) stores document token vectors;
  ``index.indexer(model)`` builds it, ``index.reranker(model)`` re-ranks result frames without text.
* :class:`DocumentTexts` attaches text to the results of indexes that store none (PISA), through
  ``pt.text.get_text``.
"""

from lite_plugins._extras import require

require("pyterrier", "pyterrier", "pyterrier_alpha", "pandas")

from lite_plugins.pyterrier.index import LiteIndex, LiteIndexer, LiteIndexReranker  # noqa: E402
from lite_plugins.pyterrier.reranker import LiteReranker  # noqa: E402
from lite_plugins.pyterrier.texts import DocumentTexts  # noqa: E402

__all__ = ["DocumentTexts", "LiteIndex", "LiteIndexReranker", "LiteIndexer", "LiteReranker"]
