"""Property tests (hypothesis) that every scorer must satisfy, whatever the input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lite_plugins.core import FlattenedLite, LiteScorer, MaxSim, MeanMLP, SeparableLite

L1, L2, DIM = 5, 9, 4
KINDS = ("separable", "flattened", "maxsim", "mean_mlp")


def build(kind: str) -> LiteScorer:
    torch.manual_seed(0)
    scorer = {
        "separable": lambda: SeparableLite(L1, L2, row_hidden=12, column_hidden=6),
        "flattened": lambda: FlattenedLite(L1, L2, hidden_sizes=(12,)),
        "maxsim": lambda: MaxSim(L1, L2, scale=1.3, bias=-0.2),
        "mean_mlp": lambda: MeanMLP(DIM, hidden_size=6, query_length=L1, document_length=L2),
    }[kind]()
    return scorer.eval()


SCORERS = {kind: build(kind) for kind in KINDS}


@st.composite
def batches(draw: st.DrawFn, max_docs: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A query and 1..max_docs documents with random real lengths and garbage in the padding."""
    seed = draw(st.integers(0, 2**16))
    n_docs = draw(st.integers(1, max_docs))
    q_len = draw(st.integers(1, L1))
    d_lens = draw(st.lists(st.integers(0, L2), min_size=n_docs, max_size=n_docs))
    generator = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(1, L1, DIM, generator=generator), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(n_docs, L2, DIM, generator=generator), dim=-1)
    qm = (torch.arange(L1) < q_len)[None, :]
    dm = torch.arange(L2)[None, :] < torch.tensor(d_lens)[:, None]
    return q, d, qm, dm


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None)
@given(batch=batches(), perm_seed=st.integers(0, 1000))
def test_permuting_candidates_permutes_scores(kind: str, batch, perm_seed: int) -> None:
    q, d, qm, dm = batch
    scorer = SCORERS[kind]
    perm = torch.randperm(d.shape[0], generator=torch.Generator().manual_seed(perm_seed))
    with torch.no_grad():
        assert torch.allclose(scorer.score(q, d[perm], qm, dm[perm]), scorer.score(q, d, qm, dm)[:, perm], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None)
@given(batch=batches(), garbage=st.floats(-1e3, 1e3))
def test_padding_content_and_count_never_change_a_score(kind: str, batch, garbage: float) -> None:
    q, d, qm, dm = batch
    scorer = SCORERS[kind]
    # Reference: tensors cut to the longest real length (least padding) ...
    q_width, d_width = int(qm.sum(-1).max()), max(1, int(dm.sum(-1).max()))
    with torch.no_grad():
        reference = scorer.score(q[:, :q_width], d[:, :d_width], qm[:, :q_width], dm[:, :d_width])
        # ... against full-length tensors whose every padded slot holds garbage.
        noisy_q = torch.where(qm[..., None], q, torch.full_like(q, garbage))
        noisy_d = torch.where(dm[..., None], d, torch.full_like(d, -garbage))
        assert torch.allclose(scorer.score(noisy_q, noisy_d, qm, dm), reference, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=20, deadline=None)
@given(batch=batches(), norm=st.sampled_from([0.0, 1e-30, 1e-6, 1.0, 1e3, 1e6]))
def test_outputs_are_finite_for_zero_vectors_and_extreme_norms(kind: str, batch, norm: float) -> None:
    q, d, qm, dm = batch
    with torch.no_grad():
        scores = SCORERS[kind].score(q * norm, d * norm, qm, dm)
    assert torch.isfinite(scores).all(), scores


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_inf_input_is_a_clear_error(kind: str, bad: float) -> None:
    q = torch.ones(1, 3, DIM)
    d = torch.ones(2, 4, DIM)
    d[1, 2, 0] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        SCORERS[kind].score(q, d)
