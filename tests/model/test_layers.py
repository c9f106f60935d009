"""The shared layers against closed forms and brute force."""

import math

import pytest
import torch

from recbole_disentangle.model.layers import (
    EXP_SPACE_MIN_TAU,
    cosine_mixture_scores,
    gaussian_kl_to_prior,
    importance_log_normaliser,
    log_concept_assignment,
    sampled_row_dots,
    segment_logsumexp,
    similarity_matrix,
    sparse_rows_times,
)


def test_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(0)
    sigma0 = 0.3
    mu = torch.randn(4, 6) * 0.5
    log_var_ratio = torch.randn(4, 6) * 0.4  # ln(sigma^2 / sigma0^2)
    sigma = sigma0 * torch.exp(0.5 * log_var_ratio)
    q = torch.distributions.Normal(mu, sigma)
    prior = torch.distributions.Normal(torch.zeros_like(mu), sigma0)
    samples = q.sample((200_000,))
    monte_carlo = (q.log_prob(samples) - prior.log_prob(samples)).sum(-1).mean(0)
    closed = gaussian_kl_to_prior(mu, log_var_ratio, sigma0)
    assert torch.allclose(closed, monte_carlo, rtol=0.02, atol=0.02)
    assert torch.allclose(closed, torch.distributions.kl_divergence(q, prior).sum(-1), atol=1e-4)


def test_kl_without_mean_term_differs_by_a_constant_for_unit_norm_mu():
    mu = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    log_var_ratio = torch.randn(5, 8)
    sigma0 = 0.075
    gap = gaussian_kl_to_prior(mu, log_var_ratio, sigma0) - gaussian_kl_to_prior(mu, log_var_ratio, sigma0, include_mean=False)
    assert torch.allclose(gap, torch.full((5,), 0.5 / sigma0**2))


def test_concept_assignment_is_one_hot_at_test_time_and_a_distribution_in_training():
    logits = torch.randn(50, 7) / 0.1
    test_c = log_concept_assignment(logits, training=False, test_assignment="mode").exp()
    assert torch.equal(test_c.sum(-1), torch.ones(50))
    assert torch.equal(test_c.argmax(-1), logits.argmax(-1))
    assert set(test_c.unique().tolist()) == {0.0, 1.0}
    train_c = log_concept_assignment(logits, training=True).exp()
    assert torch.allclose(train_c.sum(-1), torch.ones(50))
    # Gumbel-max: the arg-max of samples follows softmax(logits).
    torch.manual_seed(0)
    small = torch.tensor([[0.0, math.log(3.0)]]).expand(20_000, 2)
    frequency = log_concept_assignment(small, training=True).argmax(-1).float().mean()
    assert frequency == pytest.approx(0.75, abs=0.02)


def test_cosine_similarity_ignores_norms_and_inner_does_not():
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    assert torch.allclose(similarity_matrix(a * 7, b, "cosine"), similarity_matrix(a, b, "cosine"), atol=1e-6)
    assert torch.allclose(similarity_matrix(a * 7, b, "inner"), 7 * similarity_matrix(a, b, "inner"), atol=1e-5)


def test_segment_logsumexp_matches_per_segment_logsumexp():
    values = torch.tensor([1.0, 2.0, 300.0, -4.0, 5.0])
    segments = torch.tensor([0, 0, 1, 1, 3])
    out = segment_logsumexp(values, segments, 4)
    assert out[0] == pytest.approx(torch.logsumexp(values[:2], 0).item())
    assert out[1] == pytest.approx(300.0)  # no overflow
    assert out[2] == float("-inf")
    assert out[3] == pytest.approx(5.0)


def test_sampled_normaliser_approaches_the_full_softmax_as_samples_cover_the_catalog():
    torch.manual_seed(0)
    n_items, batch = 400, 3
    scores = torch.randn(batch, n_items)
    full = torch.logsumexp(scores, dim=1)
    positives = [torch.tensor([1, 5, 9]), torch.tensor([2]), torch.tensor([7, 8])]
    rows = torch.cat([torch.full((len(p),), u) for u, p in enumerate(positives)])
    cols = torch.cat(positives)
    q = torch.full((n_items,), 1.0 / n_items)

    def estimate(n_samples):
        sampled = torch.multinomial(q, n_samples, replacement=True)
        is_positive = torch.stack([torch.isin(sampled, p) for p in positives])
        return importance_log_normaliser(
            scores[rows, cols], rows, scores[:, sampled], is_positive, torch.log(n_samples * q[sampled]), batch
        )

    errors = [(estimate(s) - full).abs().max().item() for s in (20, 2_000, 200_000)]
    assert errors[2] < 0.01
    assert errors[2] < errors[0]


def _sparse_case(n_rows=6, n_cols=9, density=0.4, d=4, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(n_rows, n_cols, generator=generator) < density
    mask[0] = False  # an empty row
    rows, cols = mask.nonzero(as_tuple=True)
    values = torch.randn(len(rows), generator=generator, dtype=dtype)
    dense = torch.randn(n_cols, d, generator=generator, dtype=dtype)
    return values, dense, rows, cols, n_rows


def test_sparse_rows_times_passes_gradcheck():
    values, dense, rows, cols, n_rows = _sparse_case()
    values.requires_grad_()
    dense.requires_grad_()
    assert torch.autograd.gradcheck(lambda v, t: sparse_rows_times(v, t, rows, cols, n_rows), (values, dense))


def test_sparse_rows_times_equals_torch_sparse_mm_in_value_and_gradients():
    """The old path (torch.sparse.mm on a COO matrix) and the new one agree, entries in any order."""
    values, dense, rows, cols, n_rows = _sparse_case(n_rows=40, n_cols=300, density=0.05, d=16, dtype=torch.float32, seed=1)
    shuffle = torch.randperm(len(rows), generator=torch.Generator().manual_seed(2))
    values, rows, cols = values[shuffle], rows[shuffle], cols[shuffle]
    grad_out = torch.randn(n_rows, 16, generator=torch.Generator().manual_seed(3))
    results = []
    for new in (False, True):
        v, t = values.clone().requires_grad_(), dense.clone().requires_grad_()
        if new:
            out = sparse_rows_times(v, t, rows, cols, n_rows)
        else:
            matrix = torch.sparse_coo_tensor(torch.stack((rows, cols)), v, (n_rows, len(t)), check_invariants=False)
            out = torch.sparse.mm(matrix, t)
        out.backward(grad_out)
        results.append((out.detach(), v.grad, t.grad))
    for old, new in zip(*results):
        assert torch.allclose(old, new, rtol=1e-5, atol=1e-6)


def test_sampled_row_dots_equals_the_dense_product_at_the_entries():
    left, right = torch.randn(5, 3), torch.randn(7, 3)
    rows, cols = torch.tensor([4, 0, 0, 2, 4]), torch.tensor([6, 1, 0, 3, 6])  # unsorted, one repeated
    assert torch.allclose(sampled_row_dots(left, right, rows, cols), (left @ right.t())[rows, cols], atol=1e-6)
    assert sampled_row_dots(left, right, rows[:0], cols[:0]).shape == (0,)


def log_space_mixture(z, h, log_c, tau):
    """The decoder's scores as torch.logsumexp computes them (MacridVAE's inner-product path)."""
    return torch.logsumexp(similarity_matrix(z, h, "cosine") / tau + log_c.t().unsqueeze(0), dim=1)


@pytest.mark.parametrize("tau", [0.1, EXP_SPACE_MIN_TAU])
def test_the_exp_space_mixture_is_the_log_space_one_with_its_gradients(tau):
    torch.manual_seed(0)
    z = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    h = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    h.data[0] = -z.data[0, 0]  # cos = -1 for one (u, k, i): the smallest term e^(-2/tau)
    logits = torch.randn(11, 3, dtype=torch.float64)
    logits[1, 2] = float("-inf")  # a concept switched off for an item (adaptive K): c_ik = 0
    log_c = torch.log_softmax(logits, dim=-1).requires_grad_()
    assert torch.autograd.gradcheck(lambda *x: cosine_mixture_scores(*x, tau), (z, h, log_c))
    weights = torch.randn(4, 11, dtype=torch.float64)
    grads = []
    for scores in (cosine_mixture_scores, log_space_mixture):
        value = scores(z, h, log_c, tau)
        grads.append((value, *torch.autograd.grad((value * weights).sum(), (z, h, log_c))))
    for ours, reference in zip(*grads):
        assert torch.allclose(ours, reference, rtol=1e-10, atol=1e-12)
    # float32 at the smallest tau: every score finite, as close as float32 rounding allows
    ours32 = cosine_mixture_scores(z.float(), h.float(), log_c.float(), tau)
    assert torch.isfinite(ours32).all()
    assert torch.allclose(ours32.double(), grads[1][0], rtol=1e-5, atol=1e-5)

