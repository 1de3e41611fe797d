"""Interrupted writes: a process SIGKILLed mid-way through an index build or a checkpoint save.

Each test starts a child Python process that writes over an existing index (or checkpoint) and is
killed with SIGKILL at a chosen point: while encoding, while writing the weights file, between the
two renames of the final swap, or at a random moment of a save loop. Afterwards the previous index
or checkpoint must still load with its old contents, and the half-written leftovers (hidden
``.name.tmp-*`` folders) must never load as an index or a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from lite_plugins.core import CheckpointError, LiteModel
from lite_plugins.core.checkpoint import is_lite_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]

SUMMARY = (
    "Interrupted writes (`tests/test_reliability_writes.py`)",
    [
        "A child process is killed with SIGKILL (no clean-up runs) at a chosen point of a write:",
        "",
        "| what is written | killed | afterwards |",
        "|---|---|---|",
        "| `LiteIndex` build (`mode='overwrite'`) | while encoding documents | the old index loads, "
        "files byte-identical; the hidden `.index.tmp-*` leftover has no `pt_meta.json`, "
        "so `LiteIndex(leftover)` refuses it; a rebuild works |",
        "| `LiteIndex` build | between the two renames of the swap | the old index is recovered from "
        "`.index.old-*` on first use |",
        "| `LiteModel.save_pretrained` over a checkpoint | while writing `model.safetensors` | the old checkpoint "
        "loads with identical scores; the leftover (truncated weights, no tokenizer) is refused (`CheckpointError`) |",
        "| `LiteModel.save_pretrained` | between the two renames of the swap | the old checkpoint is recovered |",
        "| `LiteModel.save_pretrained` in a loop | at a random moment (several runs) | the folder loads as "
        "exactly one of the saved models |",
        "",
        "Writes go to a hidden sibling folder that is renamed into place only when complete "
        "(`lite_plugins.core.atomic_directory`); the index metadata file is written last.",
        "",
        "Every file written (checkpoints through `LiteModel`, `LiteCrossEncoder` and `LiteColBERT`, index and "
        "vector-cache files) gets the mode the umask gives a new file: safetensors >= 0.8.1 creates its files "
        "0600, which would lock other users (a container user, a shared model folder) out of the weights only.",
        "",
        "`LiteCrossEncoder.save` (and so the sentence-transformers trainer's checkpoints, which save through it) "
        "writes the whole folder beside the old one and swaps it in; other entries of the folder (a trainer's "
        "`checkpoint-N` folders, a user's files) are carried over as hard links with their modes "
        "(tested with a write that fails midway, not with SIGKILL). Not covered: calling "
        "`LiteForSequenceClassification.save_pretrained` directly (the transformers API) replaces "
        "`config.json` and `model.safetensors` one file at a time, each atomically, so a kill between the two "
        "can leave a new config beside old weights.",
    ],
)

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from pathlib import Path

    import torch
    torch.set_num_threads(1)
    settings = json.loads(sys.argv[1])
    ready = Path(settings["ready"])

    def stop_here():
        ready.write_text("ready")
        time.sleep(600)  # the parent kills us here

    def kill_between_renames(module):
        real_replace = module.os.replace
        calls = []

        def replace(source, target):
            real_replace(source, target)
            calls.append(target)
            if len(calls) == 1 and Path(target).exists() and ".old-" in Path(target).name:
                ready.write_text("ready")
                os.kill(os.getpid(), signal.SIGKILL)

        module.os.replace = replace

    from lite_plugins.core import LiteModel
    import lite_plugins.core.checkpoint as checkpoint

    what, where = settings["what"], settings["where"]
    if what == "index":
        from lite_plugins.pyterrier import LiteIndex
        model = LiteModel.from_pretrained(settings["checkpoint"])

        def records():
            for i in range(200):
                if i == 40 and where == "encoding":
                    stop_here()
                yield {"docno": f"new{i}", "text": f"document number {i} about late interaction"}

        if where == "swap":
            kill_between_renames(checkpoint)
        LiteIndex(settings["target"]).indexer(model, mode="overwrite", chunk_size=16).index(records())
    else:
        import lite_plugins.core.model as model_module
        new = LiteModel.from_encoder(
            settings["bert"], "separable", query_length=8, document_length=16, seed=settings["seed"]
        )
        if where == "weights":
            real_save_file = model_module.save_file

            def save_file(state, path, metadata=None):
                real_save_file(state, path, metadata=metadata)
                data = Path(path).read_bytes()
                Path(path).write_bytes(data[: len(data) // 3])  # as if the process died while writing
                stop_here()

            model_module.save_file = save_file
        elif where == "swap":
            kill_between_renames(checkpoint)
        if where == "loop":
            other = LiteModel.from_encoder(
                settings["bert"], "separable", query_length=8, document_length=16, seed=settings["seed"] + 1
            )
            for number in range(10_000):
                (new if number % 2 else other).save_pretrained(settings["target"])
                if number == 1:
                    ready.write_text("ready")
        else:
            new.save_pretrained(settings["target"])
    sys.exit(3)  # never reached when killed
    """
)


def run_child_until_killed(tmp_path: Path, delay: float = 0.0, **settings: object) -> None:
    """Start the child, wait until it reaches its kill point, SIGKILL it (``delay`` seconds later)."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    environment = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen(
        [sys.executable, str(script), json.dumps({**settings, "ready": str(ready)})],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), f"child never reached its kill point: {child.stderr.read().decode()[-2000:]}"
        time.sleep(delay)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        status = child.wait(timeout=60)
        assert status == -signal.SIGKILL, f"child exited by itself ({status}), it was not interrupted"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()


def file_hashes(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def leftovers(directory: Path) -> list[Path]:
    return sorted(p for p in directory.parent.iterdir() if p.name.startswith(f".{directory.name}."))


# --- LiteIndex ---------------------------------------------------------------------------------
@pytest.fixture()
def old_index(tmp_path: Path, tiny_model: LiteModel, corpus: list[str]):
    pytest.importorskip("pyterrier")
    from lite_plugins.pyterrier import LiteIndex

    checkpoint = tiny_model.save_pretrained(tmp_path / "checkpoint")
    records = [{"docno": f"d{i}", "text": text} for i, text in enumerate(corpus)]
    index = LiteIndex(tmp_path / "index.lite").indexer(tiny_model).index(records)
    return index, checkpoint, records


def _rerank_scores(index, model: LiteModel, records: list[dict[str, str]]) -> list[float]:
    import pandas as pd

    frame = pd.DataFrame([{"qid": "q", "query": "late interaction", "docno": r["docno"]} for r in records])
    return index.reranker(model).transform(frame).sort_values("docno")["score"].tolist()


def test_index_build_killed_while_encoding_leaves_the_old_index(old_index, tiny_model: LiteModel, tmp_path: Path):
    from lite_plugins.pyterrier import LiteIndex

    index, checkpoint, records = old_index
    before, scores = file_hashes(index.path), _rerank_scores(index, tiny_model, records)
    run_child_until_killed(tmp_path, what="index", where="encoding", checkpoint=str(checkpoint), target=str(index.path))
    assert file_hashes(index.path) == before
    reopened = LiteIndex(index.path)
    assert len(reopened) == len(records) and _rerank_scores(reopened, tiny_model, records) == scores
    # The half-written build stays hidden, and is never taken for an index.
    (partial,) = leftovers(index.path)
    assert ".tmp-" in partial.name and (partial / "vectors.f16").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="no LITE index"):
        len(LiteIndex(partial))
    # A new build after the crash works.
    rebuilt = LiteIndex(index.path).indexer(tiny_model, mode="overwrite").index(records[:2])
    assert len(rebuilt) == 2


def test_index_build_killed_between_the_renames_recovers_the_old_index(
    old_index, tiny_model: LiteModel, tmp_path: Path
):
    from lite_plugins.pyterrier import LiteIndex

    index, checkpoint, records = old_index
    before, scores = file_hashes(index.path), _rerank_scores(index, tiny_model, records)
    run_child_until_killed(tmp_path, what="index", where="swap", checkpoint=str(checkpoint), target=str(index.path))
    assert not index.path.exists()  # the kill landed in the window between the two renames
    reopened = LiteIndex(index.path)
    assert len(reopened) == len(records)
    assert file_hashes(index.path) == before and _rerank_scores(reopened, tiny_model, records) == scores


# --- LiteModel.save_pretrained -----------------------------------------------------------------
@pytest.fixture()
def old_checkpoint(tmp_path: Path, tiny_model: LiteModel) -> tuple[Path, torch.Tensor]:
    path = tiny_model.save_pretrained(tmp_path / "checkpoint")
    return path, tiny_model.score("late interaction", ["a cat", "token vectors"])


def test_save_killed_while_writing_weights_leaves_the_old_checkpoint(
    old_checkpoint: tuple[Path, torch.Tensor], tiny_bert_path: Path, tmp_path: Path
) -> None:
    path, scores = old_checkpoint
    before = file_hashes(path)
    run_child_until_killed(
        tmp_path, what="checkpoint", where="weights", bert=str(tiny_bert_path), seed=7, target=str(path)
    )
    assert file_hashes(path) == before
    assert torch.equal(LiteModel.from_pretrained(path).score("late interaction", ["a cat", "token vectors"]), scores)
    (partial,) = leftovers(path)
    with pytest.raises(CheckpointError):  # its weights are cut short and its tokenizer was never written
        LiteModel.from_pretrained(partial)


def test_save_killed_between_the_renames_recovers_the_old_checkpoint(
    old_checkpoint: tuple[Path, torch.Tensor], tiny_bert_path: Path, tmp_path: Path
) -> None:
    path, scores = old_checkpoint
    before = file_hashes(path)
    run_child_until_killed(
        tmp_path, what="checkpoint", where="swap", bert=str(tiny_bert_path), seed=7, target=str(path)
    )
    assert not path.exists()
    assert torch.equal(LiteModel.from_pretrained(path).score("late interaction", ["a cat", "token vectors"]), scores)
    assert file_hashes(path) == before


def test_save_loop_killed_at_random_moments_always_leaves_a_whole_checkpoint(
    tiny_bert_path: Path, tmp_path: Path
) -> None:
    texts = ("late interaction", ["a cat", "token vectors"])
    expected = [
        LiteModel.from_encoder(tiny_bert_path, "separable", query_length=8, document_length=16, seed=seed).score(*texts)
        for seed in (11, 12)
    ]
    target = tmp_path / "checkpoint"
    generator = random.Random(0)
    for run in range(2):
        run_child_until_killed(
            tmp_path, delay=generator.uniform(0.0, 1.5), what="checkpoint", where="loop",
            bert=str(tiny_bert_path), seed=11, target=str(target),
        )  # fmt: skip
        scores = LiteModel.from_pretrained(target).score(*texts)
        assert any(torch.equal(scores, candidate) for candidate in expected), f"run {run}: a mixed checkpoint"
        for partial in leftovers(target):  # hidden: never used; if read anyway, whole or refused
            if ".tmp-" in partial.name:
                try:
                    partial_scores = LiteModel.from_pretrained(partial).score(*texts)
                except CheckpointError:
                    continue
                assert any(torch.equal(partial_scores, candidate) for candidate in expected)


# --- LiteCrossEncoder.save ---------------------------------------------------------------------
def test_cross_encoder_save_failing_midway_leaves_the_old_checkpoint(
    tiny_model: LiteModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sentence_transformers")
    import lite_plugins.core.hf_model as hf_model
    from lite_plugins.sentence_transformers import LiteCrossEncoder

    path = tmp_path / "checkpoint"
    LiteCrossEncoder.from_lite_model(tiny_model, device="cpu").save(str(path))
    before = file_hashes(path)
    other = LiteModel.from_encoder(tiny_model.encoder, "maxsim", query_length=6, document_length=12)

    def fail_while_writing_weights(*args, **kwargs):  # the config of the new model is already written
        raise OSError("disk full")

    monkeypatch.setattr(hf_model, "save_file", fail_while_writing_weights)
    with pytest.raises(OSError, match="disk full"):
        LiteCrossEncoder.from_lite_model(other, device="cpu").save(str(path))
    assert file_hashes(path) == before and not leftovers(path)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX permission bits")
def test_cross_encoder_save_keeps_other_files_of_the_folder_as_they_were(tiny_model: LiteModel, tmp_path: Path) -> None:
    """A trainer's output folder holds checkpoint-N folders; saving the final model there must keep them."""
    pytest.importorskip("sentence_transformers")
    from lite_plugins.sentence_transformers import LiteCrossEncoder

    path = tmp_path / "output"
    (path / "checkpoint-5").mkdir(parents=True)
    (path / "checkpoint-5" / "optimizer.pt").write_bytes(b"optimizer state")
    (path / "notes.txt").write_text("mine")
    (path / "notes.txt").chmod(0o600)
    (path / ".git").mkdir()
    (path / ".git" / "HEAD").write_text("ref: refs/heads/main")
    model = LiteCrossEncoder.from_lite_model(tiny_model, device="cpu")
    for _ in range(2):  # into a folder with other files, then over its own checkpoint
        model.save(str(path))
        assert (path / "checkpoint-5" / "optimizer.pt").read_bytes() == b"optimizer state"
        assert (path / ".git" / "HEAD").read_text() == "ref: refs/heads/main"  # hidden entries too
        assert (path / "notes.txt").read_text() == "mine" and (path / "notes.txt").stat().st_mode & 0o777 == 0o600
        assert not leftovers(path)
    pairs = [("late interaction", "a cat"), ("late interaction", "token vectors")]
    assert torch.allclose(
        torch.as_tensor(LiteCrossEncoder(str(path), device="cpu").predict(pairs)),
        torch.as_tensor(model.predict(pairs)),
    )


def test_cross_encoder_save_into_the_working_directory_or_nowhere(
    tiny_model: LiteModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process's own working directory cannot be swapped away: it is written in place."""
    pytest.importorskip("sentence_transformers")
    from lite_plugins.sentence_transformers import LiteCrossEncoder

    model = LiteCrossEncoder.from_lite_model(tiny_model, device="cpu")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "data.txt").write_text("keep")
    monkeypatch.chdir(workdir)  # first: were "" or "." swapped after all, only this folder could suffer
    with pytest.raises(ValueError, match="must name a folder"):
        model.save("")
    model.save(".")
    assert Path.cwd().exists() and Path.cwd().samefile(workdir) and (workdir / "data.txt").read_text() == "keep"
    assert is_lite_checkpoint(workdir)


# --- file modes ----------------------------------------------------------------------------------
def _modes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mode & 0o777 for p in directory.rglob("*") if p.is_file()}


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX permission bits")
@pytest.mark.parametrize("writer", ["LiteModel", "CrossEncoder", "VectorCache"])
def test_written_files_get_the_umask_mode_not_owner_only(writer: str, tiny_model: LiteModel, tmp_path: Path) -> None:
    """safetensors >= 0.8.1 creates its files 0600; a checkpoint must be as readable as its config.json."""
    previous = os.umask(0o022)
    try:
        if writer == "LiteModel":
            tiny_model.save_pretrained(tmp_path / "out")
        elif writer == "CrossEncoder":
            from lite_plugins.sentence_transformers import LiteCrossEncoder

            LiteCrossEncoder.from_lite_model(tiny_model, device="cpu").save(str(tmp_path / "out"))
        else:
            from lite_plugins.training import VectorCache

            VectorCache(tiny_model, tmp_path / "out").add(["a passage", "another passage"], "document")
    finally:
        os.umask(previous)
    modes = _modes(tmp_path / "out")
    assert any(name.endswith(".safetensors") for name in modes), modes
    assert set(modes.values()) == {0o644}, {name: oct(mode) for name, mode in modes.items()}
