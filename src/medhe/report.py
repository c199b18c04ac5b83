"""Stage-level tables: what the comm and stats notebooks compute from results files.

Each function reads ``results/<profile>/...`` and returns named tidy frames; the notebook
writes them. Groups that did not run in a profile are skipped, never invented.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medhe import results, stats, targets

COMPARISONS = (("medhe", "fedavg"), ("he_only", "fedavg"), ("medhe_no_ef", "medhe"), ("medhe_no_adaptive", "medhe"),
               ("medhe_no_packing", "medhe"), ("medhe_no_he", "medhe"), ("medhe_no_dp", "medhe"))


def _group(profile: str, group: str, root: str | Path):
    try:
        return results.collect(profile, group, root=root), results.histories(profile, group, root=root)
    except FileNotFoundError:
        return None, None


def comm_tables(profile: str, *, root: str | Path = "results", target_fraction: float = 0.95) -> dict[str, pd.DataFrame]:
    """``bytes`` (runs and papersize groups), ``sweep`` and ``scale`` tables, measured bytes only; with a
    ``target`` group, ``to_target`` and ``curves`` (:func:`medhe.targets.to_target_table`; empty
    tables with their columns when the profile has no target runs)."""
    out: dict[str, pd.DataFrame] = {}
    frames = []
    base = None
    for group in ("runs", "papersize", "noniid"):
        runs, hist = _group(profile, group, root)
        if runs is not None:
            table = results.comm_table(hist, runs).assign(group=group)
            frames.append(table)
            if group == "runs":
                base = table
    if frames:
        out["bytes"] = pd.concat(frames, ignore_index=True)
    runs, hist = _group(profile, "sweeps", root)
    if runs is not None and base is not None:
        out["sweep"] = results.sweep_table(runs, hist, base)
    runs, hist = _group(profile, "scale", root)
    if runs is not None:
        out["scale"] = results.scale_table(runs, hist)
    runs, hist = _group(profile, "frontier", root)
    trial_runs, _ = _group(profile, "runs", root)
    if runs is not None and base is not None:
        trial_points = base.merge(trial_runs[["run_dir", "accuracy", "f1_macro"]], on="run_dir")
        out["frontier"] = results.frontier_table(runs, hist, trial_points)
    try:
        out["to_target"], out["curves"] = targets.to_target_table(profile, fraction=target_fraction, root=root)
    except FileNotFoundError:
        out["to_target"] = pd.DataFrame(columns=targets.TABLE_COLUMNS)
        out["curves"] = pd.DataFrame(columns=targets.CURVE_COLUMNS)
    return out


def stats_tables(profile: str, *, root: str | Path = "results") -> dict[str, pd.DataFrame]:
    """``trials``, ``summary`` (mean, std ddof=1, 95 % CI), wall time per ``phases``, paired ``tests``,
    ``convergence`` tables."""
    runs = results.collect(profile, "runs", root=root)
    trials = results.trials_table(runs)
    metrics = [m for m in (*results.TRIAL_METRICS, "model_change_l2", "wall_time_s") if m in trials.columns]
    out = {"trials": trials, "summary": stats.summarise(trials, metrics=metrics), "phases": results.phase_table(runs)}
    present = set(trials["method"])
    tests = [stats.paired_tests(trials, a=a, b=b, metrics=["accuracy", "f1_macro", "f1_binary"])
             for a, b in COMPARISONS if {a, b} <= present]
    if tests:
        out["tests"] = pd.concat(tests, ignore_index=True)
    _, hist = _group(profile, "convergence", root)
    if hist is not None:
        out["convergence"] = results.convergence_table(hist)
        out["convergence_history"] = hist[["method", "seed", "round", "accuracy", "f1_macro"]]
    _, hist = _group(profile, "noniid", root)
    if hist is not None:
        out["noniid"] = hist[hist["round"] == hist["round"].max()][["method", "seed", "accuracy", "f1_macro"]]
    return out


def metrics_summary(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """A flat dict for ``dvc metrics show``: ``<method>.<metric>.mean`` and ``.std``."""
    out: dict[str, float] = {}
    for row in tables["summary"].itertuples():
        out[f"{row.method}.{row.metric}.mean"] = row.mean
        out[f"{row.method}.{row.metric}.std"] = row.std
    return out


def write_tables(tables: dict[str, pd.DataFrame], folder: str | Path) -> list[Path]:
    """Write each table as ``<folder>/<name>.csv``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in tables.items():
        p = folder / f"{name}.csv"
        df.to_csv(p, index=False)
        paths.append(p)
    return paths


def mia_tables(profile: str, *, root: str | Path = "results", group: str = "runs") -> dict[str, pd.DataFrame]:
    """``attacks`` (every attack of every run), ``summary`` (worst case per run over the paper's four
    attacks, and over all attacks including LiRA) and ``roc`` (tidy ROC points)."""
    from medhe.attacks.data import PAPER_ATTACKS

    folder = Path(root) / profile / group
    frames = [pd.read_csv(f) for f in sorted(folder.glob("*/mia.csv"))]
    if not frames:
        raise FileNotFoundError(f"no mia.csv under {folder}: run the train stages first")
    attacks = pd.concat(frames, ignore_index=True)
    if "calibration_success_rate" not in attacks.columns:
        raise ValueError(f"mia.csv under {folder} lacks calibration_success_rate (the worst case is chosen on the "
                         "calibration split): rerun the train stages")
    old = attacks[attacks["calibration_success_rate"].isna()]
    if len(old):
        runs = sorted({f"{m}_s{s}" for m, s in zip(old["method"], old["seed"])})
        raise ValueError(f"runs {runs} under {folder} have no calibration_success_rate (written by older code; the "
                         f"worst case is chosen on the calibration split): rerun their stages ({group})")
    rows = []
    for (method, seed), g in attacks.groupby(["method", "seed"]):
        # the worst case is chosen on the calibration split, then reported on the evaluation split
        paper = g[g["attack"].isin(PAPER_ATTACKS)]
        worst = paper.loc[paper["calibration_success_rate"].idxmax()]
        worst_any = g.loc[g["calibration_success_rate"].idxmax()]
        rows.append({"method": method, "seed": seed, "worst_attack": worst["attack"],
                     "worst_success_rate": worst["success_rate"], "worst_ci_low": worst["ci_low"],
                     "worst_ci_high": worst["ci_high"], "max_auc": g["auc"].max(),
                     "max_tpr_at_1pct_fpr": g["tpr_at_1pct_fpr"].max(),
                     "worst_any_success_rate": worst_any["success_rate"], "worst_any_attack": worst_any["attack"],
                     "worst_selected_on": "calibration split"})
    roc = pd.concat([pd.read_csv(f) for f in sorted(folder.glob("*/roc.csv"))], ignore_index=True)
    return {"attacks": attacks, "summary": pd.DataFrame(rows), "roc": roc}
