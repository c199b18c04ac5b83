"""The claims ledger: one row per claim, verdicts by rule, and no paper number in the measured column."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from medhe import claims, f1_arithmetic, records, results, stats

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ROOT / "claims" / "paper.yaml"
PAPER_IDS = {"comm-reduction", "comm-fedavg-mb", "comm-medhe-mb", "ciphertexts", "slot-packing", "ct-size",
             "he-params", "acc-medhe", "acc-fedavg", "f1-medhe", "p-value", "he-only", "dp-epsilon", "mia",
             "ablation", "sparsity-sweep", "convergence", "scale", "overhead",
             # claims of the paper the first ledger did not cover (issue 22)
             "mia-no-he", "ef-adaptive-gain", "noniid", "ckks-random-topk", "no-side-channel", "key-model",
             "he-only-collapse"}
EXTRA_IDS = {"comm-honest-reachable",  # our own question (issue 6), marked as such in the claims file
             "dp-utility"}  # the abstract's accuracy and epsilon as one configuration (issue 23)
ARITHMETIC_IDS = {"f1-medhe", "ef-adaptive-gain"}  # judged from the claimed numbers alone, in every profile
R, NR, NT = claims.REPRODUCED, claims.NOT_REPRODUCED, claims.NOT_TESTABLE


def test_every_claim_of_the_paper_has_a_rule():
    ids = {c["id"] for c in claims.load_claims(CLAIMS)}
    assert ids == PAPER_IDS | EXTRA_IDS and ids <= set(claims.RULES) and ids <= set(claims.SOURCES)


def test_every_claim_states_its_provenance():
    for c in claims.load_claims(CLAIMS):
        assert c.get("provenance"), c["id"]


def test_empty_results_make_every_measured_claim_not_testable(tmp_path):
    rows = claims.build_ledger(CLAIMS, root=tmp_path, profile="nothing")
    assert len(rows) == len(PAPER_IDS | EXTRA_IDS)
    assert {r.verdict for r in rows if r.id not in ARITHMETIC_IDS} == {NT}
    assert {r.verdict for r in rows if r.id in ARITHMETIC_IDS} == {NR}  # internally inconsistent, without data
    assert all(r.rule and r.note and r.provenance for r in rows)
    md = claims.to_markdown(rows)
    assert md.count("| **not testable here** |") == len(rows) - len(ARITHMETIC_IDS)
    assert "| provenance |" in md and "| provenance |" not in claims.table_markdown(rows)


def test_notes_say_where_a_claimed_number_comes_from(tmp_path):
    rows = {r.id: r for r in claims.build_ledger(CLAIMS, root=tmp_path, profile="nothing")}
    assert rows["comm-fedavg-mb"].provenance == "abstract; 2026 README"
    assert "author's public material: 5 x 66,955,010 x 4 B in MiB" in rows["comm-fedavg-mb"].note
    assert rows["f1-medhe"].source == "claims/paper.yaml (arithmetic)"
    assert rows["mia"].source == "results/nothing/mia/summary.csv"


def _write(tmp_path, rel, df, profile="t"):
    p = tmp_path / profile / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(df).to_csv(p, index=False)


def test_rules_judge_measured_values(tmp_path):
    _write(tmp_path, "comm/bytes.csv", [
        {"group": "papersize", "method": "fedavg", "mib_up_round_all_clients": 1000.0, "mib_up_per_client_round": 200.0,
         "ciphertexts_per_client": None},
        {"group": "papersize", "method": "medhe", "mib_up_round_all_clients": 100.0, "mib_up_per_client_round": 20.0,
         "ciphertexts_per_client": 500},
    ])
    _write(tmp_path, "privacy/epsilon.csv", [
        {"round": 3, "noise_multiplier": 0.12, "epsilon_rdp": 0.9, "epsilon_pld": 0.8}])
    records.write_json(tmp_path / "t" / "config.json", {"model": "m"})
    rows = {r.id: r for r in claims.build_ledger(CLAIMS, root=tmp_path, profile="t")}
    assert rows["comm-reduction"].verdict == NR  # 90 % < claimed - 1
    assert rows["comm-reduction"].measured == "90.0 %"
    assert "in one unit its figures give 97.6 %" in rows["comm-reduction"].note
    assert rows["comm-fedavg-mb"].verdict == NR  # 1000 vs 1277: > 10 % off
    assert rows["dp-epsilon"].verdict == R  # a made-up measured 0.9 <= 1.0
    assert rows["acc-medhe"].verdict == NT


def test_duplicate_ids_are_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("claims:\n  - {id: a, claim: x, claimed: {}}\n  - {id: a, claim: y, claimed: {}}\n")
    with pytest.raises(ValueError, match="duplicate claim ids"):
        claims.load_claims(p)


def test_ledger_csv_round_trips_to_the_same_markdown(tmp_path):
    """The README's ledger block is rebuilt from claims.csv: reading the csv back must lose nothing."""
    rows = claims.build_ledger(CLAIMS, root=tmp_path, profile="nothing")
    path = tmp_path / "claims.csv"
    claims.to_frame(rows).to_csv(path, index=False)
    back = claims.from_csv(path)
    assert back == rows and claims.to_markdown(back) == claims.to_markdown(rows)


def test_overhead_row_names_the_phases_that_take_the_extra_time(tmp_path):
    _write(tmp_path, "stats/trials.csv", [
        {"method": "medhe", "seed": 42, "wall_time_s": 150.0}, {"method": "fedavg", "seed": 42, "wall_time_s": 100.0}])
    rows = {r.id: r for r in claims.build_ledger(CLAIMS, root=tmp_path, profile="t")}
    assert rows["overhead"].measured == "+50 % wall time"
    assert rows["overhead"].note.startswith("a ratio of wall times measures the machine as much as the method")
    _write(tmp_path, "stats/phases.csv", [
        {"method": "medhe", "phase": "encrypt", "mean_s": 40.0}, {"method": "medhe", "phase": "align", "mean_s": 10.0},
        {"method": "medhe", "phase": "local_training", "mean_s": 100.0},
        {"method": "fedavg", "phase": "local_training", "mean_s": 100.0}])
    rows = {r.id: r for r in claims.build_ledger(CLAIMS, root=tmp_path, profile="t")}
    assert rows["overhead"].note.startswith("extra seconds per run by phase: encrypt +40, align +10; a ratio")


@pytest.mark.parametrize("medhe_acc, verdict", [(0.74, R), (0.654, NR)])
def test_sparsity_sweep_judges_medhe_points_not_an_average_with_other_methods(tmp_path, medhe_acc, verdict):
    _write(tmp_path, "comm/sweep.csv", [
        {"method": "medhe", "sparsity": 0.5, "saving_pct": -40.0, "accuracy": 0.70},
        {"method": "medhe", "sparsity": 0.9, "saving_pct": 60.0, "accuracy": medhe_acc},
        {"method": "medhe_no_dp", "sparsity": 0.9, "saving_pct": 60.0, "accuracy": 0.90}])
    _write(tmp_path, "stats/trials.csv", [{"method": "fedavg", "seed": s, "accuracy": 0.75, "wall_time_s": 360.0}
                                          for s in (1, 2)])
    row = {r.id: r for r in claims.build_ledger(CLAIMS, root=tmp_path, profile="t")}["sparsity-sweep"]
    assert row.verdict == verdict  # averaging in medhe_no_dp's 0.90 would pass the 0.654 case
    assert "not judged: accuracy below 0.85 at s > 0.95" in row.note


# ---------------------------------------------------------------- every verdict of every rule, on synthetic results

MAJ = 0.654  # majority-class accuracy of the synthetic test set
PAPER_D = 66_955_010
MIB = 2**20


def _bytes(**mib_round):
    """comm/bytes.csv rows at paper size: method -> uplink MiB per round (5 clients)."""
    rows = []
    for method, mib in mib_round.items():
        rows.append({"group": "papersize", "method": method, "num_params": PAPER_D, "mib_up_round_all_clients": mib,
                     "mib_up_per_client_round": mib / 5, "mib_down_per_client_round": mib / 5,
                     "bytes_up_update": 4 * (PAPER_D - 592_130) if method == "he_classifier_only" else 0.0,
                     "bytes_up_index": 0.0, "ciphertexts_per_client": {"medhe": 13, "medhe_no_packing": 806}.get(method)})
    return rows


def _trials(**acc):
    """stats/trials.csv: method -> per-seed accuracies (majority class MAJ)."""
    return [{"method": k, "seed": 42 + i, "accuracy": a, "majority_accuracy": MAJ, "model_change_l2": 1.0,
             "wall_time_s": 100.0} for k, accs in acc.items() for i, a in enumerate(accs)]


LEARNS, STUCK = [0.75, 0.76, 0.74, 0.75, 0.76], [0.61, 0.654, 0.49, 0.65, 0.654]


def _mia(**rate):
    return [{"method": k, "seed": 42, "worst_success_rate": v} for k, v in rate.items()]


def _summary(**metric_by_method):
    """stats/summary.csv: 'method/metric' -> mean (std 0.01, n 5)."""
    out = []
    for key, mean in metric_by_method.items():
        method, metric = key.split("__")
        out.append({"method": method, "metric": metric, "mean": mean, "std": 0.01, "n": 5})
    return out


def _security(batch=4, ct=331_127.0, level=128.0, bits=240):
    return [{"label": "pipeline default (closest secure)", "poly_modulus_degree": 8192, "total_bits": 200,
             "security_classical": 128.0, "ciphertext_bytes": ct, "max_exact_batch_8bit": batch},
            {"label": "paper", "poly_modulus_degree": 8192, "total_bits": bits, "security_classical": level,
             "ciphertext_bytes": None, "max_exact_batch_8bit": None}]


def _bfv(up_mb):
    return {"bench/bfv.csv": [{"row": "BFV union = k (best)", "up_round_MB": up_mb}],
            "bench/bfv_target.csv": [
                {"params": "default 32/32/45", "union": u, "target_bytes": 32e6, "s_total_target": 0.98,
                 "s_uplink_target": 0.96} for u in ("random", "k")]}


def _conv(medhe_final_acc, medhe_round=2):
    hist = []
    for method, final, at in (("fedavg", 0.75, 2), ("medhe", medhe_final_acc, medhe_round)):
        for r in range(11):
            hist.append({"method": method, "seed": 42, "round": r, "accuracy": 0.6 if r < at else final,
                         "f1_macro": 0.5})
    hist = pd.DataFrame(hist)
    return {"stats/convergence.csv": results.convergence_table(hist), "stats/convergence_history.csv": hist,
            "stats/summary.csv": _summary(fedavg__majority_accuracy=MAJ)}


def _paired(diffs, fed=0.75):
    n = len(diffs)
    return {"stats/trials.csv": [{"method": "fedavg", "seed": i, "accuracy": fed} for i in range(n)]
            + [{"method": "medhe", "seed": i, "accuracy": fed + d} for i, d in enumerate(diffs)]}


def _pu(*, none, eps1, majority=0.654):
    """privacy_utility.csv with points `none` and `client-eps1`, one row per seed and accuracy."""
    rows = [{"kind": kind, "point": point, "method": "medhe_no_packing", "seed": 42 + i, "epsilon": eps,
             "noise_multiplier": z, "accuracy": a, "macro_f1": a - 0.1, "majority_accuracy": majority}
            for kind, point, eps, z, accs in (("none", "none", float("nan"), 0.0, none),
                                              ("client", "client-eps1", 0.98, 4.2, eps1))
            for i, a in enumerate(accs)]
    return {"privacy_utility.csv": rows}


PAPER = "paper"
CONSISTENT_F1 = {"f1": 0.80}  # reachable as macro-F1 at 89.5 % accuracy (bound 0.832)
CONSISTENT_GAIN = {"gain": 0.05}  # a macro-vs-macro gain the claimed accuracies allow
# (rule id, files, profile, claimed overrides, expected verdict)
CASES = [
    ("comm-reduction", {"comm/bytes.csv": _bytes(fedavg=1277.0, medhe=20.0)}, "t", {}, R),
    ("comm-reduction", {"comm/bytes.csv": _bytes(fedavg=1277.0, medhe=1780.0)}, "t", {}, NR),
    ("comm-reduction", {}, "t", {}, NT),
    ("comm-fedavg-mb", {"comm/bytes.csv": _bytes(fedavg=1277.07)}, "t", {}, R),
    ("comm-fedavg-mb", {"comm/bytes.csv": _bytes(fedavg=1000.0)}, "t", {}, NR),
    ("comm-fedavg-mb", {}, "t", {}, NT),
    # 27.5 MiB = 28.8 MB: within 10 % of 32 MB, not of 32 MiB (the claim's unit decides)
    ("comm-medhe-mb", {"comm/bytes.csv": _bytes(medhe=27.5)}, "t", {}, R),
    ("comm-medhe-mb", {"comm/bytes.csv": _bytes(medhe=1780.0)}, "t", {}, NR),
    ("comm-medhe-mb", {}, "t", {}, NT),
    ("ciphertexts", {"comm/bytes.csv": _bytes(medhe=30.0, medhe_no_packing=400.0)}, "t", {}, R),
    ("ciphertexts", {"comm/bytes.csv": _bytes(medhe=30.0, medhe_no_packing=400.0)}, "t", {"packed": 1104}, NR),
    ("ciphertexts", {"comm/bytes.csv": _bytes(medhe=30.0)}, "t", {}, NT),
    ("slot-packing", {"security/params.csv": _security(batch=64)}, "t", {}, R),
    ("slot-packing", {"security/params.csv": _security(batch=4)}, "t", {}, NR),
    ("slot-packing", {}, "t", {}, NT),
    ("ct-size", {"security/params.csv": _security(ct=491_520.0), "comm/bytes.csv": _bytes(medhe=5 * 6.09)}, "t", {}, R),
    ("ct-size", {"security/params.csv": _security(ct=331_127.0), "comm/bytes.csv": _bytes(medhe=5 * 6.09)}, "t", {}, NR),
    ("ct-size", {}, "t", {}, NT),
    ("he-params", {"security/params.csv": _security(level=128.0)}, "t", {}, R),
    ("he-params", {"security/params.csv": _security(level=None)}, "t", {}, NR),
    ("he-params", {"security/params.csv": _security(bits=200)[:1]}, "t", {}, NT),
    ("acc-medhe", {"stats/summary.csv": _summary(medhe__accuracy=0.90)}, PAPER, {}, R),
    ("acc-medhe", {"stats/summary.csv": _summary(medhe__accuracy=0.61)}, PAPER, {}, NR),
    ("acc-medhe", {"stats/summary.csv": _summary(medhe__accuracy=0.90)}, "t", {}, NT),
    ("acc-fedavg", {"stats/summary.csv": _summary(fedavg__accuracy=0.90, fedavg__f1_binary=0.945)}, PAPER, {}, R),
    ("acc-fedavg", {"stats/summary.csv": _summary(fedavg__accuracy=0.90, fedavg__f1_binary=0.80)}, PAPER, {}, NR),
    ("acc-fedavg", {"stats/summary.csv": _summary(fedavg__accuracy=0.90, fedavg__f1_binary=0.945)}, "t", {}, NT),
    ("f1-medhe", {}, "t", {}, NR),  # the paper's 0.950 at 89.5 %: no classifier reaches it
    ("f1-medhe", {"stats/summary.csv": _summary(medhe__f1_macro=0.80)}, PAPER, CONSISTENT_F1, R),
    ("f1-medhe", {"stats/summary.csv": _summary(medhe__f1_macro=0.60)}, PAPER, CONSISTENT_F1, NR),
    ("f1-medhe", {"stats/summary.csv": _summary(medhe__f1_macro=0.80)}, "t", CONSISTENT_F1, NT),
    ("p-value", _paired([0.001, -0.002, 0.0, 0.002, -0.001]), "t", {}, R),
    ("p-value", _paired([-0.10, -0.12, -0.14, -0.13, -0.11]), "t", {}, NR),
    ("p-value", _paired([0.01, -0.03]), "t", {}, NT),
    ("he-only", {"comm/bytes.csv": _bytes(he_classifier_only=1494.9, he_only=25830.7)}, "t", {}, R),
    ("he-only", {"comm/bytes.csv": _bytes(he_classifier_only=25830.7)}, "t", {}, NR),
    ("he-only", {"comm/bytes.csv": _bytes(he_only=25830.7)}, "t", {}, NT),
    ("dp-epsilon", {"privacy/epsilon.csv": [{"round": 3, "noise_multiplier": 0.12, "epsilon_rdp": 0.9,
                                             "epsilon_pld": 0.8}]}, "t", {}, R),
    ("dp-epsilon", {"privacy/epsilon.csv": [{"round": 3, "noise_multiplier": 0.12, "epsilon_rdp": 171.5,
                                             "epsilon_pld": 164.8}]}, "t", {}, NR),
    ("dp-epsilon", {}, "t", {}, NT),
    ("mia", {"mia/summary.csv": _mia(medhe=0.51, fedavg=0.60), "stats/trials.csv": _trials(medhe=LEARNS, fedavg=LEARNS)},
     "t", {}, R),
    ("mia", {"mia/summary.csv": _mia(medhe=0.59, fedavg=0.60), "stats/trials.csv": _trials(medhe=LEARNS, fedavg=LEARNS)},
     "t", {}, NR),
    ("mia", {"mia/summary.csv": _mia(medhe=0.51, fedavg=0.60), "stats/trials.csv": _trials(medhe=STUCK, fedavg=LEARNS)},
     "t", {}, NT),
    ("mia-no-he", {"mia/summary.csv": _mia(medhe=0.51, medhe_no_he=0.56),
                   "stats/trials.csv": _trials(medhe=LEARNS, medhe_no_he=LEARNS)}, "t", {}, R),
    ("mia-no-he", {"mia/summary.csv": _mia(medhe=0.51, medhe_no_he=0.51),
                   "stats/trials.csv": _trials(medhe=LEARNS, medhe_no_he=LEARNS)}, "t", {}, NR),
    ("mia-no-he", {"mia/summary.csv": _mia(medhe=0.51, medhe_no_he=0.56),
                   "stats/trials.csv": _trials(medhe=LEARNS, medhe_no_he=STUCK)}, "t", {}, NT),
    ("ablation", {"comm/bytes.csv": _bytes(medhe_no_packing=415.0, medhe_no_he=26.0)}, "t", {}, R),
    ("ablation", {"comm/bytes.csv": _bytes(medhe_no_packing=7013.5, medhe_no_he=380.5)}, "t", {}, NR),
    ("ablation", {}, "t", {}, NT),
    ("ef-adaptive-gain", {}, "t", {}, NR),  # 0.950 (binary) - 0.763 (macro): internally inconsistent
    ("ef-adaptive-gain", {"stats/summary.csv": _summary(medhe__f1_macro=0.80, medhe_no_ef__f1_macro=0.70,
                                                        medhe_no_adaptive__f1_macro=0.72)}, PAPER, CONSISTENT_GAIN, R),
    ("ef-adaptive-gain", {"stats/summary.csv": _summary(medhe__f1_macro=0.80, medhe_no_ef__f1_macro=0.80,
                                                        medhe_no_adaptive__f1_macro=0.79)}, PAPER, CONSISTENT_GAIN, NR),
    ("ef-adaptive-gain", {}, "t", CONSISTENT_GAIN, NT),
    ("sparsity-sweep", {"comm/sweep.csv": [{"method": "medhe", "sparsity": s, "saving_pct": v, "accuracy": 0.74}
                                           for s, v in ((0.5, -40.0), (0.9, 60.0))],
                        "stats/trials.csv": _trials(fedavg=LEARNS)}, "t", {}, R),
    ("sparsity-sweep", {"comm/sweep.csv": [{"method": "medhe", "sparsity": s, "saving_pct": v, "accuracy": 0.74}
                                           for s, v in ((0.5, 85.0), (0.9, 60.0))],
                        "stats/trials.csv": _trials(fedavg=LEARNS)}, "t", {}, NR),  # s < 0.8 already saves 85 %
    ("sparsity-sweep", {}, "t", {}, NT),
    ("convergence", _conv(0.75), "t", {}, R),
    ("convergence", _conv(MAJ), "t", {}, NR),  # ends at the majority class: stopped, not converged
    ("convergence", _conv(0.75, medhe_round=6), "t", {}, NR),
    ("convergence", {}, "t", {}, NT),
    ("noniid", {"stats/noniid.csv": [{"method": "fedavg", "seed": 42, "accuracy": 0.75, "f1_macro": 0.7}]}, "t", {}, NT),
    ("scale", {"comm/scale.csv": [{"method": "medhe", "num_clients": 100, "mib_up_per_client_round": 0.3,
                                   "time_aggregate": 0.05}]}, "t", {}, NT),
    ("scale", {"flower_scale/scale.csv": [{"engine": "flower", "method": "medhe", "num_clients": 400, "time_round": 27.0,
                                           "time_aggregate": 0.48, "peak_rss_mb_all_processes": 2733.0,
                                           "mib_up_per_client_round": 0.316}]}, "t", {}, NT),
    ("overhead", {"stats/trials.csv": [{"method": "medhe", "seed": 42, "wall_time_s": 154.0},
                                       {"method": "fedavg", "seed": 42, "wall_time_s": 100.0}]}, "t", {}, R),
    ("overhead", {"stats/trials.csv": [{"method": "medhe", "seed": 42, "wall_time_s": 122.0},
                                       {"method": "fedavg", "seed": 42, "wall_time_s": 100.0}]}, "t", {}, NR),
    ("overhead", {}, "t", {}, NT),
    ("ckks-random-topk", {"bench/ckks_topk.csv": [
        {"path": p, "trials": 10, "clients": 5, "size": 1000, "sparsity": 0.9, "decryptions": 10, "failed": f,
         "max_abs_error": 1e-9} for p, f in (("packed", 3), ("unpacked", 0))]}, "t", {}, R),
    ("ckks-random-topk", {"bench/ckks_topk.csv": [
        {"path": p, "trials": 10, "clients": 5, "size": 1000, "sparsity": 0.9, "decryptions": 10, "failed": 0,
         "max_abs_error": 1e-9} for p in ("packed", "unpacked")]}, "t", {}, NR),
    ("ckks-random-topk", {}, "t", {}, NT),
    ("no-side-channel", {"comm/bytes.csv": [{"group": "runs", "method": "medhe", "bytes_up_index": 0.0,
                                             "num_params": 1000}]}, "t", {}, R),
    ("no-side-channel", {"comm/bytes.csv": [{"group": "runs", "method": "medhe", "bytes_up_index": 2.6e6,
                                             "num_params": 22_713_986}]}, "t", {}, NR),
    ("no-side-channel", {}, "t", {}, NT),
    ("key-model", {}, "t", {}, NT),
    ("he-only-collapse", {"stats/trials.csv": _trials(he_only=STUCK, fedavg=LEARNS)}, "t", {}, R),
    ("he-only-collapse", {"stats/trials.csv": _trials(he_only=LEARNS, fedavg=LEARNS)}, "t", {}, NR),
    ("he-only-collapse", {"stats/trials.csv": _trials(he_only=STUCK, fedavg=STUCK)}, "t", {}, NT),
    ("comm-honest-reachable", _bfv(30.0), "t", {}, R),
    ("comm-honest-reachable", _bfv(89.1), "t", {}, NR),  # 85.0 MiB = 89.1 MB > 32 MB
    ("comm-honest-reachable", {}, "t", {}, NT),
    ("dp-utility", _pu(none=LEARNS, eps1=[0.90, 0.89, 0.90]), PAPER, {}, R),
    ("dp-utility", _pu(none=LEARNS, eps1=[0.80, 0.81, 0.80]), PAPER, {}, NR),  # learned, but 9 points short
    ("dp-utility", _pu(none=LEARNS, eps1=STUCK), "t", {}, NR),  # noise at epsilon 1 erases what was learned
    ("dp-utility", _pu(none=LEARNS, eps1=LEARNS), "t", {}, NT),  # learned; 89.5 % belongs to the paper's data
    ("dp-utility", _pu(none=STUCK, eps1=STUCK), "t", {}, NT),  # nothing learned even without noise
    ("dp-utility", {}, "t", {}, NT),
]


def _claimed(rule_id: str) -> dict:
    c = next(c for c in claims.load_claims(CLAIMS) if c["id"] == rule_id)
    return {**c["claimed"], **c.get("judge", {})}


def _judge(tmp_path, rule_id, files, profile, override):
    for rel, rows in files.items():
        _write(tmp_path, rel, rows, profile=profile)
    return claims.RULES[rule_id]({**_claimed(rule_id), **override}, claims.Measured(tmp_path, profile))


@pytest.mark.parametrize("rule_id, files, profile, override, verdict", CASES,
                         ids=[f"{c[0]}-{c[4].replace(' ', '_')}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_returns_each_of_its_verdicts(tmp_path, rule_id, files, profile, override, verdict):
    measured, got, note = _judge(tmp_path, rule_id, files, profile, override)
    assert got == verdict, (measured, note)


# the verdicts each rule can return; a rule whose claim has no criterion returns only "not testable here"
ONLY_NOT_TESTABLE = {"noniid", "scale", "key-model"}


def test_the_cases_cover_every_verdict_of_every_rule():
    covered: dict[str, set[str]] = {}
    for rule_id, *_, verdict in CASES:
        covered.setdefault(rule_id, set()).add(verdict)
    for rule_id in claims.RULES:
        expected = {NT} if rule_id in ONLY_NOT_TESTABLE else {R, NR, NT}
        assert covered.get(rule_id) == expected, rule_id


# ---------------------------------------------------------------- the rules' numbers


def test_units_the_claimed_32_mb_is_decimal_and_the_1277_mb_is_mib(tmp_path):
    measured, verdict, _ = _judge(tmp_path, "comm-medhe-mb", {"comm/bytes.csv": _bytes(medhe=27.5)}, "t", {})
    assert measured == "28.8 MB uplink per round" and verdict == R
    measured, _, _ = _judge(tmp_path, "comm-medhe-mb", {"comm/bytes.csv": _bytes(medhe=27.5)}, "t", {"unit": "MiB"})
    assert measured == "27.5 MiB uplink per round"
    with pytest.raises(ValueError, match="unit must be one of"):
        claims.to_unit(1.0, "mb")


def test_fedavg_bytes_are_an_arithmetic_check_with_the_downlink_beside_them(tmp_path):
    measured, verdict, note = _judge(tmp_path, "comm-fedavg-mb", {"comm/bytes.csv": _bytes(fedavg=1277.07)}, "t", {})
    assert measured == "1,277.1 MiB uplink per round; uplink + downlink 2,554.1 MiB"
    assert note.startswith("arithmetic check (66,955,010 parameters x 4 B x 5 clients), not an experiment")


def test_f1_medhe_prints_the_bound_that_rules_it_out(tmp_path):
    measured, verdict, note = _judge(tmp_path, "f1-medhe", {"stats/summary.csv": _summary(medhe__f1_macro=0.43)},
                                     "full", {})
    assert verdict == NR and measured.startswith("internally inconsistent: at 89.5 % +- 0.8 % accuracy over 5 trials "
                                                 "on 829 test reviews (713 positive) the mean binary F1 is at most "
                                                 "0.943 and the mean macro-F1 at most 0.832; claimed 0.95")
    assert "ours (substitute, not judged): f1_macro 0.430" in note


def test_acc_fedavg_f1_is_read_as_binary_the_only_definition_its_accuracy_allows(tmp_path):
    _, _, note = _judge(tmp_path, "acc-fedavg", {"stats/summary.csv": _summary(fedavg__accuracy=0.75)}, "t", {})
    assert "F1 0.944 is possible as binary F1: True, as macro-F1: False" in note


def test_f1_bounds_match_a_brute_force_over_integer_confusion_matrices():
    """Independent reference: every (FN, FP) split of the errors at a given accuracy, in integers, with sklearn."""
    from sklearn.metrics import f1_score

    n, pos = 60, 48
    for errors in (0, 3, 9, 20):
        acc = 1 - errors / n
        best = {"binary": 0.0, "macro": 0.0}
        worst = {"binary": 1.0, "macro": 1.0}
        for fn in range(max(0, errors - (n - pos)), min(errors, pos) + 1):
            fp = errors - fn
            y = np.array([1] * pos + [0] * (n - pos))
            pred = y.copy()
            pred[:fn] = 0
            pred[pos:pos + fp] = 1
            for avg in best:
                s = f1_score(y, pred, average=avg, zero_division=0)
                best[avg], worst[avg] = max(best[avg], s), min(worst[avg], s)
        for avg in best:
            lo, hi = f1_arithmetic.f1_range(n=n, positive=pos, accuracy=acc, average=avg)
            assert hi == pytest.approx(best[avg], abs=1e-9) and lo == pytest.approx(worst[avg], abs=1e-9), (errors, avg)


def test_mean_f1_bound_holds_for_trials_with_the_claimed_mean_and_std():
    """Law: random sets of 5 trial accuracies with mean 0.895 and std 0.008, each at its best binary F1,
    never average above the bound."""
    bound = f1_arithmetic.mean_f1_upper_bound(n=829, positive=713, accuracy=0.895, accuracy_std=0.008, trials=5,
                                              average="binary")["bound"]
    rng = np.random.default_rng(0)
    for _ in range(200):
        z = rng.standard_normal(5)
        z = (z - z.mean()) / z.std(ddof=1)
        accs = 0.895 + 0.008 * z
        mean = np.mean([f1_arithmetic.max_f1(n=829, positive=713, accuracy=a, average="binary") for a in accs])
        assert mean <= bound + 1e-12


def test_learned_needs_every_seed_or_the_ci_above_the_majority_class():
    assert claims.learned([0.70, 0.70], MAJ) == (True, claims.learned([0.70, 0.70], MAJ)[1])
    ok, why = claims.learned([0.611, 0.654, 0.491, 0.65, 0.654], MAJ)  # the full profile's MedHE
    assert not ok and "gain -0.042" in why and "lowest seed -0.163" in why
    ok, why = claims.learned([0.80, 0.78, 0.79, 0.80, 0.665], MAJ)  # one seed below the margin, CI well above
    assert ok and "95 % CI lower end" in why
    assert not claims.learned([0.67], MAJ)[0]  # one seed, 1.6 points above: below the 2-point margin


def test_mia_is_not_judged_when_medhe_did_not_learn_and_says_why(tmp_path):
    measured, verdict, note = _judge(tmp_path, "mia", {
        "mia/summary.csv": _mia(medhe=0.508, fedavg=0.598),
        "stats/trials.csv": _trials(medhe=STUCK, fedavg=LEARNS),
        "stats/summary.csv": _summary(medhe__f1_macro=0.434, fedavg__f1_macro=0.690)}, "t", {})
    assert verdict == NT
    assert note.startswith("privacy is compared only between models that learned; medhe: accuracy 0.612 vs the "
                           "majority class 0.654: gain -0.042, lowest seed -0.164")
    assert measured == "fedavg 0.598 (macro-F1 0.690); medhe 0.508 (macro-F1 0.434)"


def test_mia_note_gives_the_class_prior_model_on_the_same_splits_and_beside_each_lira_target(tmp_path):
    summary = [{"method": m, "seed": seed, "worst_success_rate": 0.5, "prior_success_rate": p, "prior_auc": 0.5}
               for m in ("medhe", "fedavg") for seed, p in ((42, 0.5), (43, 0.48))]
    lira = [{"method": m, "seed": 42, "attack": "lira_offline", "auc": auc, "tpr_at_1pct_fpr": float("nan")}
            for m, auc in (("fedavg", 0.721), ("medhe", 0.412))]
    lira_summary = [{"method": m, "seed": 42, "prior_auc": 0.447} for m in ("fedavg", "medhe")]
    _, verdict, note = _judge(tmp_path, "mia", {
        "mia/summary.csv": summary, "mia/lira_attacks.csv": lira, "mia/lira_summary.csv": lira_summary,
        "stats/trials.csv": _trials(medhe=STUCK, fedavg=LEARNS)}, "t", {})
    assert verdict == NT
    assert ("a model that outputs the class prior scores 0.490 on the same splits (mean over 2 seeds, range 0.480 "
            "to 0.500): the label mix alone") in note
    assert "medhe AUC 0.412 TPR@1%FPR nan (class-prior model on the same split: AUC 0.447)" in note


def test_p_value_reports_tost_ci_and_the_t_test_beside_it(tmp_path):
    files = _paired([-0.10, -0.12, -0.14, -0.13, -0.11])
    trials = pd.DataFrame(files["stats/trials.csv"])
    files["stats/tests.csv"] = stats.paired_tests(trials, a="medhe", b="fedavg", metrics=["accuracy"])
    measured, verdict, note = _judge(tmp_path, "p-value", files, "full", {})
    d = np.array([-0.10, -0.12, -0.14, -0.13, -0.11])
    half = sps.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert measured.startswith(f"mean diff -0.120, 95 % CI [{-0.12 - half:+.3f}, {-0.12 + half:+.3f}], TOST p = ")
    assert "at margin +-0.01 (5 pairs); paired t-test p = " in measured and "(paper: 0.32)" in measured
    assert verdict == NR and "judged on the substitute data and model" in note


def test_paired_tost_against_its_definition():
    """TOST p = max of the two one-sided t-test p-values (scipy's one-sided one-sample tests)."""
    d = np.array([0.004, -0.006, 0.001, 0.008, -0.002])
    r = stats.paired_tost(d, margin=0.01)
    p_lo = sps.ttest_1samp(d, -0.01, alternative="greater").pvalue
    p_hi = sps.ttest_1samp(d, 0.01, alternative="less").pvalue
    assert r["p_tost"] == pytest.approx(max(p_lo, p_hi), rel=1e-12)
    assert r["equivalent"] == (max(p_lo, p_hi) < 0.05)
    assert stats.paired_tost([0.005] * 4, margin=0.01)["equivalent"]  # zero variance: decided exactly
    assert not stats.paired_tost([0.02] * 4, margin=0.01)["equivalent"]
    with pytest.raises(ValueError, match="margin must be finite and > 0"):
        stats.paired_tost(d, margin=0)


def test_he_only_row_states_what_leaks_with_the_head_encrypted(tmp_path):
    measured, verdict, note = _judge(tmp_path, "he-only", {
        "comm/bytes.csv": _bytes(he_classifier_only=1494.9, he_only=25830.7)}, "t", {})
    assert measured == "he_classifier_only 1,494.9 MiB per round; whole-model HE (he_only) 25,831 MiB"
    assert note.startswith("he_classifier_only sends 66,362,880 of 66,955,010 parameters (99.1 %) of each client's "
                           "update in plaintext")


def test_he_only_collapse_says_when_he_only_equals_fedavg(tmp_path):
    measured, verdict, _ = _judge(tmp_path, "he-only-collapse",
                                  {"stats/trials.csv": _trials(he_only=LEARNS, fedavg=LEARNS)}, "t", {})
    assert verdict == NR and measured.endswith("he_only equals fedavg to the last digit in all 5 seeds")


def test_ef_adaptive_gain_names_the_mixed_definitions(tmp_path):
    measured, verdict, _ = _judge(tmp_path, "ef-adaptive-gain", {}, "t", {})
    assert verdict == NR and measured.startswith("internally inconsistent: macro-F1 at MedHE's 89.5 % is at most 0.832")
    assert "binary F1 at the ablations' 91.2 % is at least 0.946" in measured
    assert measured.endswith("the claimed 0.19 equals MedHE's 0.95 (binary F1) minus the ablations' macro-F1")


def test_claimed_frontier_point_uses_the_bytes_unit_and_the_reachable_f1():
    per_param, f1 = claims.claimed_frontier_point(CLAIMS)
    assert per_param == pytest.approx(32e6 / PAPER_D)
    assert f1 == pytest.approx(0.832, abs=5e-4)  # the macro-F1 bound at 89.5 % +- 0.8 %, not the impossible 0.950


def test_comm_honest_reachable_says_when_the_bench_target_is_not_the_claim_in_its_unit(tmp_path):
    files = _bfv(85.0)
    for row in files["bench/bfv_target.csv"]:
        row["target_bytes"] = 32 * MIB  # computed when the claim was read as MiB
    measured, verdict, note = _judge(tmp_path, "comm-honest-reachable", files, "t", {})
    assert measured == "85.0 MB uplink per round at s = 0.9 (BFV, best case)" and verdict == NR
    assert note.startswith("smallest s reaching 33,554,432 B (the bench stage's target; the claim in its unit is "
                           "32,000,000 B: rerun stage bench): uplink only 0.9600")
    _, _, note = _judge(tmp_path, "comm-honest-reachable", _bfv(85.0), "t", {})
    assert note.startswith("smallest s reaching 32,000,000 B: uplink only")


def test_mia_no_he_shows_the_two_methods_it_compares(tmp_path):
    measured, verdict, note = _judge(tmp_path, "mia-no-he", {
        "mia/summary.csv": _mia(medhe=0.51, medhe_no_he=0.56, fedavg=0.6),
        "stats/trials.csv": _trials(medhe=LEARNS, medhe_no_he=LEARNS)}, "t", {})
    assert measured == "medhe 0.510; medhe_no_he 0.560" and verdict == R
    assert "the released model is what the attack queries" in note
