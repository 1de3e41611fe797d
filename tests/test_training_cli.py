"""The training engine, its losses, and the lite-plugins CLI on tiny models and tiny files."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lite_plugins.cli import main
from lite_plugins.core import LiteModel
from lite_plugins.data import read_run
from lite_plugins.training import (
    QueryGroup,
    TrainingConfig,
    VectorCache,
    listwise_ce_loss,
    listwise_kl_loss,
    load_groups,
    margin_mse_loss,
    train,
)

QUERIES = {
    "q1": "what is late interaction ranking",
    "q2": "the cat sat on the mat",
    "q3": "quantum field theory",
}
DOCS = {
    "d1": "a neural ranker learns a similarity matrix of token vectors",
    "d2": "the cat sat on the mat",
    "d3": "quantum field theory of light and energy",
    "d4": "the river bank and the money bank",
    "d5": "library catalog of a book",
}
# Teacher: each query prefers the document that shares its words.
TEACHER = {("q1", "d1"): 5.0, ("q2", "d2"): 5.0, ("q3", "d3"): 5.0}


@pytest.fixture()
def data_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    with open(tmp_path / "candidates.jsonl", "w") as handle:
        for qid in QUERIES:
            for rank, (docid, text) in enumerate(DOCS.items(), start=1):
                handle.write(
                    json.dumps(
                        {"qid": qid, "docid": docid, "rank": rank, "score": float(len(DOCS) - rank), "text": text}
                    )
                    + "\n"
                )
    rows = ["system\tqid\tdocid\tmpnet_dense\tmpnet_maxsim"]
    rows += [f"bm25\t{q}\t{d}\t0\t{TEACHER.get((q, d), 0.0)}" for q in QUERIES for d in DOCS]
    (tmp_path / "teacher.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {d} 1\n" for (q, d) in TEACHER))
    return {
        name: tmp_path / f
        for name, f in {
            "queries": "queries.tsv",
            "candidates": "candidates.jsonl",
            "teacher": "teacher.tsv",
            "qrels": "qrels.txt",
        }.items()
    }


def test_load_groups_mixes_teacher_sources_as_per_query_zscores(data_files: dict[str, Path], tmp_path: Path) -> None:
    # first-stage scores that disagree with the teacher: d5 first, then d4 ...
    with open(data_files["candidates"], "w") as handle:
        for qid in QUERIES:
            for rank, (docid, text) in enumerate(reversed(DOCS.items()), start=1):
                record = {"qid": qid, "docid": docid, "rank": rank, "score": float(10 - rank), "text": text}
                handle.write(json.dumps(record) + "\n")
    args = (data_files["queries"], [data_files["candidates"]], data_files["teacher"])
    single = {g.qid: dict(zip(g.docids, g.targets)) for g in load_groups(*args, teacher_column="mpnet_maxsim")}
    assert single["q1"] == {"d5": 0.0, "d4": 0.0, "d3": 0.0, "d2": 0.0, "d1": 5.0}  # one source: raw scores

    mixed = {g.qid: dict(zip(g.docids, g.targets)) for g in load_groups(*args, ["mpnet_maxsim", "first_stage"])}
    teacher_z = [2.0 if d == "d1" else -0.5 for d in ("d5", "d4", "d3", "d2", "d1")]  # 5,0,0,0,0 -> z
    first_stage_z = [2**0.5, 2**-0.5, 0.0, -(2**-0.5), -(2**0.5)]  # 9,8,7,6,5 -> z
    expected = [(a + b) / 2 for a, b in zip(teacher_z, first_stage_z)]
    assert list(mixed["q1"].values()) == pytest.approx(expected)

    second = tmp_path / "second.jsonl"
    shutil.copy(data_files["candidates"], second)
    with pytest.raises(ValueError, match="exactly one candidate file"):
        load_groups(data_files["queries"], [data_files["candidates"], second], data_files["teacher"], ["first_stage"])
    with pytest.raises(ValueError, match="no column 'nope'"):
        load_groups(*args, teacher_column=["mpnet_maxsim", "nope"])
    with pytest.raises(ValueError, match="exactly one of a teacher file"):
        load_groups(data_files["queries"], [data_files["candidates"]], teacher_column="mpnet_maxsim")
    for bad in (5, [], ["mpnet_maxsim", 3]):
        with pytest.raises(TypeError, match="column name or a non-empty list"):
            load_groups(*args, teacher_column=bad)  # type: ignore[arg-type]
    unscored = tmp_path / "unscored.jsonl"
    unscored.write_text(
        "".join(json.dumps({"qid": "q1", "docid": d, "rank": 1, "text": t}) + "\n" for d, t in DOCS.items())
    )
    with pytest.raises(ValueError, match="same score"):
        load_groups(data_files["queries"], [unscored], teacher_column="first_stage")


def tiny_train_args(data_files: dict[str, Path], encoder: Path, output: Path, batch_size: int, steps: int) -> list[str]:
    """`lite-plugins train` arguments for the tiny BERT and the tiny files (distillation)."""
    return [
        "train",
        *("--queries", str(data_files["queries"]), "--candidates", str(data_files["candidates"])),
        *("--teacher", str(data_files["teacher"]), "--output", str(output), "--encoder", str(encoder)),
        *("--query-length", "8", "--document-length", "16", "--group-size", "4"),
        *("--batch-size", str(batch_size), "--max-steps", str(steps), "--device", "cpu", "--quiet"),
    ]


def groups() -> list[QueryGroup]:
    return [
        QueryGroup(q, text, list(DOCS), list(DOCS.values()), [TEACHER.get((q, d), 0.0) for d in DOCS])
        for q, text in QUERIES.items()
    ]


def test_losses_hand_values_and_shape_errors() -> None:
    targets = torch.tensor([[1.0, 2.0, 3.0]])
    assert listwise_kl_loss(targets.clone(), targets).item() == pytest.approx(0.0, abs=1e-6)
    assert listwise_kl_loss(targets / 2, targets, temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert margin_mse_loss(targets + 7.0, targets).item() == pytest.approx(0.0)
    # pairs (i,j) over a 2-group: differences off by 1 in both orders -> mean of [0, 1, 1, 0] = 0.5
    assert margin_mse_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.5)
    expected = -torch.log_softmax(torch.tensor([0.0, 0.0]), dim=-1)[0]
    assert listwise_ce_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"\[n_queries, group_size\]"):
        listwise_kl_loss(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="at least one candidate with a positive label"):
        listwise_ce_loss(torch.zeros(1, 2), torch.zeros(1, 2))


@pytest.mark.parametrize(
    ("freeze_encoder", "loss"), [(False, "listwise_kl"), (True, "listwise_kl"), (True, "margin_mse")]
)
def test_training_lowers_the_loss(tiny_model: LiteModel, freeze_encoder: bool, loss: str) -> None:
    config = TrainingConfig(
        loss=loss,
        group_size=5,
        batch_size=3,
        max_steps=25,
        learning_rate=3e-3,
        encoder_learning_rate=1e-3,
        freeze_encoder=freeze_encoder,
        warmup_ratio=0.0,
    )
    encoder_before = tiny_model.encoder.model.embeddings.word_embeddings.weight.detach().clone()
    losses = train(tiny_model, groups(), config)
    assert len(losses) == 25
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    encoder_changed = not torch.equal(encoder_before, tiny_model.encoder.model.embeddings.word_embeddings.weight)
    assert encoder_changed is not freeze_encoder
    scores = tiny_model.score(QUERIES["q3"], list(DOCS.values()))
    assert int(scores.argmax()) == 2  # the taught preference


def test_vector_cache_reuses_shards(tiny_model: LiteModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = VectorCache(tiny_model, tmp_path)
    first.add(list(DOCS.values())[:3], "document")
    calls: list[int] = []
    original = tiny_model.encoder.encode

    def counting(texts, side, **kwargs):
        calls.append(len(texts))
        return original(texts, side, **kwargs)

    monkeypatch.setattr(tiny_model.encoder, "encode", counting)
    second = VectorCache(tiny_model, tmp_path)
    second.add(list(DOCS.values()), "document")
    assert calls == [2]  # only the two texts the first run did not see
    text = next(iter(DOCS.values()))
    assert torch.equal(first.vectors[("document", text)], second.vectors[("document", text)])


def test_vector_cache_is_keyed_by_weights_not_by_where_they_came_from(tiny_model: LiteModel) -> None:
    """A head-only checkpoint (encoder referenced by ``source``) reuses the vectors of the same encoder."""
    plain = VectorCache(tiny_model)
    referenced = copy.deepcopy(tiny_model)
    referenced.encoder.source = {"python_package": "some_package"}
    assert VectorCache(referenced).shares_encoder_with(plain)
    changed = copy.deepcopy(tiny_model)
    with torch.no_grad():
        next(changed.encoder.parameters()).add_(0.5)  # a fine-tuned encoder: other vectors
    assert not VectorCache(changed).shares_encoder_with(plain)


def test_cli_train_rerank_evaluate(
    tiny_bert_path: Path, data_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "ckpt"
    code = main(tiny_train_args(data_files, tiny_bert_path, checkpoint, batch_size=2, steps=3))
    assert code == 0
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["training"]["steps"] == 3 and config["training"]["loss"] == "listwise_kl"
    assert config["training"]["teacher_column"] == "mpnet_maxsim"
    mixed = tmp_path / "mixed"
    mix_args = ["--teacher-column", "mpnet_maxsim", "first_stage"]
    assert main([*tiny_train_args(data_files, tiny_bert_path, mixed, batch_size=2, steps=1), *mix_args]) == 0
    assert json.loads((mixed / "config.json").read_text())["training"]["teacher_column"] == mix_args[1:]
    run_path = tmp_path / "run.txt"
    assert (
        main(
            [
                "rerank",
                "--model",
                str(checkpoint),
                "--queries",
                str(data_files["queries"]),
                "--candidates",
                str(data_files["candidates"]),
                "--output",
                str(run_path),
                "--quiet",
            ]
        )
        == 0
    )
    run = read_run(run_path)
    assert set(run) == set(QUERIES) and all(len(docs) == len(DOCS) for docs in run.values())
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_path), "--qrels", str(data_files["qrels"])]) == 0
    table = capsys.readouterr().out
    assert "nDCG@10" in table and str(run_path) in table


def test_cli_errors_say_what_to_fix(
    data_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "rerank",
                "--model",
                str(tmp_path / "nope"),
                "--queries",
                str(data_files["queries"]),
                "--candidates",
                str(data_files["candidates"]),
                "--output",
                str(tmp_path / "r.txt"),
            ]
        )
        == 2
    )
    assert "no checkpoint folder" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "missing.txt"), "--qrels", str(data_files["qrels"])]) == 2
    assert "--run file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "q1", "docid": "d1"}\n')
    assert (
        main(
            [
                "train",
                "--queries",
                str(data_files["queries"]),
                "--candidates",
                str(bad),
                "--teacher",
                str(data_files["teacher"]),
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "missing field(s) ['text']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
    reason="torchrun not installed",
)
def test_train_data_parallel_with_two_cpu_processes(
    tiny_bert_path: Path, data_files: dict[str, Path], tmp_path: Path
) -> None:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    checkpoint = tmp_path / "ddp"
    command = [
        torchrun,
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "lite_plugins.cli",
        *tiny_train_args(data_files, tiny_bert_path, checkpoint, batch_size=1, steps=2),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert LiteModel.from_pretrained(checkpoint).get_config()["training"]["steps"] == 2
