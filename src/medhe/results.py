"""Where the pipeline puts results, and how stages read them back as tidy frames.

Layout (the parameters are in the paths)::

    results/<profile>/data/summary.json
    results/<profile>/<group>/<tag><method>_s<seed>/{history.csv, metrics.json, run.json, bytes.csv}

with groups ``runs`` (the trials), ``sweeps`` (tag ``sparsity0.5-``), ``convergence``,
``noniid``, ``scale`` (tag ``clients20-``) and ``papersize``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

GROUPS = ("runs", "sweeps", "convergence", "noniid", "scale", "papersize", "frontier", "lira", "target")


def run_path(profile: str, group: str, *, method: str, seed: int, tag: str = "", root: str | Path = "results") -> Path:
    """``results/<profile>/<group>/<tag><method>_s<seed>``.

    >>> str(run_path("quick", "sweeps", method="medhe", seed=42, tag="sparsity0.5-"))
    'results/quick/sweeps/sparsity0.5-medhe_s42'
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    return Path(root) / profile / group / f"{tag}{method}_s{seed}"


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(obj, list):
        out[prefix] = json.dumps(obj)
    else:
        out[prefix] = obj


def collect(profile: str, group: str, *, root: str | Path = "results", params: bool = True) -> pd.DataFrame:
    """One row per finished run of a group: ``metrics.json`` plus (flattened) parameters and times.

    Raises:
        FileNotFoundError: if the group has no finished run (names the folder to fill).
    """
    folder = Path(root) / profile / group
    rows = []
    for metrics_file in sorted(folder.glob("*/metrics.json")):
        row = json.loads(metrics_file.read_text())
        run = json.loads((metrics_file.parent / "run.json").read_text())
        row["run_dir"] = str(metrics_file.parent)
        row["wall_time_s"] = run.get("wall_time_s")
        row["num_params"] = run.get("num_params")
        row["bytes_setup"] = run.get("bytes_setup")
        for phase, sec in (run.get("time_per_phase_s") or {}).items():
            row[f"total_time_{phase}"] = sec
        if params:
            flat: dict[str, Any] = {}
            _flatten("", {k: v for k, v in run["params"].items() if k != "pipeline"}, flat)
            row.update({f"param.{k}": v for k, v in flat.items()})
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no finished runs under {folder}: run `dvc repro` (or the stage that fills it) first")
    return pd.DataFrame(rows)


def histories(profile: str, group: str, *, root: str | Path = "results") -> pd.DataFrame:
    """All ``history.csv`` of a group stacked, with ``run_dir``."""
    folder = Path(root) / profile / group
    frames = []
    for f in sorted(folder.glob("*/history.csv")):
        df = pd.read_csv(f)
        df["run_dir"] = str(f.parent)
        frames.append(df)
    if not frames:
        raise FileNotFoundError(f"no run histories under {folder}: run `dvc repro` first")
    return pd.concat(frames, ignore_index=True)


def comm_table(hist: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Measured bytes per method: per client per round (mean over rounds >= 1), up and down, by category.

    ``hist`` from :func:`histories`, ``runs`` from :func:`collect` (same group). MiB = 2^20 bytes.
    """
    h = hist[hist["round"] >= 1]
    cols = [c for c in h.columns if c.startswith("bytes_") or c in ("ciphertexts_per_client", "encrypted_values_per_client",
                                                                     "union_density", "density")]
    per_run = h.groupby("run_dir")[cols].mean(numeric_only=True).reset_index()
    meta = runs[["run_dir", "method", "seed", "num_params", "param.data.num_clients", "bytes_setup"]].rename(
        columns={"param.data.num_clients": "num_clients"})
    out = meta.merge(per_run, on="run_dir")
    out["mib_up_per_client_round"] = out["bytes_up_per_client"] / 2**20
    out["mib_down_per_client_round"] = out["bytes_down_per_client"] / 2**20
    out["mib_up_round_all_clients"] = out["mib_up_per_client_round"] * out["num_clients"]
    return out


TRIAL_METRICS = ("accuracy", "f1_binary", "f1_macro", "loss", "majority_accuracy", "majority_f1_macro")


def trials_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, seed): final-round test metrics, bytes, epsilon and wall time."""
    keep = ["method", "seed", *TRIAL_METRICS, "bytes_up_per_client", "bytes_down_per_client", "density",
            "epsilon_rdp", "epsilon_pld", "epsilon_status", "model_change_l2", "wall_time_s"]
    out = runs[[c for c in keep if c in runs.columns]].copy()
    return out.sort_values(["method", "seed"]).reset_index(drop=True)


def phase_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Wall time per phase and method: mean and std (ddof=1) over trials, seconds, and mean share of the run.

    ``runs`` from :func:`collect`. The row ``untimed`` is the run's wall time minus the sum of its timed
    phases, so the phases of a method add up to its wall time. Every transport times the same phases
    (``align``, ``noise``, ``quantise``, ``encrypt``, ``aggregate``, ``decrypt``); what a run does outside
    them (byte accounting, records, the simulator's own bookkeeping) lands in ``untimed``, shown instead
    of hidden.
    """
    cols = sorted(c for c in runs.columns if c.startswith("total_time_"))
    if "wall_time_s" not in runs.columns or not cols:
        raise ValueError("runs carry no wall time per phase (run.json: wall_time_s, time_per_phase_s)")
    per_run = runs[["method", "seed", "wall_time_s", *cols]].copy()
    per_run["total_time_untimed"] = per_run["wall_time_s"] - per_run[cols].fillna(0.0).sum(axis=1)
    long = per_run.melt(id_vars=["method", "seed", "wall_time_s"], var_name="phase", value_name="seconds")
    long = long.dropna(subset=["seconds"])
    long["phase"] = long["phase"].str.removeprefix("total_time_")
    long["share"] = long["seconds"] / long["wall_time_s"]
    out = long.groupby(["method", "phase"]).agg(n=("seconds", "size"), mean_s=("seconds", "mean"),
                                                std_s=("seconds", "std"), share=("share", "mean"))
    return out.reset_index()


def _tag_value(run_dir: str, prefix: str) -> float:
    name = Path(run_dir).name
    return float(name.split("-", 1)[0].removeprefix(prefix))


def sweep_table(sweep_runs: pd.DataFrame, sweep_hist: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Sparsity sweep: accuracy, macro-F1 and measured uplink saving vs FedAvg (same profile and seed).

    ``baseline`` is :func:`comm_table` of the ``runs`` group (FedAvg rows are used).
    """
    comm = comm_table(sweep_hist, sweep_runs)
    comm["sparsity"] = comm["run_dir"].map(lambda d: _tag_value(d, "sparsity"))
    fed = baseline[baseline["method"] == "fedavg"]
    if not len(fed):
        raise ValueError("the sweep's saving needs a fedavg run in the runs group")
    fed_up = float(fed["bytes_up_per_client"].mean())
    metrics = sweep_runs[["run_dir", "accuracy", "f1_macro"]]
    out = comm.merge(metrics, on="run_dir")
    out["saving_pct"] = 100 * (1 - out["bytes_up_per_client"] / fed_up)
    return out.sort_values(["method", "sparsity"]).reset_index(drop=True)


def scale_table(scale_runs: pd.DataFrame, scale_hist: pd.DataFrame) -> pd.DataFrame:
    """Client-count sweep: bytes per client per round and server aggregation time per round."""
    comm = comm_table(scale_hist, scale_runs)
    t = scale_hist[scale_hist["round"] >= 1].groupby("run_dir")["time_aggregate"].mean().rename("time_aggregate")
    out = comm.merge(t.reset_index(), on="run_dir")
    return out.sort_values(["method", "num_clients"]).reset_index(drop=True)


def convergence_table(conv_hist: pd.DataFrame, *, tolerance: float = 0.01) -> pd.DataFrame:
    """First round whose accuracy is within ``tolerance`` of the run's final accuracy (and stays there)."""
    rows = []
    for (method, seed), h in conv_hist.sort_values("round").groupby(["method", "seed"]):
        acc = h["accuracy"].to_numpy()
        rounds = h["round"].to_numpy()
        final = acc[-1]
        inside = abs(acc - final) <= tolerance
        first = len(acc) - 1
        while first > 0 and inside[first - 1]:
            first -= 1
        rows.append({"method": method, "seed": seed, "rounds": int(rounds[-1]), "final_accuracy": float(final),
                     "converged_round": int(rounds[first]), "tolerance": tolerance})
    return pd.DataFrame(rows)


def frontier_table(front_runs: pd.DataFrame, front_hist: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and macro-F1 against measured uplink bytes, per (method, sparsity, bits); plus the trial
    methods' own points from ``baseline`` (:func:`comm_table` of ``runs`` merged with their metrics)."""
    comm = comm_table(front_hist, front_runs)
    tags = comm["run_dir"].map(lambda d: Path(d).name.split("-"))
    comm["sparsity"] = tags.map(lambda t: float(t[0].removeprefix("sparsity")))
    comm["bits"] = tags.map(lambda t: int(t[1].removeprefix("bits")))
    cols = [c for c in ("run_dir", "accuracy", "f1_macro", "model_change_l2") if c in front_runs.columns]
    out = comm.merge(front_runs[cols], on="run_dir")
    out["kind"] = "frontier"
    base = baseline.assign(kind="trial", sparsity=float("nan"), bits=float("nan"))
    out = pd.concat([out, base], ignore_index=True)
    out["bytes_up_round_per_param"] = out["bytes_up_per_client"] * out["num_clients"] / out["num_params"]
    return out
