"""The class-prior baseline: the attack code's own numbers for a model that knows no record, on a run's split."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medhe import attacks as A
from medhe import params, prior_attack


@pytest.fixture(scope="module")
def bc():
    from medhe.fl.simulate import load_dataset

    P = params.load_dict({"data": {"dataset": "breast_cancer", "num_clients": 2}, "model": {"name": "mlp", "hidden": 8},
                          "train": {"rounds": 1, "local_epochs": 1, "batch_size": 32, "lr": 1e-2},
                          "mia": {"n_bootstrap": 50}})
    return P, load_dataset(P)


def test_prior_scores_are_log_class_frequencies_and_refuse_an_unseen_label() -> None:
    got = prior_attack.prior_scores(np.array([0, 0, 0, 1]), np.array([1, 0, 1]))
    np.testing.assert_allclose(got, [math.log(0.25), math.log(0.75), math.log(0.25)])
    with pytest.raises(ValueError, match=r"labels \[2\]"):
        prior_attack.prior_scores(np.array([0, 1]), np.array([2]))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_prior_attack_is_the_confidence_attack_on_a_model_that_outputs_the_prior(bc, seed: int) -> None:
    # the same numbers through the paper's confidence attack, fed a model whose output is the class prior
    P, ds = bc
    split = prior_attack.attack_split(P, seed=seed, dataset=ds)
    prior = np.bincount(ds.y_train) / len(ds.y_train)
    labels_m, labels_n = ds.y_train[split.members], ds.y_test[split.nonmembers]
    inp = A.AttackInput.from_proba(proba_members=np.tile(prior, (len(labels_m), 1)), labels_members=labels_m,
                                   proba_nonmembers=np.tile(prior, (len(labels_n), 1)), labels_nonmembers=labels_n)
    cfg = A.config_from_params(P.mia)
    confidence = {r.attack: r for r in A.run_attacks(inp, calibration=split.calibration, seed=seed, config=cfg)}
    confidence = confidence["confidence"]
    got = prior_attack.prior_attack(P, seed=seed, dataset=ds)
    assert got.auc == pytest.approx(confidence.auc, abs=1e-12)
    assert got.success_rate == pytest.approx(confidence.success_rate, abs=1e-12)
    assert got.calibration_success_rate == pytest.approx(confidence.calibration_success_rate, abs=1e-12)
    # and the AUC is the label mix alone: 1/2 + (share of the majority label among evaluation members
    # - among evaluation non-members) / 2, checked against scikit-learn
    m = len(split.members)
    ev_m, ev_n = ~split.calibration[:m], ~split.calibration[m:]
    major = int(np.argmax(prior))
    share_m, share_n = (labels_m[ev_m] == major).mean(), (labels_n[ev_n] == major).mean()
    assert got.auc == pytest.approx(0.5 + (share_m - share_n) / 2, abs=1e-12)
    scores = np.log(prior[np.r_[labels_m[ev_m], labels_n[ev_n]]])
    truth = np.r_[np.ones(ev_m.sum()), np.zeros(ev_n.sum())]
    assert got.auc == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)


def test_a_split_with_the_same_label_mix_gives_exactly_one_half() -> None:
    # members and non-members with identical label mix in calibration and evaluation alike
    labels = np.array([0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1])
    is_member = np.r_[np.ones(6, bool), np.zeros(6, bool)]
    calibration = np.r_[np.ones(3, bool), np.zeros(3, bool), np.ones(3, bool), np.zeros(3, bool)]
    res = A.evaluate_scores("class_prior", prior_attack.prior_scores(labels, labels), is_member, calibration, seed=0,
                            config=A.MIAConfig(n_bootstrap=20))
    assert res.auc == 0.5 and res.success_rate == 0.5


@pytest.mark.parametrize("lira", [(), ("offline",)])
def test_prior_table_rebuilds_each_runs_split_and_refuses_one_that_differs(bc, tmp_path, lira) -> None:
    from medhe import fl

    P0, ds = bc
    P = params.load_dict({**P0.to_dict(), "mia": {**P0.to_dict()["mia"], "lira": list(lira), "n_shadows": 2}})
    run_dir = tmp_path / "quick" / "runs" / "fedavg_s3"
    res = fl.run(P, method="fedavg", seed=3, progress=False, dataset=ds, out_dir=run_dir)
    A.write_report(A.evaluate_run(P, method="fedavg", seed=3, dataset=ds, result=res,
                                  config=A.config_from_params(P.mia)), run_dir)
    table = prior_attack.prior_table("quick", root=tmp_path)
    expected = prior_attack.prior_attack(P, seed=3, dataset=ds)
    assert table[["method", "seed", "attack"]].values.tolist() == [["fedavg", 3, "class_prior"]]
    assert table["auc"].iloc[0] == expected.auc and table["success_rate"].iloc[0] == expected.success_rate
    recorded = pd.read_csv(run_dir / "mia.csv")
    assert table["n_members_eval"].iloc[0] == recorded["n_members_eval"].iloc[0]
    # a run whose recorded split differs (older split code) is named, not silently re-scored
    recorded["n_members"] += 1
    recorded.to_csv(run_dir / "mia.csv", index=False)
    with pytest.raises(ValueError, match="fedavg_s3.*rerun its stage"):
        prior_attack.prior_table("quick", root=tmp_path)


def test_prior_table_names_a_missing_group_and_with_prior_a_missing_run(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no mia.csv"):
        prior_attack.prior_table("quick", root=tmp_path)
    summary = pd.DataFrame({"method": ["fedavg", "medhe"], "seed": [42, 42], "worst_success_rate": [0.6, 0.5]})
    prior = pd.DataFrame({"method": ["fedavg"], "seed": [42], "success_rate": [0.5], "auc": [0.45]})
    with pytest.raises(ValueError, match="medhe"):
        prior_attack.with_prior(summary, prior)
    both = prior_attack.with_prior(summary.iloc[:1], prior)
    assert both[["prior_success_rate", "prior_auc"]].values.tolist() == [[0.5, 0.45]]
