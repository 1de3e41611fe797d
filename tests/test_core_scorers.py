"""Scorer properties: hand-computed values, padding invariance, pairings, shapes, dtypes, gradients."""

from __future__ import annotations

import pytest
import torch

from lite_plugins.core import (
    FlattenedLite,
    LiteScorer,
    MaxSim,
    MeanMLP,
    SeparableLite,
    TokenBudget,
    build_scorer,
    similarity,
)

L1, L2, DIM = 6, 10, 4


def make_scorers() -> dict[str, LiteScorer]:
    torch.manual_seed(0)
    return {
        "separable": SeparableLite(L1, L2, row_hidden=16, column_hidden=8),
        "flattened": FlattenedLite(L1, L2, hidden_sizes=(16, 8)),
        "maxsim": MaxSim(L1, L2, scale=0.7, bias=0.3),
        "mean_mlp": MeanMLP(DIM, hidden_size=8, query_length=L1, document_length=L2),
    }


def random_tokens(n: int, length: int, real: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    emb = torch.nn.functional.normalize(torch.randn(n, length, DIM), dim=-1)
    lengths = real if real is not None else [length] * n
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return emb * mask[..., None], mask


def test_similarity_hand_computed() -> None:
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    d = torch.tensor([[[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [0.0, 0.0]]])
    S, qm, dm = similarity(q, d, document_mask=torch.tensor([[True, True], [True, False]]))
    expected = torch.tensor([[[[1.0, 0.6], [0.0, 0.8]], [[0.0, 0.0], [1.0, 0.0]]]])
    assert torch.allclose(S, expected)
    assert qm.shape == (1, 1, 2) and dm.shape == (1, 2, 2)


def test_maxsim_hand_computed_equals_colbert() -> None:
    S = torch.tensor([[0.2, 0.9, 0.5], [0.4, 0.1, 0.3], [7.0, 7.0, 7.0]])
    qmask = torch.tensor([True, True, False])
    dmask = torch.tensor([True, True, False])
    # rows: max(0.2, 0.9) + max(0.4, 0.1) = 1.3; third row is padding, third column too.
    assert MaxSim()(S, qmask, dmask).item() == pytest.approx(1.3)
    assert MaxSim(scale=2.0, bias=-1.0)(S, qmask, dmask).item() == pytest.approx(1.6)


def test_maxsim_document_without_tokens_scores_bias_only() -> None:
    S = torch.zeros(2, 3)
    assert MaxSim(bias=0.25)(S, torch.ones(2, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)).item() == 0.25


@pytest.mark.parametrize("kind", ["separable", "flattened", "maxsim", "mean_mlp"])
def test_padding_content_and_count_do_not_change_scores(kind: str) -> None:
    scorer = make_scorers()[kind].eval()
    torch.manual_seed(1)
    q, qm = random_tokens(2, 4, real=[4, 3])
    d, dm = random_tokens(3, 7, real=[7, 5, 2])
    reference = scorer.score(q, d, qm, dm)
    # More padding (longer tensors) with garbage in every padded slot.
    q_wide = torch.cat([q, torch.randn(2, 2, DIM) * 50], dim=1)
    qm_wide = torch.cat([qm, torch.zeros(2, 2, dtype=torch.bool)], dim=1)
    d_wide = torch.cat([d, torch.randn(3, 3, DIM) * 50], dim=1)
    dm_wide = torch.cat([dm, torch.zeros(3, 3, dtype=torch.bool)], dim=1)
    q_wide[1, 3] = 99.0  # pad slot inside the original length
    d_wide[2, 4] = -42.0
    assert torch.allclose(scorer.score(q_wide, d_wide, qm_wide, dm_wide), reference, atol=1e-5)


@pytest.mark.parametrize("kind", ["separable", "flattened", "maxsim", "mean_mlp"])
def test_pairings_agree(kind: str) -> None:
    scorer = make_scorers()[kind].eval()
    q, qm = random_tokens(2, 5, real=[5, 2])
    d, dm = random_tokens(6, 8, real=[8, 7, 6, 5, 4, 1])
    all_pairs = scorer.score(q, d, qm, dm, pairing="all")
    assert all_pairs.shape == (2, 6)
    grouped = scorer.score(q, d.view(2, 3, 8, DIM), qm, dm.view(2, 3, 8), pairing="grouped")
    assert torch.allclose(grouped, torch.stack([all_pairs[0, :3], all_pairs[1, 3:]]), atol=1e-5)
    rows = torch.tensor([0, 1, 1, 0, 0, 1])
    aligned = scorer.score(q[rows], d, qm[rows], dm, pairing="aligned")
    assert torch.allclose(aligned, all_pairs[rows, torch.arange(6)], atol=1e-5)


@pytest.mark.parametrize("kind", ["separable", "flattened", "maxsim"])
def test_permuting_candidates_permutes_scores(kind: str) -> None:
    scorer = make_scorers()[kind].eval()
    q, qm = random_tokens(1, 5)
    d, dm = random_tokens(5, 8, real=[8, 3, 6, 1, 7])
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(scorer.score(q, d[perm], qm, dm[perm]), scorer.score(q, d, qm, dm)[:, perm], atol=1e-6)


def test_separable_uses_token_order() -> None:
    """LITE is position-sensitive (unlike MaxSim): reversing document tokens changes its score."""
    scorer = make_scorers()["separable"].eval()
    q, qm = random_tokens(1, 4)
    d, dm = random_tokens(1, 8)
    reversed_d = d.flip(1)
    assert not torch.allclose(scorer.score(q, d, qm, dm), scorer.score(q, reversed_d, qm, dm))
    maxsim = MaxSim()
    assert torch.allclose(maxsim.score(q, d, qm, dm), maxsim.score(q, reversed_d, qm, dm), atol=1e-6)


def test_too_long_similarity_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"at most 6 x 10"):
        make_scorers()["separable"](torch.zeros(7, 10))


def test_nan_input_is_a_clear_error() -> None:
    S = torch.zeros(2, 3)
    S[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        make_scorers()["separable"](S)


def test_mismatched_dimensions_are_named() -> None:
    with pytest.raises(ValueError, match="token dimension 4 != document token dimension 3"):
        similarity(torch.zeros(1, 2, 4), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"\[n_queries, group_size, document_tokens, dim\]"):
        similarity(torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), pairing="grouped")
    with pytest.raises(ValueError, match="pairing must be one of"):
        similarity(torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), pairing="diagonal")  # type: ignore[arg-type]


def test_mean_mlp_needs_token_vectors() -> None:
    with pytest.raises(TypeError, match="not a similarity matrix"):
        make_scorers()["mean_mlp"](torch.zeros(2, 3))


def test_default_hidden_sizes_scale_from_the_paper() -> None:
    paper = SeparableLite(30, 200)
    assert (paper.row_hidden, paper.column_hidden) == (2400, 360)
    n_params = sum(p.numel() for p in paper.parameters())
    assert 0.9e6 < n_params < 1.1e6, n_params  # "about 1M parameters for the head at paper sizes"


def test_build_scorer_round_trips_config() -> None:
    for scorer in make_scorers().values():
        rebuilt = build_scorer(scorer.get_config())
        assert type(rebuilt) is type(scorer) and rebuilt.get_config() == scorer.get_config()
    with pytest.raises(ValueError, match="unknown scorer type"):
        build_scorer("colbert")


@pytest.mark.parametrize("kind", ["separable", "flattened", "maxsim", "mean_mlp"])
def test_bfloat16_close_to_float32(kind: str) -> None:
    scorer = make_scorers()[kind].eval()
    q, qm = random_tokens(2, 5)
    d, dm = random_tokens(3, 9)
    full = scorer.score(q, d, qm, dm)
    half = scorer.to(torch.bfloat16).score(q.bfloat16(), d.bfloat16(), qm, dm)
    assert half.dtype == torch.bfloat16
    assert torch.allclose(half.float(), full, atol=0.1 * (1 + full.abs().max().item()))


@pytest.mark.parametrize("kind", ["separable", "flattened", "maxsim", "mean_mlp"])
def test_gradients_reach_every_scorer_parameter(kind: str) -> None:
    scorer = make_scorers()[kind]
    q, qm = random_tokens(2, 5)
    d, dm = random_tokens(3, 9)
    scorer.score(q, d, qm, dm).sum().backward()
    for name, parameter in scorer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_token_budget_pool_and_truncate() -> None:
    emb = torch.arange(1, 7, dtype=torch.float32).view(1, 6, 1).repeat(2, 1, 1)
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    pooled, pooled_mask = TokenBudget(3, "pool", normalize=False)(emb, mask)
    assert pooled[0, :, 0].tolist() == [1.5, 3.5, 5.5]  # 6 tokens -> 3 segments of 2
    assert pooled[1, :2, 0].tolist() == [1.0, 2.0] and pooled_mask[1].tolist() == [True, True, False]
    truncated, truncated_mask = TokenBudget(3, "truncate", normalize=False)(emb, mask)
    assert truncated[0, :, 0].tolist() == [1.0, 2.0, 3.0] and truncated_mask[0].all()


def test_maxsim_residual_starts_as_maxsim_and_learns() -> None:
    """The residual option: an untrained head scores exactly MaxSim; gradients still reach the MLPs."""
    scorer = SeparableLite(L1, L2, row_hidden=16, column_hidden=8, maxsim_residual=True)
    q, qm = random_tokens(2, 5, real=[5, 3])
    d, dm = random_tokens(4, 9, real=[9, 4, 7, 1])
    assert torch.allclose(scorer.score(q, d, qm, dm), MaxSim().score(q, d, qm, dm), atol=1e-6)
    assert build_scorer(scorer.get_config()).maxsim_residual
    torch.nn.functional.cross_entropy(scorer.score(q, d, qm, dm), torch.tensor([0, 1])).backward()
    assert scorer.output.weight.grad.abs().sum() > 0 and scorer.maxsim_scale.grad is not None
