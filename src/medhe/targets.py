"""Rounds and bytes to a target macro-F1: what a method costs as its users pay it.

The target of a seed is ``fraction`` x FedAvg's final test macro-F1 after the round budget, on the
same seed and data (FedAvg's reference run is the ``target`` group's ``fedavg`` variant, run to
the budget). A run's cost to target is the first round whose test macro-F1 reaches it, and the
measured bytes per client summed over rounds 1 to that round (uplink; uplink + downlink). A run
that never reaches it reports ``reached = False`` with its budget, never a number it did not
measure. The paper's 3-round comparison is kept beside it (``f1_macro_r3``).

Results layout: ``results/<profile>/target/<variant>_s<seed>/`` (:func:`medhe.results.run_path`
with group ``target``), a variant being ``method[-s<sparsity>][-b<bits>]``
(:func:`medhe.fl.methods.parse_variant`).

>>> h = pd.DataFrame({"round": [0, 1, 2, 3], "f1_macro": [0.4, 0.5, 0.71, 0.72],
...                   "bytes_up_per_client": [0, 10, 10, 10], "bytes_down_per_client": [0, 5, 5, 5]})
>>> r = to_target(h, target=0.7)
>>> r["reached"], r["rounds_to_target"], r["bytes_up_to_target"], r["bytes_updown_to_target"]
(True, 2, 20.0, 30.0)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

__all__ = ["target_value", "to_target", "curves", "to_target_table", "reference_target", "epsilon_fields",
           "PAPER_ROUNDS", "TABLE_COLUMNS", "CURVE_COLUMNS", "NO_DP", "RECORD_LEVEL"]

PAPER_ROUNDS = 3  # the paper's round count: f1_macro_r3 is the paper's comparison
LEARNED_MARGIN = 0.02  # the reference must beat the majority class's macro-F1 by this much (the ledger's margin)
TABLE_COLUMNS = ("variant", "method", "seed", "sparsity", "reference_learned", "target", "rounds_run", "final_f1_macro",
                 "f1_macro_r3",
                 "reached", "rounds_to_target", "bytes_up_to_target", "bytes_updown_to_target", "epsilon",
                 "epsilon_record", "epsilon_status", "num_params", "mib_up_to_target")
NO_DP = "no DP"  # the epsilon status of a run that released without a DP mechanism
RECORD_LEVEL = "record-level DP-SGD in each client (Opacus accountant, largest epsilon over clients)"
CURVE_COLUMNS = ("variant", "method", "seed", "round", "f1_macro", "accuracy", "cum_bytes_up_per_client",
                 "cum_bytes_updown_per_client", "target")


def target_value(reference_f1: float, *, fraction: float) -> float:
    """``fraction * reference_f1``, both checked.

    >>> target_value(0.8, fraction=0.95)
    0.76
    """
    if not (isinstance(reference_f1, (int, float)) and math.isfinite(reference_f1) and 0 < reference_f1 <= 1):
        raise ValueError(f"reference macro-F1 must be in (0, 1], got {reference_f1!r}")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return round(float(fraction) * float(reference_f1), 12)


def reference_target(metrics_file: str | Path, *, fraction: float) -> float:
    """The target from FedAvg's reference run (its ``metrics.json``: the final round's ``f1_macro``)."""
    path = Path(metrics_file)
    if not path.is_file():
        raise FileNotFoundError(f"FedAvg's reference run {str(path)!r} is missing: run its `target` stage first")
    return target_value(float(json.loads(path.read_text())["f1_macro"]), fraction=fraction)


def _check_history(history: pd.DataFrame) -> pd.DataFrame:
    need = {"round", "f1_macro", "bytes_up_per_client", "bytes_down_per_client"}
    missing = sorted(need - set(history.columns))
    if missing:
        raise ValueError(f"history lacks column(s) {missing}")
    return history.sort_values("round")


def to_target(history: pd.DataFrame, *, target: float) -> dict:
    """Rounds and bytes per client to reach ``target`` macro-F1, from one run's ``history.csv``.

    Round 0 (the initial model) counts as reached only if it already meets the target (0 rounds,
    0 bytes). Bytes are the sums of the rounds' measured per-client bytes.
    """
    h = _check_history(history)
    rounds = h["round"].to_numpy()
    f1 = h["f1_macro"].to_numpy(dtype=float)
    up = h["bytes_up_per_client"].fillna(0.0).to_numpy(dtype=float).cumsum()
    down = h["bytes_down_per_client"].fillna(0.0).to_numpy(dtype=float).cumsum()
    hit = [i for i in range(len(rounds)) if f1[i] >= target]  # none when the target is NaN (undefined)
    r3 = h.loc[h["round"] == PAPER_ROUNDS, "f1_macro"]
    out = {"target": float(target), "rounds_run": int(rounds[-1]), "final_f1_macro": float(f1[-1]),
           "f1_macro_r3": float(r3.iloc[0]) if len(r3) else math.nan, "reached": bool(hit),
           "rounds_to_target": math.nan, "bytes_up_to_target": math.nan, "bytes_updown_to_target": math.nan}
    if hit:
        i = hit[0]
        out.update(rounds_to_target=int(rounds[i]), bytes_up_to_target=float(up[i]),
                   bytes_updown_to_target=float(up[i] + down[i]))
    return out


def curves(history: pd.DataFrame) -> pd.DataFrame:
    """Per round: test macro-F1 and the cumulative measured bytes per client (up; up + down)."""
    h = _check_history(history).copy()
    h["cum_bytes_up_per_client"] = h["bytes_up_per_client"].fillna(0.0).cumsum()
    h["cum_bytes_updown_per_client"] = h["cum_bytes_up_per_client"] + h["bytes_down_per_client"].fillna(0.0).cumsum()
    return h


def epsilon_fields(history: pd.DataFrame) -> dict:
    """What a run's last round says of its privacy: client-level epsilon (RDP), record-level epsilon
    (the largest over clients) and the status the run recorded (``epsilon_status``: which accountant
    covers the release, or why none does). A run without a DP mechanism records neither; its status
    is ``NO_DP``.

    >>> epsilon_fields(pd.DataFrame({"round": [0, 1], "epsilon_rdp": [float("nan"), 2.5],
    ...                              "epsilon_status": [float("nan"), "Gaussian accountant (RDP, PLD)"]}))
    {'epsilon': 2.5, 'epsilon_record': nan, 'epsilon_status': 'Gaussian accountant (RDP, PLD)'}
    >>> epsilon_fields(pd.DataFrame({"round": [0, 1]}))["epsilon_status"]
    'no DP'
    """
    last = history.iloc[-1]
    eps = float(last["epsilon_rdp"]) if "epsilon_rdp" in history.columns else math.nan
    record = float(last["epsilon_record_max"]) if "epsilon_record_max" in history.columns else math.nan
    status = last["epsilon_status"] if "epsilon_status" in history.columns else None
    if not isinstance(status, str):
        status = RECORD_LEVEL if math.isfinite(record) else NO_DP
    return {"epsilon": eps, "epsilon_record": record, "epsilon_status": status}


def _variant_seed(run_dir: Path) -> tuple[str, int]:
    variant, _, seed = run_dir.name.rpartition("_s")
    return variant, int(seed)


def to_target_table(profile: str, *, fraction: float, root: str | Path = "results") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per target run, its per-round curve) for ``results/<profile>/target``.

    Each seed's target comes from its FedAvg reference (``fedavg_s<seed>``); a seed without one is
    an error that names the missing run. A reference that did not beat the majority class's macro-F1
    by ``LEARNED_MARGIN`` defines no target: its seed's rows say ``reference_learned = False`` and
    reach nothing.
    """
    folder = Path(root) / profile / "target"
    runs = sorted(p.parent for p in folder.glob("*/history.csv"))
    if not runs:
        raise FileNotFoundError(f"no target runs under {folder}: run the pipeline's `target` stages first")
    rows, frames = [], []
    for run_dir in runs:
        variant, seed = _variant_seed(run_dir)
        ref_file = folder / f"fedavg_s{seed}" / "metrics.json"
        target = reference_target(ref_file, fraction=fraction)
        ref = json.loads(ref_file.read_text())
        learned = ref["f1_macro"] > ref.get("majority_f1_macro", 0.0) + LEARNED_MARGIN
        if not learned:  # a target at the majority class is met by a model that learned nothing
            target = math.nan
        hist = pd.read_csv(run_dir / "history.csv")
        record = json.loads((run_dir / "run.json").read_text())
        rows.append({"variant": variant, "method": record["method"], "seed": seed,
                     "sparsity": record["params"]["sparsify"]["sparsity"], "reference_learned": learned,
                     **to_target(hist, target=target),
                     **epsilon_fields(hist), "num_params": record.get("num_params"),
                     "mib_up_to_target": math.nan})
        rows[-1]["mib_up_to_target"] = rows[-1]["bytes_up_to_target"] / 2**20
        frames.append(curves(hist).assign(variant=variant, seed=seed, target=target))
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS)).sort_values(["variant", "seed"]).reset_index(drop=True)
    curve = pd.concat(frames, ignore_index=True)
    return table, curve[[c for c in CURVE_COLUMNS if c in curve.columns]]
