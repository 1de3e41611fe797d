"""Token encoders: texts -> padded, L2-normalized token vectors (:class:`TokenEmbeddings`)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from lite_plugins.core.encoders.base import SIDES, Side, TokenEmbeddings, TokenEncoder, check_texts
from lite_plugins.core.encoders.transformer import TransformerTokenEncoder

#: encoder type name (as saved in checkpoints) -> "module:Class", imported on first use.
ENCODER_TYPES: dict[str, str] = {
    "transformer": "lite_plugins.core.encoders.transformer:TransformerTokenEncoder",
    "static": "lite_plugins.core.encoders.static:StaticTokenEncoder",
}


def encoder_class(kind: str) -> type[TokenEncoder]:
    if kind not in ENCODER_TYPES:
        raise ValueError(f"unknown encoder type {kind!r}; expected one of {sorted(ENCODER_TYPES)}")
    module_name, class_name = ENCODER_TYPES[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def encoder_from_config(config: dict[str, Any], directory: str | Path) -> TokenEncoder:
    """Rebuild an encoder (architecture + tokenizer, random weights) from a checkpoint's config."""
    return encoder_class(config.get("type", "")).from_config(config, directory)


__all__ = [
    "ENCODER_TYPES",
    "SIDES",
    "Side",
    "TokenEmbeddings",
    "TokenEncoder",
    "TransformerTokenEncoder",
    "check_texts",
    "encoder_class",
    "encoder_from_config",
]
