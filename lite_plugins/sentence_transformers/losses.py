"""Distillation losses for LITE (and any CrossEncoder) with ``CrossEncoderTrainer``.

sentence-transformers already has pairwise Margin-MSE (:class:`MarginMSELoss`) and ListNet
(:class:`ListNetLoss`, listwise KL up to a constant at temperature 1); :class:`ListwiseKLLoss` adds the
temperature that listwise distillation from a teacher with a narrow score range (e.g. cosines) needs.
The stock losses are re-exported so one import serves a training script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.losses import (
    BinaryCrossEntropyLoss,
    ListNetLoss,
    MarginMSELoss,
    MSELoss,
)
from torch import Tensor, nn


class ListwiseKLLoss(nn.Module):
    """KL divergence from the teacher's softmax over a query's candidates to the model's.

    For each query with documents ``d_1..d_n``, teacher scores ``t_i`` and model scores ``s_i``::

        loss = T² · KL( softmax(t / T) || softmax(s / T_s) )

    averaged over queries. ``temperature`` T sharpens (T < 1) or flattens (T > 1) the teacher's
    distribution: a cosine teacher whose scores differ by a few hundredths needs a small T to say
    anything. ``student_temperature`` T_s divides the model's scores (1: raw scores, since a LITE
    model learns its own scale). The T² factor keeps gradients comparable across temperatures
    (Hinton et al., 2015). At T = T_s = 1 the gradient equals ListNet's.

    Lists may differ in length between queries; missing documents are masked out.

    Args:
        model: the CrossEncoder to train (one output label).
        temperature: divides the teacher scores (> 0).
        student_temperature: divides the model's scores (> 0).
        mini_batch_size: pairs per forward pass; None scores all pairs of the batch at once (every
            query is then encoded once per step by a LITE model). Lower it to save memory.

    Inputs:
        +-------------------------------------+----------------------------------------+---------------+
        | Texts                               | Labels                                 | Output labels |
        +=====================================+========================================+===============+
        | (query, [doc_1, doc_2, ..., doc_n]) | [teacher_1, teacher_2, ..., teacher_n] | 1             |
        +-------------------------------------+----------------------------------------+---------------+

    Columns: ``query`` (str), ``docs`` (list of str), ``labels`` (list of float, same length as ``docs``),
    e.g. from :func:`lite_plugins.sentence_transformers.listwise_dataset`.

    Example::

        from sentence_transformers.cross_encoder import CrossEncoderTrainer
        from lite_plugins.sentence_transformers import LiteCrossEncoder, losses
        model = LiteCrossEncoder.from_encoder("sentence-transformers/all-MiniLM-L6-v2")
        loss = losses.ListwiseKLLoss(model, temperature=0.05)
        CrossEncoderTrainer(model=model, train_dataset=dataset, loss=loss).train()
    """

    def __init__(
        self,
        model: CrossEncoder,
        temperature: float = 1.0,
        student_temperature: float = 1.0,
        mini_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if temperature <= 0 or student_temperature <= 0:
            raise ValueError(f"temperatures must be > 0, got {temperature} and {student_temperature}")
        if model.num_labels != 1:
            raise ValueError(f"ListwiseKLLoss needs a model with 1 output label, got {model.num_labels}")
        self.model = model
        self.temperature = float(temperature)
        self.student_temperature = float(student_temperature)
        self.mini_batch_size = mini_batch_size

    def forward(self, inputs: list[Any], labels: Sequence[Tensor] | Tensor) -> Tensor:
        queries, docs_per_query, teacher = self._check_inputs(inputs, labels)
        pairs = [(query, doc) for query, docs in zip(queries, docs_per_query, strict=False) for doc in docs]
        device = self.model.device
        if not pairs:
            return torch.zeros((), device=device, requires_grad=True)
        step = self.mini_batch_size if self.mini_batch_size and self.mini_batch_size > 0 else len(pairs)
        logits = []
        for start in range(0, len(pairs), step):
            tokens = self.model.tokenizer(
                pairs[start : start + step], padding=True, truncation=True, return_tensors="pt"
            )
            logits.append(self.model(**tokens.to(device))[0].view(-1))
        scores = torch.cat(logits).float()

        lengths = [len(docs) for docs in docs_per_query]
        longest = max(lengths)
        rows = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(device)
        columns = torch.cat([torch.arange(n) for n in lengths]).to(device)
        valid = torch.zeros(len(lengths), longest, dtype=torch.bool, device=device)
        valid[rows, columns] = True
        # A large finite fill (not -inf) keeps padded entries at probability 0 without NaN gradients.
        student = torch.full((len(lengths), longest), -1e9, device=device)
        student = student.index_put((rows, columns), scores / self.student_temperature)
        target = torch.full_like(student, -1e9)
        target[rows, columns] = torch.cat(teacher).to(device).float() / self.temperature

        keep = valid.any(dim=1)  # queries without documents carry no signal
        log_student = torch.log_softmax(student[keep], dim=1)
        log_teacher = torch.log_softmax(target[keep], dim=1)
        teacher_prob = log_teacher.exp()
        pointwise = torch.where(
            valid[keep], teacher_prob * (log_teacher - log_student), torch.zeros_like(student[keep])
        )
        return pointwise.sum(dim=1).mean() * self.temperature**2

    @staticmethod
    def _check_inputs(
        inputs: list[Any], labels: Sequence[Tensor] | Tensor
    ) -> tuple[list[str], list[list[str]], list[Tensor]]:
        if len(inputs) != 2:
            raise ValueError(
                "ListwiseKLLoss expects two columns (query, docs) with docs a list of texts per query, "
                f"got {len(inputs)} columns; build the dataset with listwise_dataset()"
            )
        queries, docs_per_query = inputs
        if isinstance(labels, Tensor):
            raise ValueError(
                "ListwiseKLLoss expects one list of teacher scores per query "
                "(shape [n_docs] each, like the docs column), "
                f"got a single tensor of shape {tuple(labels.shape)}"
            )
        if any(isinstance(docs, str) for docs in docs_per_query):
            raise ValueError("ListwiseKLLoss expects the docs column to hold a list of texts per query, got a string")
        teacher = [torch.as_tensor(scores, dtype=torch.float32).reshape(-1) for scores in labels]
        doc_counts = [len(docs) for docs in docs_per_query]
        label_counts = [len(scores) for scores in teacher]
        if len(teacher) != len(queries) or doc_counts != label_counts:
            raise ValueError(
                f"ListwiseKLLoss needs one teacher score per document: documents per query {doc_counts}, "
                f"teacher scores per query {label_counts}"
            )
        for scores in teacher:
            if not torch.isfinite(scores).all():
                raise ValueError("teacher scores contain NaN or Inf")
        return list(queries), [list(docs) for docs in docs_per_query], teacher

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "student_temperature": self.student_temperature,
            "mini_batch_size": self.mini_batch_size,
        }

    @property
    def citation(self) -> str:
        return """
@article{hinton2015distilling,
    title={Distilling the Knowledge in a Neural Network},
    author={Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff},
    journal={arXiv preprint arXiv:1503.02531},
    year={2015}
}
"""


__all__ = ["BinaryCrossEntropyLoss", "ListNetLoss", "ListwiseKLLoss", "MSELoss", "MarginMSELoss"]
