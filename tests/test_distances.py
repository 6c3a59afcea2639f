"""W2 distances: exact identities, cross-checks against POT and SciPy, and clear errors."""
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import meanfield as mf
from meanfield.analysis import distances
from meanfield.analysis.distances import gaussian_w2, w2
from meanfield.model.measures import ParticleMeasure, sphere_measure, teacher_measure


@pytest.fixture
def clouds(rng):
    return rng.standard_normal((60, 3)), rng.standard_normal((60, 3)) + 0.5


@pytest.mark.parametrize("method", ["exact", "sinkhorn", "sliced"])
def test_distance_to_itself_is_zero_and_translation_gives_its_length(clouds, method):
    x, _ = clouds
    v = np.array([0.3, -1.2, 2.0])
    assert w2(x, x, method="exact").value == pytest.approx(0.0, abs=1e-7)
    if method != "sinkhorn":        # entropic bias: not exactly 0 / |v|
        assert w2(x, x, method=method).value == pytest.approx(0.0, abs=1e-7)
    got = w2(x, x + v, method=method).value
    if method == "exact":
        assert got == pytest.approx(np.linalg.norm(v), rel=1e-9)
    elif method == "sinkhorn":
        assert got == pytest.approx(np.linalg.norm(v), rel=0.05)
    else:   # sliced: sqrt(mean_k (v . theta_k)^2) -> |v| / sqrt(k) as projections grow
        assert got == pytest.approx(np.linalg.norm(v) / np.sqrt(3), rel=0.1)


def test_one_dimensional_distance_is_the_sorted_formula_and_matches_pot(rng):
    import ot
    u, v = rng.standard_normal(500), 2 * rng.standard_normal(500) + 1
    assert w2(u, v).method == "1d"
    assert w2(u, v).value == pytest.approx(np.sqrt(np.mean((np.sort(u) - np.sort(v)) ** 2)), rel=1e-12)
    a, b = rng.dirichlet(np.ones(500)), rng.dirichlet(np.ones(300))
    v = v[:300]
    expected = np.sqrt(ot.emd2(a, b, ot.dist(u[:, None], v[:, None])))
    assert w2(u, v, a, b, method="1d").value == pytest.approx(expected, rel=1e-8)
    assert w2(u, v, a, b, method="1d").value == pytest.approx(np.sqrt(ot.wasserstein_1d(u, v, a, b, p=2)), rel=1e-8)


def test_exact_agrees_with_the_assignment_problem_for_equal_size_clouds(clouds):
    x, y = clouds
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    assert w2(x, y, method="exact").value == pytest.approx(np.sqrt(cost[rows, cols].mean()), rel=1e-10)


def test_sliced_is_a_lower_bound_and_sinkhorn_close_from_above(clouds):
    x, y = clouds
    exact = w2(x, y, method="exact").value
    for seed in range(5):
        assert w2(x, y, method="sliced", seed=seed).value <= exact
    sinkhorn = w2(x, y, method="sinkhorn", reg=0.005)
    assert exact <= sinkhorn.value <= 1.05 * exact
    assert sinkhorn.details["epsilon"] > 0


def test_auto_chooses_exact_then_sliced_and_says_so(rng, monkeypatch):
    x = rng.standard_normal((30, 2))
    assert w2(x, x + 1).method == "exact"
    monkeypatch.setattr(distances, "EXACT_PAIRS", 20 * 20)
    with pytest.warns(UserWarning, match=r"sliced, a lower bound of W2 .*method='exact'"):
        found = w2(x, x + 1)
    assert found.method == "sliced"
    assert found.details["n_projections"] == 200
    assert "(sliced W2, a lower bound of W2)" in str(found)


def test_auto_is_exact_for_a_limit_against_many_particles_and_drops_zero_weights(rng):
    """3,000 points against 300 (2,500 per side used to turn auto into sliced): exact now; points of
    zero weight (a limit's probes) are dropped, the distance unchanged."""
    x, y = rng.standard_normal((3000, 3)), rng.standard_normal((300, 3)) + 0.5
    found = w2(x, y)
    assert found.method == "exact"
    np.testing.assert_allclose(found.value, w2(x, y, method="exact").value, rtol=1e-12)
    padded = np.vstack([y, rng.standard_normal((50, 3))])
    b = np.concatenate([np.full(300, 1 / 300), np.zeros(50)])
    np.testing.assert_allclose(w2(x, padded, b=b).value, found.value, rtol=1e-12)


def test_gaussian_closed_form_against_samples_and_pot(rng):
    import ot
    m1, m2 = np.array([0.0, 1.0]), np.array([1.0, -1.0])
    s1 = np.array([[2.0, 0.3], [0.3, 0.5]])
    s2 = np.array([[1.0, -0.2], [-0.2, 1.5]])
    exact = gaussian_w2(m1, s1, m2, s2)
    assert exact == pytest.approx(float(ot.gaussian.bures_wasserstein_distance(m1, m2, s1, s2)), rel=1e-8)
    assert gaussian_w2(0.0, 1.0, 1.0, 4.0) == pytest.approx(np.sqrt(2.0), rel=1e-12)   # 1-D: |dm|^2 + (s1 - s2)^2
    u, v = rng.normal(0, 1, 200_000), rng.normal(1, 2, 200_000)
    assert w2(u, v).value == pytest.approx(np.sqrt(2.0), rel=0.01)


def test_bad_inputs_raise_distance_errors(clouds):
    x, y = clouds
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(mf.DistanceError, match="non-finite"):
        w2(bad, y)
    with pytest.raises(mf.DistanceError, match="dimension"):
        w2(x, y[:, :2])
    with pytest.raises(mf.DistanceError, match="sums to"):
        w2(x, y, a=np.full(60, 0.5 / 60))
    with pytest.raises(mf.DistanceError, match="non-negative"):
        w2(x, y, a=np.r_[-0.5, np.full(59, 1.5 / 59)])
    with pytest.raises(mf.DistanceError, match="non-empty"):
        w2(np.zeros((0, 3)), y)
    with pytest.raises(mf.DistanceError, match="method"):
        w2(x, y, method="emd")
    with pytest.raises(mf.DistanceError, match="did not converge"):
        w2(x, y, method="exact", max_iterations=3)
    with pytest.raises(mf.DistanceError, match="one-dimensional"):
        w2(x, y, method="1d")


def test_measures_and_projections(rng):
    theta = np.array([[3.0, 4.0, 2.0], [0.0, 1.0, -1.0], [0.0, 0.0, 5.0]])
    mu = sphere_measure(theta)
    np.testing.assert_allclose(mu.points, [[0.6, 0.8], [0.0, 1.0]])
    np.testing.assert_allclose(mu.weights, [10 / 11, 1 / 11])
    nu = teacher_measure(np.array([[0.0, 2.0, 1.0]]))
    np.testing.assert_allclose(nu.points, [[0.0, 1.0]])
    np.testing.assert_allclose(nu.weights, [1.0])
    angle = np.arccos(0.8)
    assert w2(mu.points, nu.points, mu.weights, nu.weights).value == pytest.approx(
        np.sqrt(10 / 11 * (2 * np.sin(angle / 2)) ** 2), rel=1e-9)
    marg = ParticleMeasure.uniform(rng.standard_normal((10, 3))).marginal([2])
    assert marg.points.shape == (10, 1)


def test_gaussian_reference_measure_matches_its_closed_form(rng):
    from meanfield.model.measures import gaussian_measure
    mean, cov = np.array([1.0, -1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])
    mu = gaussian_measure(mean, cov, 50_000, rng)
    assert mu.points.shape == (50_000, 2)
    assert mu.weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(np.cov(mu.points.T), cov, atol=0.05)
    assert gaussian_w2(mu.points.mean(0), np.cov(mu.points.T), mean, cov) < 0.05


def test_w1_on_the_line_is_the_closed_form_and_pot_agrees(rng):
    from scipy.stats import wasserstein_distance

    from meanfield.analysis.distances import w1

    x, y = rng.standard_normal(40), 0.5 + 2.0 * rng.standard_normal(25)
    a, b = rng.random(40), rng.random(25)
    a, b = a / a.sum(), b / b.sum()
    closed = w1(x, y, a, b)
    assert closed.method == "1d"
    np.testing.assert_allclose(closed.value, wasserstein_distance(x, y, a, b), rtol=1e-12)
    np.testing.assert_allclose(w1(x, y, a, b, method="exact").value, closed.value, rtol=1e-9)
    np.testing.assert_allclose(w1(x, x + 0.75).value, 0.75, rtol=1e-12)          # a shift moves by its length


def test_w1_in_the_plane_is_at_most_w2_and_exact_for_a_translation(rng):
    from meanfield.analysis.distances import w1

    x = rng.standard_normal((30, 2))
    y = rng.standard_normal((20, 2)) + [1.0, -0.5]
    assert w1(x, y).method == "exact"
    assert w1(x, y).value <= w2(x, y, method="exact").value + 1e-12
    np.testing.assert_allclose(w1(x, x + [0.3, 0.4]).value, 0.5, rtol=1e-9)
    with pytest.raises(mf.DistanceError, match="one-dimensional"):
        w1(x, y, method="1d")
