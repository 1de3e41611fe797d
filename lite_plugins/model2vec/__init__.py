"""Model2Vec adapter: LITE over static (context-free) token vectors, trained or frozen.

::

    from lite_plugins import LiteModel
    from lite_plugins.model2vec import StaticTokenEncoder

    encoder = StaticTokenEncoder.from_pretrained("minishlab/potion-retrieval-32M")  # or a local folder

Then ``LiteModel.from_encoder(encoder, scorer="separable")`` gives a LITE re-ranker whose S costs a
table lookup; it saves, loads and plugs into every adapter like a transformer-based one.
``distill_static_model`` makes a static model offline from a local sentence-transformers folder.
"""

from lite_plugins._extras import require

require("model2vec", "model2vec")

from lite_plugins.core.encoders.static import StaticTokenEncoder  # noqa: E402
from lite_plugins.model2vec.distill import distill_static_model  # noqa: E402

__all__ = ["StaticTokenEncoder", "distill_static_model"]
