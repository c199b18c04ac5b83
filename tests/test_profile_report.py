"""results/<profile>/REPORT.md: tables rendered from hand-written results files, with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medhe import profile_report as pr


def _rows(markdown: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``markdown``, as cells."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def test_wall_time_table_sums_run_records_per_group_and_in_all() -> None:
    records = pd.DataFrame({"group": ["runs", "runs", "sweeps"], "wall_time_s": [60.0, 120.0, 30.0]})
    assert _rows(pr.wall_time_table(records)) == [
        ["runs", "2", "3.0"], ["sweeps", "1", "0.5"], ["**all training runs**", "3", "**3.5**"]]


def test_trial_table_reports_ci_lift_over_majority_and_moved_models() -> None:
    summary = pd.DataFrame([
        {"method": "medhe", "metric": "accuracy", "n": 2, "mean": 0.6, "std": 0.1, "ci_low": 0.0, "ci_high": 1.0},
        {"method": "medhe", "metric": "f1_macro", "n": 2, "mean": 0.45, "std": 0.05, "ci_low": 0.2, "ci_high": 0.7},
        {"method": "medhe", "metric": "f1_binary", "n": 2, "mean": 0.7, "std": 0.0, "ci_low": 0.7, "ci_high": 0.7},
        {"method": "medhe", "metric": "wall_time_s", "n": 2, "mean": 99.6, "std": 1.0, "ci_low": 90, "ci_high": 110},
    ])
    trials = pd.DataFrame({"method": ["medhe", "medhe"], "majority_f1_macro": [0.4, 0.4],
                           "model_change_l2": [0.0, 3.0]})
    assert _rows(pr.trial_table(summary, trials)) == [[
        "medhe", "2", "0.600 ± 0.100", "0.450 ± 0.050 [0.200, 0.700]", "+0.050", "0.700 ± 0.000", "1 of 2", "100"]]


def test_phase_table_orders_phases_and_adds_them_up_to_the_wall_time() -> None:
    phases = pd.DataFrame({"method": ["m"] * 4, "phase": ["untimed", "encrypt", "zeta", "local_training"],
                           "mean_s": [4.0, 20.0, 1.0, 75.0]})
    table = pr.phase_table(phases)
    assert table.splitlines()[0] == "| method | local_training | encrypt | zeta | untimed | wall |"
    assert _rows(table) == [["m", "75", "20", "1", "4", "100"]]


def test_density_table_means_over_seeds_and_skips_round_zero() -> None:
    hist = pd.DataFrame({"method": ["m"] * 6, "round": [0, 1, 2, 0, 1, 2],
                         "density": [None, 0.1, 0.2, None, 0.1, 0.4]})
    assert _rows(pr.density_table(hist)) == [["m", "0.100", "0.300"]]


def test_to_target_table_says_not_yet_measured_without_its_file() -> None:
    assert pr.to_target_table(None).startswith("not yet measured")
    table = pd.DataFrame({"variant": ["a", "a"], "seed": [1, 2], "f1_macro_r3": [0.5, 0.7], "reached": [True, True],
                          "rounds_to_target": [3, 5], "mib_up_to_target": [10.0, 20.0], "epsilon": [1.0, 2.0],
                          "rounds_run": [3, 5]})
    assert _rows(pr.to_target_table(table)) == [["a", "2/2", "0.600 ± 0.141", "4.0", "15.0", "1.5"]]


def test_scale_table_in_milliseconds_with_the_final_macro_f1() -> None:
    scale = pd.DataFrame({"method": ["medhe", "medhe"], "num_clients": [20, 5], "bytes_up_per_client": [331e3, 331e3],
                          "time_aggregate": [0.012, 0.005]})
    assert _rows(pr.scale_table(scale, {("medhe", 5): 0.9})) == [
        ["medhe", "5", "331,000", "5.0", "0.900"], ["medhe", "20", "331,000", "12.0", ""]]


def test_mia_table_shows_the_class_prior_model_beside_the_attacks_when_the_mia_stage_wrote_it() -> None:
    summary = pd.DataFrame({"method": ["fedavg", "fedavg", "medhe"], "seed": [42, 43, 42],
                            "worst_success_rate": [0.6, 0.5, 0.5], "max_auc": [0.7, 0.6, 0.45],
                            "max_tpr_at_1pct_fpr": [0.02, 0.04, 0.0]})
    assert _rows(pr.mia_table(summary))[0] == ["fedavg", "2", "0.550 ± 0.071", "0.650 ± 0.071", "0.030"]
    summary["prior_success_rate"], summary["prior_auc"] = [0.5, 0.5, 0.5], [0.45, 0.55, 0.45]
    assert _rows(pr.mia_table(summary))[0][-2:] == ["0.500 ± 0.000", "0.500 ± 0.071"]


def test_lira_table_ends_each_targets_rows_with_the_class_prior_model() -> None:
    row = {"seed": 42, "success_rate": 0.5, "auc": 0.5, "auc_ci_low": 0.4, "auc_ci_high": 0.6, "tpr_at_1pct_fpr": None}
    attacks = pd.DataFrame([{**row, "method": m, "attack": a} for m in ("fedavg", "medhe")
                            for a in ("confidence", "lira_offline")])
    prior = pd.DataFrame([{**row, "method": m, "attack": "class_prior", "auc": 0.447} for m in ("fedavg", "medhe")])
    got = [(r[0], r[2]) for r in _rows(pr.lira_table(attacks, prior))]
    assert got == [("fedavg", "confidence"), ("fedavg", "lira_offline"), ("fedavg", "class_prior"),
                   ("medhe", "confidence"), ("medhe", "lira_offline"), ("medhe", "class_prior")]
    assert len(_rows(pr.lira_table(attacks))) == 4


def test_security_table_joins_the_measured_packing_limits_by_parameter_set() -> None:
    security = pd.DataFrame({"label": ["paper", "default"], "poly_modulus_degree": [8192, 8192],
                             "coeff_mod_bit_sizes": ["[60, 60, 60, 60]", "[60, 40, 40, 60]"], "total_bits": [240, 200],
                             "accepted": [False, True], "security_classical": [float("nan"), 128.0],
                             "ciphertext_bytes": [float("nan"), 331127.0], "max_abs_error_sum": [float("nan"), 1.7e-8]})
    packing = pd.DataFrame({"params": ["N=8192 [60, 40, 40, 60] 2^40"], "exact_B_4": [7], "exact_B_8": [4]})
    assert _rows(pr.security_table(security, packing)) == [
        ["paper", "N=8192 [60, 60, 60, 60]", "240", "**refused**", "", "", "", "", ""],
        ["default", "N=8192 [60, 40, 40, 60]", "200", "yes", "128", "331,127", "1.7e-08", "7", "4"]]


def _profile_tree(root: Path) -> None:
    base = root / "results" / "p"
    (base / "runs" / "fedavg_s1").mkdir(parents=True)
    (base / "runs" / "fedavg_s1" / "run.json").write_text(json.dumps({"wall_time_s": 90.0, "method": "fedavg"}))
    (base / "config.json").write_text(json.dumps({"profile": "p", "rounds": 3, "dp": {"clip_norm": 1.0}}))
    (base / "claims.md").write_text("# Claims ledger (profile `p`)\n\n| id |\n|---|\n| x |\n\n## Rules\n\nrule text\n")
    (base / "repro_time.json").write_text(json.dumps({"pipeline_s": 600.0, "cpus": 2, "stages_run": 3,
                                                      "stages_total": 4}))
    (root / "figures" / "p").mkdir(parents=True)
    (root / "figures" / "p" / "frontier.png").write_bytes(b"")


def test_render_reads_the_files_says_what_did_not_run_and_links_figures(tmp_path: Path) -> None:
    _profile_tree(tmp_path)
    text = pr.write("p", root=tmp_path).read_text()
    assert "| rounds | `3` |" in text and "| dp | `clip_norm=1.0` |" in text
    assert "### Rules\n\nrule text" in text  # the ledger's own headings nest under the report's
    assert "| runs | 1 | 1.5 |" in text
    assert "(`make repro`, `repro_time.json`): 10.0 min on 2 cores, 3 of 4 stages run." in text
    assert "`stats/phases.csv`: not run in this profile." in text
    assert "![frontier](../../figures/p/frontier.png)" in text
    assert "not yet measured" in text


def test_render_refuses_a_profile_without_results(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="profile 'nope'"):
        pr.render("nope", root=tmp_path)


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_committed_report_is_what_the_results_files_give(profile: str) -> None:
    """REPORT.md is regenerated, never edited: the committed one equals a fresh rendering."""
    root = Path(__file__).resolve().parents[1]
    committed = root / "results" / profile / "REPORT.md"
    if not committed.is_file():
        pytest.skip(f"no committed report for profile {profile}")
    assert committed.read_text() == pr.render(profile, root=root)


def test_round_curves_average_seeds_and_accumulate_bytes_per_seed() -> None:
    mib = 2 ** 20
    hist = pd.DataFrame({"method": ["m"] * 4, "seed": [1, 1, 2, 2], "round": [1, 0, 0, 1],
                         "accuracy": [0.6, 0.5, 0.5, 0.8], "f1_macro": [0.5, 0.4, 0.4, 0.7],
                         "bytes_up_per_client": [2 * mib, 0.0, 0.0, 4 * mib], "bytes_down_per_client": [mib, 0.0, 0.0, mib]})
    table = pr.round_curves(hist)
    assert table["method"].tolist() == ["m", "m"]
    assert table["round"].tolist() == [0, 1]
    assert table["accuracy"].tolist() == pytest.approx([0.5, 0.7])
    assert table["cum_mib_up_per_client"].tolist() == pytest.approx([0.0, 3.0])
    assert table["cum_mib_down_per_client"].tolist() == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_dvc_plots_read_columns_that_the_committed_results_hold(profile: str) -> None:
    """Every plot of dvc.yaml names a template in .dvc/plots and x/y columns present in its data file."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    plots = yaml.safe_load((root / "dvc.yaml").read_text())["plots"]
    assert len(plots) == 4
    for plot in plots:
        ((title, spec),) = plot.items()
        assert (root / ".dvc" / "plots" / f"{spec['template']}.json").is_file(), title
        for source, field in spec["y"].items():
            path = root / source.replace("${profile}", profile)
            if not path.is_file():
                pytest.skip(f"{path.name} not committed for profile {profile}")
            columns = set(pd.read_csv(path, nrows=1).columns)
            assert {spec["x"], field, "method"} <= columns, title
