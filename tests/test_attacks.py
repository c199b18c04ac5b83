"""Membership inference: ROC maths vs scikit-learn, scores, the calibration protocol, LiRA, and a sanity band."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from medhe import attacks as A
from medhe import data, params
from medhe import rng as rngmod
from medhe.attacks import scores


def _two_class_proba(conf: np.ndarray) -> np.ndarray:
    return np.column_stack([conf, 1 - conf])  # label 0 is the true label everywhere below


def _input(members_conf: np.ndarray, nonmembers_conf: np.ndarray) -> A.AttackInput:
    """Attack input from the true-label confidences of members and non-members (true label 0)."""
    return A.AttackInput.from_proba(proba_members=_two_class_proba(members_conf),
                                    labels_members=np.zeros(members_conf.size, int),
                                    proba_nonmembers=_two_class_proba(nonmembers_conf),
                                    labels_nonmembers=np.zeros(nonmembers_conf.size, int))


# ------------------------------------------------------------------ ROC maths (golden vs sklearn)


@pytest.mark.golden
@pytest.mark.parametrize("case", range(6))
def test_roc_curve_and_auc_match_sklearn(case: int) -> None:
    # Prepare: with ties (rounded scores) and without
    g = rngmod.generator(case, "test-roc")
    n = int(g.integers(5, 200))
    y = g.random(n) < 0.4
    y[:2] = [True, False]
    s = g.normal(size=n) + y
    if case % 2:
        s = np.round(s, 1)
    # Execute
    fpr, tpr, thr = A.roc_curve(s, y)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(y, s, drop_intermediate=False)
    # Assert
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])
    assert A.roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    for target in (0.01, 0.05, 0.2, 0.5):
        expected = sk_tpr[sk_fpr <= target].max() if target >= sk_fpr[sk_fpr > 0].min() else math.nan
        got = A.tpr_at_fpr(fpr, tpr, target=target)
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_tpr_at_unresolvable_fpr_is_nan_with_warning() -> None:
    # 150 evaluation non-members: FPR resolution 1/150, so 1 % resolves and 0.1 % does not
    s = np.r_[np.linspace(1, 2, 300), np.linspace(0, 1.5, 300)]
    y = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    split = A.membership_split(300, 300, seed=0)
    res = A.evaluate_scores("x", s, y, split.calibration, seed=0, config=A.MIAConfig(n_bootstrap=50))
    assert not math.isnan(res.tpr_at_fpr[0.01]) and math.isnan(res.tpr_at_fpr[0.001])
    assert any("FPR 0.001 not resolvable: 150 evaluation non-members" in w for w in res.warnings)


def test_fit_threshold_and_balanced_accuracy_by_hand() -> None:
    s = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 1, 1], bool)
    t = A.fit_threshold(s, y)
    # TPR - FPR is 2/3 at both 0.8 (TPR 2/3, FPR 0) and 0.35 (TPR 1, FPR 1/3); ties go to the
    # higher threshold, placed halfway to the next distinct score 0.4
    assert t == pytest.approx(0.6)
    assert A.balanced_accuracy(s >= t, y) == pytest.approx((2 / 3 + 1) / 2)


# ------------------------------------------------------------------ scores


def test_modified_entropy_matches_hand_computation() -> None:
    # Mentr([0.7, 0.2, 0.1], y=0) = -(0.3) ln 0.7 - 0.2 ln 0.8 - 0.1 ln 0.9
    lp = scores.log_proba_from_proba(np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]]))
    got = scores.modified_entropy(lp, np.array([0, 2]))
    assert got[0] == pytest.approx(-0.3 * np.log(0.7) - 0.2 * np.log(0.8) - 0.1 * np.log(0.9), rel=1e-12)
    # y = 2: -(1 - 0.1) ln 0.1 - 0.7 ln 0.3 - 0.2 ln 0.8
    assert got[1] == pytest.approx(-0.9 * np.log(0.1) - 0.7 * np.log(0.3) - 0.2 * np.log(0.8), rel=1e-12)


def test_scores_from_logits_do_not_tie_when_probabilities_saturate() -> None:
    logits = np.array([[60.0, 0.0], [50.0, 0.0], [40.0, 0.0]])
    lp = scores.log_softmax(logits)
    assert np.all(np.exp(lp[:, 0]).astype(np.float32) == 1.0)  # saturated as probabilities
    for s in (scores.confidence_score(lp, np.zeros(3, int)), scores.entropy_score(lp),
              scores.modified_entropy_score(lp, np.zeros(3, int))):
        assert np.all(np.diff(s) < 0), s  # strictly ordered: more confident = more member-like
    np.testing.assert_allclose(scores.logit_confidence(lp, np.zeros(3, int)), [60, 50, 40])


@pytest.mark.parametrize("a", [2.0, 4.0])
def test_confidence_attack_auc_near_analytic_value(a: float, global_random_seed: int) -> None:
    # Members' confidence ~ Beta(a, 1), non-members' ~ U(0, 1) = Beta(1, 1):
    # AUC = P(X > U) = E[X] = a / (a + 1).
    g = rngmod.generator(global_random_seed, "test-beta")
    n = 4000
    inp = _input(g.beta(a, 1, n), g.uniform(size=n))
    split = A.membership_split(n, n, seed=0)
    res = A.run_attacks(inp, calibration=split.calibration, seed=0, config=A.MIAConfig(n_bootstrap=200))
    conf = next(r for r in res if r.attack == "confidence")
    # Hanley & McNeil (1982) standard error of the AUC on the evaluation half (2,000 + 2,000)
    auc, m = a / (a + 1), (~split.calibration).sum() // 2
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = np.sqrt((auc * (1 - auc) + (m - 1) * (q1 - auc**2) + (m - 1) * (q2 - auc**2)) / m**2)
    assert conf.auc == pytest.approx(auc, abs=4 * se)  # se = 0.0085 (a = 2), 0.0070 (a = 4)
    assert 0.6 * 2 * 1.96 * se <= conf.auc_ci[1] - conf.auc_ci[0] <= 1.5 * 2 * 1.96 * se  # bootstrap width
    # best balanced accuracy: threshold t* = (1/a)^(1/(a-1)), BA = (1 - t*^a + t*) / 2
    t = (1 / a) ** (1 / (a - 1))
    assert conf.success_rate == pytest.approx((1 - t**a + t) / 2, abs=0.04)  # measured sd 0.011 over 20 seeds
    assert all(0 <= r.success_rate <= 1 for r in res)


# ------------------------------------------------------------------ protocol


def test_membership_split_is_balanced_seeded_and_half_half() -> None:
    s1 = A.membership_split(455, 114, seed=3)
    s2 = A.membership_split(455, 114, seed=3)
    assert len(s1.members) == len(s1.nonmembers) == 114
    assert len(np.unique(s1.members)) == 114 and s1.members.max() < 455
    np.testing.assert_array_equal(s1.members, s2.members)
    np.testing.assert_array_equal(s1.calibration, s2.calibration)
    cal, m = s1.calibration, s1.is_member
    assert cal[m].sum() == cal[~m].sum() == 57
    assert not np.array_equal(A.membership_split(455, 114, seed=4).members, s1.members)


def test_thresholds_are_fit_on_calibration_only() -> None:
    # Calibration says "member iff score >= 0.5"; the evaluation split is arranged so that
    # a threshold fitted on it would be 2.5 and score perfectly. We must report 0.5's result.
    cal_s = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    cal_y = np.array([0, 0, 0, 1, 1, 1], bool)
    ev_s = np.array([1.0, 2.0, 2.2, 3.0, 3.5, 4.0])
    ev_y = np.array([0, 0, 0, 1, 1, 1], bool)
    s, y = np.r_[cal_s, ev_s], np.r_[cal_y, ev_y]
    cal = np.r_[np.ones(6, bool), np.zeros(6, bool)]
    res = A.evaluate_scores("x", s, y, cal, seed=0, config=A.MIAConfig(n_bootstrap=20))
    assert res.threshold == pytest.approx(0.5)
    assert res.success_rate == pytest.approx(0.5)  # everybody in eval is predicted member
    assert res.auc == 1.0  # the threshold-free metric sees the separation


def test_attack_models_never_see_evaluation_labels(global_random_seed: int) -> None:
    # Permuting the evaluation split's membership labels must not move any threshold or
    # any learned-attack score: fitting only reads calibration records.
    g = rngmod.generator(global_random_seed, "test-perm")
    n = 60
    inp = _input(g.beta(3, 1, n), g.beta(1, 1, n))
    split = A.membership_split(n, n, seed=0)
    logp, labels, is_member = inp.stacked()
    feats = scores.attack_features(logp, labels)
    base = A.learned_attack_scores(feats, is_member, split.calibration)
    shuffled = is_member.copy()
    ev = np.flatnonzero(~split.calibration)
    shuffled[ev] = g.permutation(shuffled[ev])
    np.testing.assert_array_equal(A.learned_attack_scores(feats, shuffled, split.calibration), base)
    for s in (scores.confidence_score(logp, labels), scores.entropy_score(logp)):
        t1 = A.evaluate_scores("x", s, is_member, split.calibration, seed=0, config=A.MIAConfig(n_bootstrap=10))
        t2 = A.evaluate_scores("x", s, shuffled, split.calibration, seed=0, config=A.MIAConfig(n_bootstrap=10))
        assert t1.threshold == t2.threshold


def test_suspiciously_low_auc_is_flagged(global_random_seed: int) -> None:
    g = rngmod.generator(global_random_seed, "test-low")
    n = 200
    inp = _input(g.beta(1, 3, n), g.beta(3, 1, n))
    split = A.membership_split(n, n, seed=0)
    res = A.run_attacks(inp, calibration=split.calibration, seed=0, config=A.MIAConfig(n_bootstrap=10))
    conf = next(r for r in res if r.attack == "confidence")
    assert conf.auc < 0.4 and conf.warnings[0].startswith("suspiciously low AUC")


def test_run_attacks_is_deterministic_per_seed() -> None:
    g = rngmod.generator(5, "test-det")
    n = 80
    inp = _input(g.beta(2, 1, n), g.beta(1, 1, n))
    split = A.membership_split(n, n, seed=0)
    cfg = A.MIAConfig(n_bootstrap=100)
    a, b, c = (A.run_attacks(inp, calibration=split.calibration, seed=s, config=cfg) for s in (0, 0, 1))
    assert [r.to_row() for r in a] == [r.to_row() for r in b]
    assert [r.success_ci for r in a] != [r.success_ci for r in c]  # only the bootstrap depends on the seed


# ------------------------------------------------------------------ LiRA maths


def test_shadow_assignment_is_balanced_per_record() -> None:
    a = A.shadow_assignment(50, n_shadows=6, keep=0.5, rng=rngmod.generator(0, "t"))
    assert a.shape == (6, 50) and (a.sum(axis=0) == 3).all()


def test_lira_scores_match_gaussian_formulas() -> None:
    g = rngmod.generator(3, "test-lira")
    phi = g.normal(size=(6, 4))
    inside = A.shadow_assignment(4, n_shadows=6, keep=0.5, rng=g)
    target = g.normal(size=4)
    off = A.lira_offline(target, phi, inside, fixed_variance=False)
    on = A.lira_online(target, phi, inside, fixed_variance=False)
    for j in range(4):
        o, i = phi[~inside[:, j], j], phi[inside[:, j], j]
        assert off[j] == pytest.approx((target[j] - o.mean()) / o.std(ddof=1))
        expected = norm.logpdf(target[j], i.mean(), i.std(ddof=1)) - norm.logpdf(target[j], o.mean(), o.std(ddof=1))
        assert on[j] == pytest.approx(expected)


def _lira_known_case(seed: int, sigmas: tuple[float, ...], *, n_records: int = 4000, n_shadows: int = 128,
                     mu: float = 1.0, tau: float = 2.0):
    """Synthetic LiRA world with a known answer. Record j has a difficulty c_j ~ N(0, tau^2) and a
    noise level sigma_j (drawn from ``sigmas``); a model that trained on j outputs
    phi = c_j + mu + sigma_j Z, one that did not c_j + sigma_j Z. Returns (target phi, membership,
    shadow phi, shadow assignment, sigma_j)."""
    g = rngmod.generator(seed, "test-lira-known")
    c = g.normal(0, tau, n_records)
    sd = g.choice(np.asarray(sigmas), n_records)
    inside = A.shadow_assignment(n_records, n_shadows=n_shadows, keep=0.5, rng=g)
    shadow = c + mu * inside + sd * g.normal(size=(n_shadows, n_records))
    member = g.random(n_records) < 0.5
    target = c + mu * member + sd * g.normal(size=n_records)
    return target, member, shadow, inside, sd


def _phi(x):
    return norm.cdf(x)


def _mixture_auc(member_means, member_vars, non_means, non_vars, weights) -> float:
    """AUC = P(S_member > S_nonmember) for Gaussian mixtures with equal weights per component."""
    return float(sum(wa * wb * _phi((ma - nb) / np.sqrt(va + vb))
                     for ma, va, wa in zip(member_means, member_vars, weights)
                     for nb, vb, wb in zip(non_means, non_vars, weights)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lira_known_case_equal_noise_both_variance_modes(seed: int) -> None:
    """Every record has sigma = 1, mu = 1: with many shadows LiRA's offline score is the
    record's z-score, members ~ N(mu / sigma, 1) and non-members ~ N(0, 1), so
    AUC = Phi(mu / (sigma sqrt 2)) = 0.760 in both variance modes; online, the log-likelihood
    ratio is (2 d mu - mu^2) / (2 sigma^2), same ranking. A global threshold on phi, blind to the
    record's difficulty c_j (tau = 2), only reaches Phi(mu / sqrt(2 (sigma^2 + tau^2))) = 0.624."""
    target, member, shadow, inside, _ = _lira_known_case(seed, (1.0,))
    expected = _phi(1 / np.sqrt(2))
    for fixed in (True, False):
        off = A.lira_offline(target, shadow, inside, fixed_variance=fixed)
        on = A.lira_online(target, shadow, inside, fixed_variance=fixed)
        assert A.roc_auc(off, member) == pytest.approx(expected, abs=0.025), fixed
        assert A.roc_auc(on, member) == pytest.approx(expected, abs=0.025), fixed
        # the scores themselves, not only their ranks: z-scores of the OUT fit, and the LLR's moments
        assert off[~member].mean() == pytest.approx(0.0, abs=0.08) and off[~member].std() == pytest.approx(1.0, abs=0.06)
        assert off[member].mean() == pytest.approx(1.0, abs=0.08)
        assert on[~member].mean() == pytest.approx(-0.5, abs=0.08) and on[member].mean() == pytest.approx(0.5, abs=0.08)
        # LLR spread mu / sigma = 1, inflated by the finite-shadow error of mu_in - mu_out (64 + 64 shadows:
        # relative sd sqrt(2 / 64) = 0.18), measured 1.01-1.13 over seeds 0-5
        assert 0.95 <= on[member].std() <= 1.2
    assert A.roc_auc(target, member) == pytest.approx(_phi(1 / np.sqrt(2 * (1 + 4))), abs=0.025)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lira_known_case_unequal_noise_separates_the_variance_modes(seed: int) -> None:
    """Half the records have sigma = 0.5, half sigma = 2 (mu = 1). Per-example variance scores
    d / sigma_j: members ~ N(mu / sigma_a, 1), non-members ~ N(0, 1), AUC = mean_a Phi(mu / (sigma_a sqrt 2))
    = 0.780. The pooled variance scores d / sigma_pool: AUC = mean_ab Phi(mu / sqrt(sigma_a^2 + sigma_b^2))
    = 0.733. Online per-example: (2 d mu - mu^2) / (2 sigma_j^2), members ~ N(1 / (2 sigma_a^2), 1 / sigma_a^2),
    non-members ~ N(-1 / (2 sigma_b^2), 1 / sigma_b^2): AUC 0.814. Measured over seeds 0-5: 0.774-0.791,
    0.726-0.746 and 0.807-0.820."""
    sig = (0.5, 2.0)
    w = (0.5, 0.5)
    target, member, shadow, inside, sd = _lira_known_case(seed, sig)
    per_example = _mixture_auc([1 / s for s in sig], [1, 1], [0, 0], [1, 1], w)
    pooled = _mixture_auc([1, 1], [s**2 for s in sig], [0, 0], [s**2 for s in sig], w)
    online = _mixture_auc([1 / (2 * s**2) for s in sig], [1 / s**2 for s in sig],
                          [-1 / (2 * s**2) for s in sig], [1 / s**2 for s in sig], w)
    assert (round(per_example, 3), round(pooled, 3), round(online, 3)) == (0.780, 0.733, 0.814)
    auc = {(kind, fixed): A.roc_auc(fn(target, shadow, inside, fixed_variance=fixed), member)
           for kind, fn in (("off", A.lira_offline), ("on", A.lira_online)) for fixed in (True, False)}
    assert auc[("off", False)] == pytest.approx(per_example, abs=0.025)
    assert auc[("off", True)] == pytest.approx(pooled, abs=0.025)
    assert auc[("on", False)] == pytest.approx(online, abs=0.025)
    assert auc[("on", True)] == pytest.approx(pooled, abs=0.025)
    # paired on the same draws the gap between the modes is sharper than either AUC
    assert auc[("off", False)] - auc[("off", True)] == pytest.approx(per_example - pooled, abs=0.015)
    # per-example offline scores of non-members are standard normal within each noise level
    off = A.lira_offline(target, shadow, inside, fixed_variance=False)
    for s in sig:
        z = off[~member & (sd == s)]
        assert z.mean() == pytest.approx(0.0, abs=0.1) and z.std() == pytest.approx(1.0, abs=0.08), s


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("call, name", [
    (lambda: A.roc_curve(np.zeros(3), np.array([True, False])), "equal length"),
    (lambda: A.AttackInput.from_proba(proba_members=np.array([[0.5, 0.6], [0.5, 0.5]]), labels_members=[0, 1],
                                      proba_nonmembers=np.array([[0.5, 0.5], [0.5, 0.5]]), labels_nonmembers=[0, 1]),
     "sums to 1.1"),
    (lambda: A.AttackInput.from_proba(proba_members=np.full((3, 2), 0.5), labels_members=[0, 1],
                                      proba_nonmembers=np.full((2, 2), 0.5), labels_nonmembers=[0, 1]),
     "labels_members must be 1-D with 3"),
    (lambda: A.MIAConfig(n_shadows=0), "n_shadows=0"),
    (lambda: A.MIAConfig(fpr_targets=(0.01, 1.0)), "target=1.0"),
    (lambda: A.tpr_at_fpr(np.array([0.0, 1.0]), np.array([0.0, 1.0]), target=0.0), "target=0.0"),
    (lambda: A.MIAConfig(calibration_fraction=1.0), "calibration_fraction=1.0"),
    (lambda: A.shadow_assignment(10, n_shadows=1, keep=0.5, rng=np.random.default_rng(0)), "n_shadows=1"),
])
def test_bad_inputs_raise_value_error_naming_the_value(call, name: str) -> None:
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        call()


# ------------------------------------------------------------------ sanity on a real federated run


@pytest.fixture(scope="module")
def noisy_breast_cancer():
    """40 members / 40 non-members / 40 other records of breast_cancer with 30 % flipped labels.

    On clean breast_cancer the MLP generalises almost perfectly (non-member accuracy
    ~0.97) and the threshold attacks sit at AUC ~0.5 even after 100 % training
    accuracy; label noise forces memorisation, the textbook setting where MIA must work.
    """
    from medhe.fl.simulate import load_dataset

    P = params.load_dict({"data": {"dataset": "breast_cancer", "num_clients": 1},
                          "model": {"name": "mlp", "hidden": 64},
                          "train": {"rounds": 1, "local_epochs": 60, "batch_size": 8, "lr": 3e-2}})
    full = load_dataset(P)
    g = rngmod.generator(0, "test-sanity")
    y = full.y_train.copy()
    flip = g.random(len(y)) < 0.3
    y[flip] = 1 - y[flip]
    perm = g.permutation(len(y))
    a, b, c = np.split(perm[:120], 3)
    extra = perm[120:220]  # more held-out records: the offline shadows' pool (each trains on 40, as the target)

    def subset(tr: np.ndarray, te: np.ndarray) -> data.Dataset:
        return data.Dataset(name="bc-noisy", kind="tabular", x_train=full.x_train[tr], y_train=y[tr],
                            x_test=full.x_train[te], y_test=y[te], label_names=full.label_names)

    return P, subset(a, np.r_[b, extra]), subset(c, b)


def test_overfit_model_leaks_and_untrained_model_does_not(noisy_breast_cancer, tmp_path) -> None:
    from medhe import fl

    P, target_ds, control_ds = noisy_breast_cancer
    cfg = A.MIAConfig(n_shadows=2, n_bootstrap=200)
    # Execute: the full pipeline on the overfit target (4 shadows: 2 offline, 2 online) ...
    report = A.evaluate_run(P, method="fedavg", seed=1, dataset=target_ds, config=cfg)
    # ... and the same members / non-members against a model trained on other records
    control = fl.run(P, method="fedavg", seed=1, progress=False, dataset=control_ds)
    split = A.membership_split(40, 40, seed=1)
    inp = A.attack_input(P, control.final_weights, dataset=target_ds, split=split, seed=1)
    control_res = A.run_attacks(inp, calibration=split.calibration, seed=1, config=cfg)
    # Assert
    auc = {r.attack: r.auc for r in report.results}
    print("target AUC", auc, "control AUC", {r.attack: r.auc for r in control_res})
    assert report.info["member_accuracy"] == 1.0  # memorised, noisy labels included
    assert auc["confidence"] >= 0.75 and auc["modified_entropy"] >= 0.75
    assert auc["lira_offline"] >= 0.65 and auc["lira_online"] >= 0.65
    control_auc = {r.attack: r.auc for r in control_res}
    assert all(0.3 <= v <= 0.7 for v in control_auc.values()), control_auc
    for attack in ("confidence", "modified_entropy", "learned_logistic"):
        assert auc[attack] >= control_auc[attack] + 0.15, attack
    assert report.worst_case().success_rate >= 0.65
    # LiRA offline: every shadow trains on as many records as the target, and every attacked record is
    # OUT for every shadow, calibration and evaluation alike (Carlini et al. 2022)
    assert report.info["target_train_size"] == 40
    assert report.info["shadow_train_sizes"]["offline"] == [40] * cfg.n_shadows
    assert report.info["shadow_out_counts"]["offline"] == {"calibration_min": cfg.n_shadows,
                                                           "evaluation_min": cfg.n_shadows}
    assert report.n_members == 40  # the pool of 140 - 80 attacked records leaves room for 40 + 1
    # Results on disk: CSV + JSON only, with the agreed columns
    paths = A.write_report(report, tmp_path)
    frame = report.to_frame()
    for col in ("method", "seed", "attack", "success_rate", "ci_low", "ci_high", "auc", "auc_ci_low", "auc_ci_high",
                "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "n_members", "n_nonmembers", "warnings"):
        assert col in frame.columns
    assert set(frame["attack"]) == {*A.PAPER_ATTACKS, "lira_offline", "lira_online"}
    roc = report.roc_frame()
    assert list(roc.columns) == ["method", "seed", "attack", "fpr", "tpr"] and roc["fpr"].between(0, 1).all()
    summary = json.loads(paths["mia.json"].read_text())["summary"]
    assert summary["worst_case_attack"] in A.PAPER_ATTACKS
    assert paths["mia.csv"].read_text().startswith("method,seed,attack")


def test_evaluate_run_is_deterministic_and_rejects_a_result_from_another_run(noisy_breast_cancer) -> None:
    from medhe import fl

    P, target_ds, _ = noisy_breast_cancer
    res = fl.run(P, method="fedavg", seed=2, progress=False, dataset=target_ds)
    cfg = A.MIAConfig(lira=(), n_bootstrap=100)
    first, second = (A.evaluate_run(P, method="fedavg", seed=2, dataset=target_ds, result=res, config=cfg)
                     for _ in range(2))
    assert first.to_frame().equals(second.to_frame()) and first.roc_frame().equals(second.roc_frame())
    with pytest.raises(ValueError, match="seed"):
        A.evaluate_run(P, method="fedavg", seed=1, dataset=target_ds, result=res, config=cfg)


# ------------------------------------------------------------------ worst case chosen on calibration


def _result(attack: str, cal_rate: float, eval_rate: float) -> "A.AttackResult":
    return A.AttackResult(attack=attack, score=attack, success_rate=eval_rate, success_ci=(0.0, 1.0), auc=0.5,
                          auc_ci=(0.0, 1.0), tpr_at_fpr={}, threshold=0.0, n_members_eval=10, n_nonmembers_eval=10,
                          fpr=np.array([0.0, 1.0]), tpr=np.array([0.0, 1.0]), calibration_success_rate=cal_rate)


def test_worst_case_is_chosen_on_the_calibration_split_and_every_attack_keeps_its_row() -> None:
    results = (_result("confidence", 0.52, 0.60), _result("entropy", 0.58, 0.49),
               _result("modified_entropy", 0.50, 0.51), _result("learned_logistic", 0.55, 0.50))
    report = A.MIAReport(method="m", seed=0, results=results, n_members=20, n_nonmembers=20, config=A.MIAConfig())
    worst = report.worst_case()
    assert worst.attack == "entropy" and worst.success_rate == 0.49  # not confidence's 0.60 on evaluation
    assert report.summary()["worst_case_success_rate"] == 0.49
    frame = report.to_frame()
    assert list(frame["attack"]) == list(A.PAPER_ATTACKS)
    assert list(frame["calibration_success_rate"]) == [0.52, 0.58, 0.50, 0.55]


@pytest.mark.parametrize("seed", [0, 1])
def test_worst_case_without_membership_signal_is_unbiased(seed: int) -> None:
    """No signal (members and non-members from one distribution): choosing the best of the four attacks
    on the evaluation split itself averages well above 0.5; choosing on calibration does not."""
    rng = np.random.default_rng(seed)
    cfg = A.MIAConfig(n_bootstrap=1)
    chosen, best_on_eval = [], []
    n = 150
    for _ in range(120):
        logits = rng.normal(scale=2.0, size=(2 * n, 2))
        labels = rng.integers(0, 2, size=2 * n)
        inp = A.AttackInput.from_logits(logits_members=logits[:n], labels_members=labels[:n],
                                        logits_nonmembers=logits[n:], labels_nonmembers=labels[n:])
        cal = np.r_[rng.permutation(n) < n // 2, rng.permutation(n) < n // 2]
        res = A.run_attacks(inp, calibration=cal, seed=0, config=cfg)
        report = A.MIAReport(method="m", seed=0, results=res, n_members=n, n_nonmembers=n, config=cfg)
        chosen.append(report.worst_case().success_rate)
        best_on_eval.append(max(r.success_rate for r in res))
    se = np.std(chosen, ddof=1) / np.sqrt(len(chosen))
    assert abs(np.mean(chosen) - 0.5) < 3 * se + 1e-3
    assert np.mean(best_on_eval) > 0.5 + 3 * se  # the bias the calibration choice removes
