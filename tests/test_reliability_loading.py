"""Loading never executes code from a checkpoint: JSON and safetensors only, no pickle, no remote code.

A LITE checkpoint is booby-trapped with everything that makes other loaders run code: pickled weight
and trainer files whose unpickling creates a marker file, a Python module that creates a marker when
imported, and ``auto_map`` / ``trust_remote_code`` entries in config.json and tokenizer_config.json
that point to it. Every loader must load the clean model from it (same scores) and create no marker.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lite_plugins.core import LiteModel

REPO_ROOT = Path(__file__).resolve().parents[1]
TEXTS = ("late interaction", ["a cat on a mat", "token vectors of a passage"])
PICKLED_FILES = ("pytorch_model.bin", "training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth")
#: Code paths that can run code from a file; none may appear in the package (docs aside).
FORBIDDEN_SOURCE = (r"torch\.load\(", r"pickle\.loads?\(", r"allow_pickle\s*=\s*True", r"trust_remote_code\s*=\s*True")

SUMMARY = (
    "Loading never executes code (`tests/test_reliability_loading.py`)",
    [
        "Checkpoints are read as JSON (`config.json`, tokenizer files) and safetensors (`model.safetensors`); "
        "indexes as JSON and numpy arrays memory-mapped with pickling refused. A checkpoint folder is "
        "booby-trapped with pickled " + ", ".join(f"`{name}`" for name in PICKLED_FILES) + " (unpickling "
        "creates a marker file), a Python module `evil.py` that creates a marker when imported, and "
        "`auto_map` / `trust_remote_code` entries in `config.json` and `tokenizer_config.json` naming it. "
        "None of these loaders creates a marker, and each gives the clean model's scores:",
        "",
        "- `LiteModel.from_pretrained(path)`",
        "- `LiteCrossEncoder(path)` and the stock `sentence_transformers.CrossEncoder(path)`",
        "- `transformers.AutoModelForSequenceClassification.from_pretrained(path)` (default "
        "`trust_remote_code`), and `LiteForSequenceClassification.from_pretrained(path, trust_remote_code=True)`"
        " (LITE's loader ignores the flag)",
        "- `LiteReranker(path)` and `lite-plugins rerank --model path`",
        "",
        "A source scan also fails if `torch.load(`, `pickle.load(`, `allow_pickle=True` or "
        "`trust_remote_code=True` appears in `lite_plugins/`. Caveat: passing `trust_remote_code=True` "
        "yourself to the *stock* `CrossEncoder` or `AutoModel...` on a folder with an `auto_map` does run its "
        "code; that is transformers' documented behaviour, not LITE's loader.",
    ],
)


class _Trap:
    """Unpickling this calls ``open(marker, "w")``: a file appears if any loader unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def booby_trap(directory: Path, markers: Path) -> None:
    """Add every code-execution bait to a LITE checkpoint folder (its real files stay valid)."""
    for name in PICKLED_FILES:
        (directory / name).write_bytes(pickle.dumps({"state": _Trap(markers / f"unpickled-{name}")}))
    (directory / "evil.py").write_text(
        f"open({str(markers / 'imported-evil')!r}, 'w').close()\n"
        "from transformers import PretrainedConfig, PreTrainedModel\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'lite'\n"
        "class EvilModel(PreTrainedModel):\n    config_class = EvilConfig\n"
    )
    auto_map = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModel": "evil.EvilModel",
        "AutoModelForSequenceClassification": "evil.EvilModel",
    }
    config = json.loads((directory / "config.json").read_text())
    config.update(auto_map=auto_map, trust_remote_code=True)
    (directory / "config.json").write_text(json.dumps(config))
    tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text())
    tokenizer_config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))


@pytest.fixture(scope="module")
def trapped(tmp_path_factory: pytest.TempPathFactory, tiny_bert_path: Path) -> tuple[Path, Path, torch.Tensor]:
    root = tmp_path_factory.mktemp("trapped")
    model = LiteModel.from_encoder(tiny_bert_path, "separable", query_length=8, document_length=16, seed=0).eval()
    directory = model.save_pretrained(root / "checkpoint")
    markers = root / "markers"
    markers.mkdir()
    booby_trap(directory, markers)
    # The baits are live: loading them the unsafe way does run code (so the test below can fail).
    with open(directory / PICKLED_FILES[0], "rb") as handle:
        pickle.load(handle)
    assert (markers / f"unpickled-{PICKLED_FILES[0]}").exists()
    (markers / f"unpickled-{PICKLED_FILES[0]}").unlink()
    return directory, markers, model.score(*TEXTS)


def _scores_lite_model(path: Path) -> torch.Tensor:
    return LiteModel.from_pretrained(path).score(*TEXTS)


def _scores_cross_encoder(path: Path, stock: bool = False) -> torch.Tensor:
    from sentence_transformers import CrossEncoder

    import lite_plugins.sentence_transformers  # noqa: F401  (registers the LITE model type)
    from lite_plugins.sentence_transformers import LiteCrossEncoder

    model = (CrossEncoder if stock else LiteCrossEncoder)(str(path), device="cpu")
    return torch.as_tensor(model.predict([(TEXTS[0], text) for text in TEXTS[1]]))


def _scores_auto_model(path: Path, trust_remote_code: bool | None) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification

    from lite_plugins.core.hf_model import LiteForSequenceClassification

    if trust_remote_code:
        model = LiteForSequenceClassification.from_pretrained(str(path), trust_remote_code=True)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(path))
    assert isinstance(model, LiteForSequenceClassification)
    return model.lite_model().score(*TEXTS)


def _scores_reranker(path: Path) -> torch.Tensor:
    pytest.importorskip("pyterrier")
    import pandas as pd

    from lite_plugins.pyterrier import LiteReranker

    frame = pd.DataFrame([{"qid": "q", "query": TEXTS[0], "docno": f"d{i}", "text": t} for i, t in enumerate(TEXTS[1])])
    result = LiteReranker(path).transform(frame).sort_values("docno")
    return torch.tensor(result["score"].tolist(), dtype=torch.float32)


def _scores_cli(path: Path) -> torch.Tensor:
    from lite_plugins.cli import main
    from lite_plugins.data import read_run

    work = path.parent / "cli"
    work.mkdir(exist_ok=True)
    (work / "queries.tsv").write_text(f"q\t{TEXTS[0]}\n")
    (work / "candidates.jsonl").write_text(
        "".join(json.dumps({"qid": "q", "docid": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS[1]))
    )
    argv = ["rerank", "--model", str(path), "--queries", str(work / "queries.tsv"), "--quiet"]
    argv += ["--candidates", str(work / "candidates.jsonl"), "--output", str(work / "run.txt"), "--device", "cpu"]
    assert main(argv) == 0
    run = read_run(work / "run.txt")["q"]
    return torch.tensor([run[f"d{i}"] for i in range(len(TEXTS[1]))], dtype=torch.float32)


LOADERS: dict[str, Callable[[Path], torch.Tensor]] = {
    "LiteModel.from_pretrained": _scores_lite_model,
    "LiteCrossEncoder": _scores_cross_encoder,
    "stock CrossEncoder": lambda path: _scores_cross_encoder(path, stock=True),
    "AutoModelForSequenceClassification": lambda path: _scores_auto_model(path, trust_remote_code=None),
    "LiteForSequenceClassification trust_remote_code=True": lambda path: _scores_auto_model(path, True),
    "LiteReranker": _scores_reranker,
    "cli rerank": _scores_cli,
}


@pytest.mark.parametrize("loader", LOADERS)
def test_loading_a_booby_trapped_checkpoint_runs_none_of_its_code(
    loader: str, trapped: tuple[Path, Path, torch.Tensor]
) -> None:
    pytest.importorskip("sentence_transformers")
    directory, markers, expected = trapped
    scores = LOADERS[loader](directory)
    assert sorted(p.name for p in markers.iterdir()) == [], "a loader ran code from the checkpoint"
    assert torch.allclose(scores.float(), expected.float(), atol=1e-5)


def test_the_package_has_no_code_path_that_unpickles_or_trusts_remote_code() -> None:
    offenders = []
    for path in sorted((REPO_ROOT / "lite_plugins").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if any(re.search(pattern, line) for pattern in FORBIDDEN_SOURCE):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert offenders == []
