"""Import-time checks for optional ecosystems: a missing extra names the pip command that fixes it."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


def require(extra: str, *modules: str) -> None:
    """Raise ImportError naming ``pip install "lite-plugins[extra]"`` if any module is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"lite_plugins.{extra.replace('-', '_')} needs {', '.join(missing)}; "
            f'install it with: pip install "lite-plugins[{extra}]"'
        )


def import_optional(module: str, extra: str) -> ModuleType:
    require(extra, module)
    return importlib.import_module(module)
