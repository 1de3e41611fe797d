"""The README's commands are what CI runs, and the package stays light to import."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def _block(marker: str) -> str:
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    start = lines.index(f"<!-- ci:{marker} -->")
    body = lines[start + 2 :]
    assert lines[start + 1] == "```bash", f"a bash block must follow the ci:{marker} marker"
    return "\n".join(body[: body.index("```")])


def test_ci_runs_the_readme_commands() -> None:
    script = (REPO_ROOT / ".ci" / "run").read_text()
    assert "extract main-job" in script and "extract tests" in script
    assert "pytest" in _block("tests") and "pip install" in _block("tests")
    assert "lite-plugins rerank" in _block("main-job") and "pip install" in _block("main-job")


def test_import_is_light() -> None:
    """`import lite_plugins` imports no optional ecosystem (only the core: torch + transformers)."""
    code = (
        "import sys, lite_plugins; "
        "print(sorted(m for m in ('sentence_transformers', 'pylate', 'pyterrier', 'model2vec', 'voyager', "
        "'fast_plaid') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
