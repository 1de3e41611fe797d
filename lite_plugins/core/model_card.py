"""A short model card (README.md) written beside every checkpoint."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lite_plugins.core.model import LiteModel


def render_model_card(model: LiteModel, training: dict[str, Any] | None = None) -> str:
    """Markdown with LITE tags, the scorer/encoder/storage settings and (if given) how it was trained."""
    config = model.get_config()
    encoder = dict(config["encoder"])
    base_model = encoder.pop("model_config", {}).get("_name_or_path", "") or "unknown"
    training = training or config.get("training") or {}
    tags = ["lite", "late-interaction", "reranker", "lite-plugins", f"scorer-{config['scorer']['type']}"]
    lines = [
        "---",
        "library_name: lite-plugins",
        "pipeline_tag: text-ranking",
        "tags:",
        *[f"- {tag}" for tag in tags],
        "---",
        "",
        "# LITE re-ranker",
        "",
        "A learnable late-interaction re-ranker (LITE, Ji et al., arXiv 2406.17968): queries and documents are",
        "encoded separately into token vectors, and a small learned MLP scores their similarity matrix.",
        "Document vectors can be stored once and re-used for every query.",
        "",
        "```python",
        "from lite_plugins import LiteModel",
        'model = LiteModel.from_pretrained("path/to/this/folder")',
        'model.score("a query", ["a passage", "another passage"])',
        "```",
        "",
        "## Settings",
        "",
        f"- base encoder: `{base_model}` ({config['encoder']['type']})",
        f"- parameters: {model.num_parameters('encoder'):,} encoder, {model.num_parameters('scorer'):,} scorer",
        f"- stored tokens per document: {model.document_tokens}, token dimension: {model.encoder.embedding_dim}",
        "",
        "```json",
        json.dumps({k: config[k] for k in ("scorer", "token_budget")} | {"encoder": encoder}, indent=2),
        "```",
    ]
    if training:
        lines += ["", "## Training", "", "```json", json.dumps(training, indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"
