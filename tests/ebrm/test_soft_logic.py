"""Soft-logic operators: Boolean truth tables, bounds, monotonicity, numpy/torch agreement."""

import itertools

import numpy as np
import pytest

from ebrm.soft_logic import FAMILIES, soft_and, soft_or


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_truth_tables(family, n):
    for bits in itertools.product([0.0, 1.0], repeat=n):
        x = np.array(bits)
        assert soft_and(x, family) == float(all(bits))
        assert soft_or(x, family) == float(any(bits))


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_and_is_true_empty_or_is_false(family):
    assert soft_and(np.zeros(0), family) == 1.0
    assert soft_or(np.zeros(0), family) == 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_bounds_and_monotonicity(family):
    rng = np.random.default_rng(0)
    for _ in range(200):
        x = rng.random(4)
        y = np.minimum(1.0, x + rng.random(4) * 0.3)  # y >= x elementwise
        a, o = soft_and(x, family), soft_or(x, family)
        assert 0.0 <= a <= x.min() + 1e-12  # a t-norm never exceeds its smallest input
        assert x.max() - 1e-12 <= o <= 1.0  # a t-conorm never falls below its largest input
        assert soft_and(y, family) >= a - 1e-12
        assert soft_or(y, family) >= o - 1e-12


def test_unknown_family():
    with pytest.raises(ValueError, match="unknown t-norm"):
        soft_and(np.ones(2), "zadeh")


@pytest.mark.parametrize("family", FAMILIES)
def test_torch_matches_numpy_and_has_gradients(family):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    s, c = rng.random((3, 2)), rng.random((3, 4))
    ts = torch.tensor(s, requires_grad=True)
    tc = torch.tensor(c, requires_grad=True)
    out = soft_or(ts, family) * (1 + soft_and(tc, family))  # EBRM's sat · (1 + ok)
    want = soft_or(s, family) * (1 + soft_and(c, family))
    np.testing.assert_allclose(out.detach().numpy(), want, atol=1e-12)
    out.sum().backward()
    assert ts.grad is not None and torch.isfinite(ts.grad).all()
