"""The numbers path, unit-tested: hand-written run records in, the comm / stats / MIA tables out.

Every expected value below is derived in the test from the records it writes (MiB = 2^20 bytes;
rounds >= 1 only, round 0 is the evaluation of the initial model and carries no bytes), never
from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from medhe import report, results, targets
from medhe.attacks.data import PAPER_ATTACKS

MIB = 2**20
PROFILE = "t"


def write_run(root: Path, group: str, *, method: str, seed: int, tag: str = "", num_clients: int = 5,
              num_params: int = 1000, up: list[float], down: list[float] | None = None,
              accuracy: list[float] | None = None, time_aggregate: list[float] | None = None,
              wall: float = 10.0, phases: dict[str, float] | None = None, extra: dict | None = None) -> Path:
    """One finished run: history.csv (round 0 plus one row per entry of ``up``), metrics.json
    (the last round), run.json. ``up``/``down`` are bytes per client for rounds 1, 2, ..."""
    folder = results.run_path(PROFILE, group, method=method, seed=seed, tag=tag, root=root)
    folder.mkdir(parents=True)
    down = up if down is None else down
    rounds = len(up)
    accuracy = accuracy or [0.5 + 0.1 * r for r in range(rounds + 1)]
    time_aggregate = time_aggregate or [0.1] * rounds
    rows = [{"method": method, "seed": seed, "round": 0, "accuracy": accuracy[0], "f1_macro": accuracy[0] - 0.1,
             "bytes_up_per_client": 0.0, "bytes_down_per_client": 0.0}]
    for r in range(1, rounds + 1):
        rows.append({"method": method, "seed": seed, "round": r, "accuracy": accuracy[r],
                     "f1_macro": accuracy[r] - 0.1, "bytes_up_per_client": up[r - 1],
                     "bytes_down_per_client": down[r - 1], "bytes_up_ciphertext": up[r - 1] / 2,
                     "density": 0.1, "time_aggregate": time_aggregate[r - 1]})
    pd.DataFrame(rows).to_csv(folder / "history.csv", index=False)
    final = {k: v for k, v in rows[-1].items() if k != "round"}
    final.update(round=rounds, f1_binary=accuracy[-1], loss=1 - accuracy[-1], majority_accuracy=0.6,
                 majority_f1_macro=0.375, model_change_l2=1.0 + seed / 100, **(extra or {}))
    (folder / "metrics.json").write_text(json.dumps(final))
    run = {"wall_time_s": wall, "time_per_phase_s": phases or {"local_training": wall / 2}, "num_params": num_params,
           "bytes_setup": 1234, "params": {"data": {"num_clients": num_clients}, "pipeline": {"seeds": [seed]},
                                           "train": {"rounds": rounds}}}
    (folder / "run.json").write_text(json.dumps(run))
    return folder


def write_mia(folder: Path, *, method: str, seed: int, rates: dict[str, float], aucs: dict[str, float],
              calibration: dict[str, float] | None = None) -> None:
    """``calibration``: each attack's success on the calibration split (default: its evaluation rate)."""
    calibration = calibration or rates
    rows = [{"method": method, "seed": seed, "attack": a, "success_rate": r, "ci_low": r - 0.05, "ci_high": r + 0.05,
             "auc": aucs[a], "tpr_at_1pct_fpr": aucs[a] / 10, "calibration_success_rate": calibration[a]}
            for a, r in rates.items()]
    pd.DataFrame(rows).to_csv(folder / "mia.csv", index=False)
    roc = [{"method": method, "seed": seed, "attack": a, "fpr": f, "tpr": f} for a in rates for f in (0.0, 1.0)]
    pd.DataFrame(roc).to_csv(folder / "roc.csv", index=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A profile with runs (fedavg, medhe x seeds 1, 2), one sweep, two scale runs, convergence,
    non-IID and frontier runs. Known values:

    * fedavg uploads 4 MiB per client per round in both rounds, medhe 1 MiB then 0.5 MiB;
    * the sweep run uploads 1 MiB per round: a 75 % saving against fedavg's 4 MiB;
    * scale runs: 5 clients at 4 MiB / 0.2 s, 10 clients at 4 MiB / 0.4 s aggregation.
    """
    for seed, acc_f, acc_m in ((1, 0.80, 0.70), (2, 0.90, 0.75)):
        write_run(tmp_path, "runs", method="fedavg", seed=seed, up=[4 * MIB, 4 * MIB],
                  accuracy=[0.5, 0.6, acc_f], wall=20.0, phases={"local_training": 15.0, "aggregate": 1.0})
        write_run(tmp_path, "runs", method="medhe", seed=seed, up=[1 * MIB, 0.5 * MIB], down=[2 * MIB, 1 * MIB],
                  accuracy=[0.5, 0.6, acc_m], wall=40.0, phases={"local_training": 15.0, "encrypt": 5.0},
                  extra={"epsilon_rdp": 171.45, "epsilon_pld": 164.85})
    write_run(tmp_path, "sweeps", method="medhe_no_dp", seed=1, tag="sparsity0.75-", up=[MIB, MIB], down=[2 * MIB] * 2,
              accuracy=[0.5, 0.6, 0.77])  # the saving counts the uplink only (the downlink would give 50 %)
    write_run(tmp_path, "scale", method="fedavg", seed=1, tag="clients10-", num_clients=10, up=[4 * MIB],
              time_aggregate=[0.4])
    write_run(tmp_path, "scale", method="fedavg", seed=1, tag="clients5-", num_clients=5, up=[4 * MIB],
              time_aggregate=[0.2])
    write_run(tmp_path, "convergence", method="fedavg", seed=1, up=[MIB] * 4, accuracy=[0.5, 0.7, 0.69, 0.8, 0.795])
    write_run(tmp_path, "convergence", method="medhe", seed=1, up=[MIB] * 2, accuracy=[0.5, 0.8, 0.5])
    write_run(tmp_path, "noniid", method="fedavg", seed=1, up=[4 * MIB, 4 * MIB], accuracy=[0.5, 0.55, 0.65])
    write_run(tmp_path, "frontier", method="medhe_bfv_no_dp", seed=1, tag="sparsity0.9-bits8-", up=[2000.0, 2000.0],
              num_params=1000, accuracy=[0.5, 0.6, 0.7])
    return tmp_path


# ------------------------------------------------------------------ results.py


def test_run_path_refuses_unknown_group() -> None:
    with pytest.raises(ValueError, match="group must be one of .*'trials'"):
        results.run_path("quick", "trials", method="medhe", seed=1)


def test_collect_flattens_params_and_names_the_empty_folder(tree: Path) -> None:
    runs = results.collect(PROFILE, "runs", root=tree)
    assert len(runs) == 4 and set(runs["method"]) == {"fedavg", "medhe"}
    assert (runs["param.data.num_clients"] == 5).all()
    assert not any(c.startswith("param.pipeline") for c in runs.columns)  # the pipeline block is not a run parameter
    assert (runs["total_time_local_training"] == 15.0).all() and (runs["bytes_setup"] == 1234).all()
    with pytest.raises(FileNotFoundError, match="no finished runs under .*lira"):
        results.collect(PROFILE, "lira", root=tree)
    with pytest.raises(FileNotFoundError, match="no run histories under .*lira"):
        results.histories(PROFILE, "lira", root=tree)


def test_list_parameters_are_kept_as_json() -> None:
    flat: dict = {}
    results._flatten("", {"ckks": {"coeff_mod_bit_sizes": [60, 40]}, "seed": 3}, flat)
    assert flat == {"ckks.coeff_mod_bit_sizes": "[60, 40]", "seed": 3}


def test_comm_table_mib_are_means_over_rounds_from_one(tree: Path) -> None:
    table = results.comm_table(results.histories(PROFILE, "runs", root=tree), results.collect(PROFILE, "runs", root=tree))
    by = table.set_index(["method", "seed"])
    # medhe: (1 + 0.5) / 2 = 0.75 MiB up, (2 + 1) / 2 = 1.5 MiB down; with round 0 it would be 0.5
    assert by.loc[("medhe", 1), "mib_up_per_client_round"] == pytest.approx(0.75)
    assert by.loc[("medhe", 1), "mib_down_per_client_round"] == pytest.approx(1.5)
    assert by.loc[("medhe", 2), "mib_up_round_all_clients"] == pytest.approx(0.75 * 5)
    assert by.loc[("fedavg", 1), "mib_up_per_client_round"] == pytest.approx(4.0)
    assert by.loc[("medhe", 1), "bytes_up_ciphertext"] == pytest.approx(0.75 * MIB / 2)
    assert by.loc[("medhe", 1), "num_clients"] == 5 and by.loc[("medhe", 1), "bytes_setup"] == 1234


def test_sweep_saving_is_measured_against_fedavg(tree: Path) -> None:
    base = results.comm_table(results.histories(PROFILE, "runs", root=tree), results.collect(PROFILE, "runs", root=tree))
    sweep = results.sweep_table(results.collect(PROFILE, "sweeps", root=tree),
                                results.histories(PROFILE, "sweeps", root=tree), base)
    row = sweep.iloc[0]
    assert row["sparsity"] == 0.75 and row["accuracy"] == 0.77
    assert row["saving_pct"] == pytest.approx(75.0)  # 100 * (1 - 1 MiB / 4 MiB)
    with pytest.raises(ValueError, match="needs a fedavg run"):
        results.sweep_table(results.collect(PROFILE, "sweeps", root=tree), results.histories(PROFILE, "sweeps", root=tree),
                            base[base["method"] != "fedavg"])


def test_scale_table_sorts_by_clients_and_averages_aggregation_time(tree: Path) -> None:
    scale = results.scale_table(results.collect(PROFILE, "scale", root=tree), results.histories(PROFILE, "scale", root=tree))
    assert scale["num_clients"].tolist() == [5, 10]  # numeric order, although "clients10-" sorts first as a name
    assert scale["time_aggregate"].tolist() == pytest.approx([0.2, 0.4])
    assert scale["mib_up_round_all_clients"].tolist() == pytest.approx([20.0, 40.0])


def test_convergence_round_is_the_first_that_stays_within_tolerance(tree: Path) -> None:
    conv = results.convergence_table(results.histories(PROFILE, "convergence", root=tree)).set_index("method")
    # fedavg 0.5, 0.7, 0.69, 0.8, 0.795: within 0.01 of 0.795 from round 3 on
    assert conv.loc["fedavg", "converged_round"] == 3 and conv.loc["fedavg", "rounds"] == 4
    assert conv.loc["fedavg", "final_accuracy"] == 0.795
    # medhe 0.5, 0.8, 0.5: round 0 equals the final accuracy but round 1 leaves, so only round 2 counts
    assert conv.loc["medhe", "converged_round"] == 2


def test_frontier_table_tags_and_bytes_per_parameter(tree: Path) -> None:
    runs = results.collect(PROFILE, "runs", root=tree)
    base = results.comm_table(results.histories(PROFILE, "runs", root=tree), runs).merge(
        runs[["run_dir", "accuracy", "f1_macro"]], on="run_dir")
    front = results.frontier_table(results.collect(PROFILE, "frontier", root=tree),
                                   results.histories(PROFILE, "frontier", root=tree), base)
    point = front[front["kind"] == "frontier"].iloc[0]
    assert (point["sparsity"], point["bits"], point["accuracy"]) == (0.9, 8, 0.7)
    assert point["bytes_up_round_per_param"] == pytest.approx(2000 * 5 / 1000)
    trial = front[(front["kind"] == "trial") & (front["method"] == "fedavg")]
    assert len(trial) == 2 and trial["sparsity"].isna().all()
    assert trial["bytes_up_round_per_param"].tolist() == pytest.approx([4 * MIB * 5 / 1000] * 2)


def test_trials_table_one_sorted_row_per_method_and_seed(tree: Path) -> None:
    trials = results.trials_table(results.collect(PROFILE, "runs", root=tree))
    assert list(zip(trials["method"], trials["seed"])) == [("fedavg", 1), ("fedavg", 2), ("medhe", 1), ("medhe", 2)]
    assert trials["accuracy"].tolist() == [0.80, 0.90, 0.70, 0.75]
    assert trials["epsilon_rdp"].isna().tolist() == [True, True, False, False]


# ------------------------------------------------------------------ report.py


def test_comm_tables_from_every_group_present(tree: Path) -> None:
    tables = report.comm_tables(PROFILE, root=tree)
    assert set(tables) == {"bytes", "sweep", "scale", "frontier", "to_target", "curves"}
    assert tables["to_target"].empty and list(tables["to_target"].columns) == list(targets.TABLE_COLUMNS)
    by = tables["bytes"].set_index(["group", "method", "seed"])
    assert by.loc[("runs", "medhe", 2), "mib_up_per_client_round"] == pytest.approx(0.75)
    assert by.loc[("noniid", "fedavg", 1), "mib_up_per_client_round"] == pytest.approx(4.0)
    assert "papersize" not in set(tables["bytes"]["group"])  # a group that did not run is absent, not invented
    assert tables["sweep"]["saving_pct"].tolist() == pytest.approx([75.0])
    assert (tables["frontier"]["kind"] == "trial").sum() == 4


def test_comm_tables_skip_what_needs_the_runs_group(tmp_path: Path) -> None:
    write_run(tmp_path, "sweeps", method="medhe_no_dp", seed=1, tag="sparsity0.5-", up=[MIB])
    write_run(tmp_path, "papersize", method="fedavg", seed=1, up=[3 * MIB], num_params=66_955_010)
    tables = report.comm_tables(PROFILE, root=tmp_path)
    # no runs group: no baseline, so neither sweep nor frontier; no target runs: empty tables with their columns
    assert set(tables) == {"bytes", "to_target", "curves"} and tables["to_target"].empty and tables["curves"].empty
    assert tables["bytes"]["num_params"].tolist() == [66_955_010]
    assert set(report.comm_tables(PROFILE, root=tmp_path / "empty")) == {"to_target", "curves"}


def test_stats_tables_summary_tests_phases_convergence_noniid(tree: Path) -> None:
    tables = report.stats_tables(PROFILE, root=tree)
    assert set(tables) == {"trials", "summary", "phases", "tests", "convergence", "convergence_history", "noniid"}
    s = tables["summary"].set_index(["method", "metric"])
    assert s.loc[("fedavg", "accuracy"), "mean"] == pytest.approx(0.85)
    assert s.loc[("fedavg", "accuracy"), "std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    half = sps.t.ppf(0.975, 1) * np.std([0.8, 0.9], ddof=1) / np.sqrt(2)
    assert s.loc[("fedavg", "accuracy"), "ci_high"] == pytest.approx(0.85 + half)
    assert s.loc[("fedavg", "model_change_l2"), "mean"] == pytest.approx(1.015)  # 1.01 and 1.02
    assert s.loc[("medhe", "wall_time_s"), "std"] == 0.0
    tests = tables["tests"]
    assert set(zip(tests["a"], tests["b"])) == {("medhe", "fedavg")}  # only comparisons whose methods both ran
    acc = tests[tests["metric"] == "accuracy"].iloc[0]
    assert acc["n_pairs"] == 2 and acc["mean_diff"] == pytest.approx(((0.70 - 0.80) + (0.75 - 0.90)) / 2)
    phases = tables["phases"].set_index(["method", "phase"])
    assert phases.loc[("medhe", "untimed"), "mean_s"] == pytest.approx(40.0 - 15.0 - 5.0)
    assert phases.loc[("fedavg", "untimed"), "share"] == pytest.approx(4.0 / 20.0)
    assert tables["noniid"]["accuracy"].tolist() == [0.65]  # the last round only
    assert len(tables["convergence_history"]) == 5 + 3
    metrics = report.metrics_summary(tables)
    assert metrics["fedavg.accuracy.mean"] == pytest.approx(0.85)
    assert metrics["medhe.accuracy.std"] == pytest.approx(np.std([0.70, 0.75], ddof=1))


def test_write_tables_round_trips(tree: Path, tmp_path: Path) -> None:
    tables = report.comm_tables(PROFILE, root=tree)
    paths = report.write_tables(tables, tmp_path / "out" / "comm")
    # to_target and curves are written with their columns even without target runs (DVC outs of the comm stage)
    assert sorted(p.name for p in paths) == ["bytes.csv", "curves.csv", "frontier.csv", "scale.csv", "sweep.csv",
                                            "to_target.csv"]
    back = pd.read_csv(tmp_path / "out" / "comm" / "sweep.csv")
    assert back["saving_pct"].tolist() == pytest.approx([75.0])


def test_mia_tables_worst_case_over_the_papers_attacks_and_over_all(tmp_path: Path) -> None:
    rates = {"confidence": 0.55, "entropy": 0.60, "modified_entropy": 0.52, "learned_logistic": 0.58,
             "lira_offline": 0.70}
    aucs = {"confidence": 0.57, "entropy": 0.61, "modified_entropy": 0.66, "learned_logistic": 0.59,
            "lira_offline": 0.75}
    # chosen on the calibration split: confidence leads there (0.62), though entropy scores higher on evaluation
    calibration = {**rates, "confidence": 0.62, "entropy": 0.56, "lira_offline": 0.71}
    assert set(rates) - {"lira_offline"} == set(PAPER_ATTACKS)
    for seed in (1, 2):
        folder = write_run(tmp_path, "runs", method="fedavg", seed=seed, up=[MIB])
        write_mia(folder, method="fedavg", seed=seed, rates=rates, aucs=aucs, calibration=calibration)
    tables = report.mia_tables(PROFILE, root=tmp_path)
    assert len(tables["attacks"]) == 10 and len(tables["roc"]) == 20
    row = tables["summary"].iloc[0]
    # the attack picked on calibration, scored on evaluation; LiRA's 0.70 is not a paper attack
    assert (row["worst_attack"], row["worst_success_rate"]) == ("confidence", 0.55)
    assert row["worst_ci_low"] == pytest.approx(0.50) and row["worst_ci_high"] == pytest.approx(0.60)
    assert (row["worst_any_attack"], row["worst_any_success_rate"]) == ("lira_offline", 0.70)
    assert row["max_auc"] == 0.75 and row["max_tpr_at_1pct_fpr"] == pytest.approx(0.075)
    with pytest.raises(FileNotFoundError, match="no mia.csv under .*lira"):
        report.mia_tables(PROFILE, root=tmp_path, group="lira")
    # a run written before the calibration split existed is named, not silently mixed in
    folder = write_run(tmp_path, "runs", method="medhe", seed=1, up=[MIB])
    write_mia(folder, method="medhe", seed=1, rates=rates, aucs=aucs)
    frame = pd.read_csv(folder / "mia.csv").drop(columns="calibration_success_rate")
    frame.to_csv(folder / "mia.csv", index=False)
    with pytest.raises(ValueError, match=r"\['medhe_s1'\] .* no calibration_success_rate"):
        report.mia_tables(PROFILE, root=tmp_path)
