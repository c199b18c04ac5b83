"""The claims ledger: for every claim of the paper, claimed vs measured and a verdict by a stated rule.

Claimed values come only from ``claims/paper.yaml``; measured values only from result
files under ``results/<profile>/`` written by earlier stages. Each claim has one rule
function below (``RULES``); its docstring is the rule, copied into the ledger.

Verdicts: ``reproduced``, ``not reproduced``, or ``not testable here`` (with the reason,
e.g. the claim is about the paper's data and model, or the stage did not run in this
profile). Tolerances are constants here, stated in each rule. A claim whose numbers cannot
hold together (an F1 no classifier reaches at the claimed accuracy) is "not reproduced" in
every profile, with the bound in the row.

Every byte figure is compared in the unit the paper meant (``unit: MB`` = 10^6 bytes or
``MiB`` = 2^20 bytes, per claim in ``claims/paper.yaml``). Privacy and utility claims are only
judged between models that *learned*, one definition for every rule (:func:`learned`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import yaml
from scipy import stats as sps

from medhe import f1_arithmetic, stats

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_TESTABLE = "not testable here"
BYTES_REL_TOL = 0.10  # byte figures: within 10 % of the claimed value
MIB = 2**20
UNITS = {"MB": 10**6, "MiB": 2**20}
LEARNED_MARGIN = 0.02  # "learned": accuracy above the majority class by at least 2 points (see learned())


@dataclass
class LedgerRow:
    """One row of the claims ledger."""

    id: str
    claim: str
    claimed: str
    measured: str
    verdict: str
    rule: str
    profile: str
    configuration: str
    source: str
    note: str = ""
    provenance: str = ""


class Measured:
    """Lazy access to the result files of one profile; a missing file becomes a reason, not a crash."""

    def __init__(self, root: str | Path, profile: str) -> None:
        self.root = Path(root)
        self.profile = profile
        self.base = self.root / profile

    def path(self, rel: str) -> Path:
        return self.base / rel

    def csv(self, rel: str) -> pd.DataFrame | None:
        p = self.path(rel)
        return pd.read_csv(p) if p.is_file() else None

    def json(self, rel: str) -> Any:
        p = self.path(rel)
        return json.loads(p.read_text()) if p.is_file() else None


def load_claims(path: str | Path) -> list[dict[str, Any]]:
    """The claims file as a list of dicts (id, claim, claimed)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"claims file {str(p)!r} not found")
    claims = yaml.safe_load(p.read_text())["claims"]
    ids = [c["id"] for c in claims]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate claim ids in {p}: {ids}")
    return claims


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) >= 1e4 or abs(x) < 1e-3 else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return str(x)


def _within(measured: float, claimed: float, rel: float = BYTES_REL_TOL) -> bool:
    return abs(measured - claimed) <= rel * abs(claimed)


def _missing(what: str, stage: str) -> tuple[str, str, str]:
    return "n/a", NOT_TESTABLE, f"{what} not measured in this profile (stage `{stage}`)"


# ---------------------------------------------------------------- shared definitions


def to_unit(nbytes: float, unit: str) -> float:
    """``nbytes`` in ``unit`` (``MB`` = 10^6 B, ``MiB`` = 2^20 B).

    >>> round(to_unit(5 * 13 * 491_520, "MB"), 2), round(to_unit(5 * 13 * 491_520, "MiB"), 2)
    (31.95, 30.47)
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {sorted(UNITS)}, got {unit!r}: give every byte figure its unit "
                         "in claims/paper.yaml")
    return float(nbytes) / UNITS[unit]


def claimed_bytes(value: float, unit: str) -> float:
    """A claimed figure in bytes."""
    to_unit(0, unit)  # refuses an unknown unit
    return float(value) * UNITS[unit]


def _round_bytes(comm: pd.DataFrame, method: str, column: str = "mib_up_round_all_clients") -> float | None:
    rows = comm[comm["method"] == method]
    return float(rows[column].mean()) * MIB if len(rows) and column in rows.columns else None


def learned(accuracy: Sequence[float], majority: float, *, margin: float = LEARNED_MARGIN) -> tuple[bool, str]:
    """Whether a method learned: its test accuracy beats the majority class by ``margin`` on every
    seed, or its mean gain has a 95 % t-interval whose lower end is at least ``margin``. Returns
    (verdict, reason with the numbers).

    >>> learned([0.76, 0.75, 0.74], 0.654)[0], learned([0.49, 0.65, 0.66], 0.654)[0]
    (True, False)
    """
    acc = np.asarray(accuracy, dtype=float)
    if acc.size == 0:
        raise ValueError("learned() needs at least one accuracy")
    gain = acc - majority
    mean = float(gain.mean())
    if np.all(gain >= margin):
        return True, (f"accuracy {acc.mean():.3f} beats the majority class ({majority:.3f}) by >= {margin:g} on "
                      f"every seed (lowest {gain.min():+.3f}, n={acc.size})")
    lo = float("nan")
    if acc.size >= 2:
        lo = mean - float(sps.t.ppf(0.975, acc.size - 1) * gain.std(ddof=1) / np.sqrt(acc.size))
        if lo >= margin:
            return True, (f"accuracy {acc.mean():.3f} beats the majority class ({majority:.3f}) by {mean:+.3f} on "
                          f"the mean (95 % CI lower end {lo:+.3f} >= {margin:g}, n={acc.size})")
    return False, (f"accuracy {acc.mean():.3f} vs the majority class {majority:.3f}: gain {mean:+.3f}, lowest seed "
                   f"{gain.min():+.3f}" + ("" if math.isnan(lo) else f", 95 % CI lower end {lo:+.3f}")
                   + f" (needs >= {margin:g} on every seed or on the CI's lower end, n={acc.size})")


def learned_in(m: Measured, method: str) -> tuple[bool | None, str]:
    """:func:`learned` on ``stats/trials.csv`` (per-seed accuracy against its majority_accuracy);
    (None, reason) when the trials are missing."""
    t = m.csv("stats/trials.csv")
    if t is None or not {"accuracy", "majority_accuracy"} <= set(t.columns):
        return None, "stats/trials.csv with accuracy and majority_accuracy not measured (stage `stats`)"
    rows = t[t["method"] == method]
    if not len(rows):
        return None, f"no trials of {method}"
    ok, why = learned(rows["accuracy"].to_numpy(), float(rows["majority_accuracy"].mean()))
    return ok, f"{method}: {why}"


def _gate(m: Measured, methods: Sequence[str]) -> tuple[bool | None, str]:
    """All ``methods`` learned (True), one did not (False, why), or unknown (None, why)."""
    reasons = []
    for method in methods:
        ok, why = learned_in(m, method)
        if not ok:
            return ok, why
        reasons.append(why)
    return True, "; ".join(reasons)


def _majority(m: Measured, metric: str) -> float | None:
    """The score of always predicting the majority class (``majority_<metric>`` in ``stats/summary.csv``,
    mean over its rows), or None."""
    s = m.csv("stats/summary.csv")
    base = None if s is None else s[s["metric"] == f"majority_{metric}"]["mean"]
    return float(base.mean()) if base is not None and len(base) else None


def untrained(m: Measured, methods: Sequence[str] | None = None) -> str:
    """A warning naming every method whose trials never moved the model (final weights = initial,
    ``model_change_l2`` = 0: its metrics are round 0's and say nothing about the method); "" if none."""
    t = m.csv("stats/trials.csv")
    if t is None or "model_change_l2" not in t.columns:
        return ""
    if methods is not None:
        t = t[t["method"].isin(methods)]
    dead = t[t["model_change_l2"] == 0].groupby("method")["seed"].count()
    total = t.groupby("method")["seed"].count()
    return "; ".join(f"WARNING: {k} never moved from its initial weights in {n} of {total[k]} trials"
                     for k, n in dead.items())


def _summary(m: Measured, method: str, metric: str) -> pd.Series | None:
    s = m.csv("stats/summary.csv")
    if s is None:
        return None
    rows = s[(s["method"] == method) & (s["metric"] == metric)]
    return rows.iloc[0] if len(rows) else None


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _substitute(m: Measured) -> str:
    return ("" if m.profile == "paper" else
            "the claim is about DistilBERT on Druglib.com; this profile measures a substitute (see configuration); "
            "run profile `paper` with a network")


def f1_bounds_text(c: dict, *, accuracy: float, std: float, trials: int) -> tuple[dict[str, float], str]:
    """Upper bounds on the mean binary and macro F1 at the claimed accuracy on the paper's test set, and
    their text for the ledger."""
    n, pos = int(c["test_n"]), int(c["test_positive"])
    b = {avg: f1_arithmetic.mean_f1_upper_bound(n=n, positive=pos, accuracy=accuracy, accuracy_std=std,
                                               trials=trials, average=avg)["bound"] for avg in ("binary", "macro")}
    txt = (f"at {100 * accuracy:.1f} % +- {100 * std:.1f} % accuracy over {trials} trials on {n} test reviews "
           f"({pos} positive) the mean binary F1 is at most {b['binary']:.3f} and the mean macro-F1 at most "
           f"{b['macro']:.3f}")
    return b, txt


# ---------------------------------------------------------------- rules, one per claim


def _comm(m: Measured, group: str = "papersize") -> pd.DataFrame | None:
    df = m.csv("comm/bytes.csv")
    if df is None:
        return None
    df = df[df["group"] == group]
    return df if len(df) else None


def _bytes_rule(c, m, method: str):
    comm = _comm(m)
    val = None if comm is None else _round_bytes(comm, method)
    if val is None:
        return None
    unit = c["unit"]
    return val, f"{to_unit(val, unit):,.1f} {unit} uplink per round", _within(val, claimed_bytes(c["per_round"], unit))


def rule_comm_reduction(c, m):
    """Reduction = 1 - uplink(medhe) / uplink(fedavg), bytes per round summed over clients, measured at the
    paper's model size (distilbert-arch, 66,955,010 parameters). Reproduced if the measured reduction is at
    least the claimed one minus 1 percentage point. The note gives the reduction the paper's own two byte
    figures imply in one unit."""
    comm = _comm(m)
    own = 100 * (1 - claimed_bytes(c["medhe_per_round"], c["medhe_unit"])
                 / claimed_bytes(c["fedavg_per_round"], c["fedavg_unit"]))
    note = (f"the paper's {c['reduction_pct']:g} % divides {c['medhe_per_round']:g} {c['medhe_unit']} by "
            f"{c['fedavg_per_round']:g} {c['fedavg_unit']}; in one unit its figures give {own:.1f} %")
    if comm is None or _round_bytes(comm, "medhe") is None or _round_bytes(comm, "fedavg") is None:
        return "n/a", NOT_TESTABLE, _join("paper-size bytes for medhe and fedavg not measured in this profile "
                                          "(stage `papersize + comm`)", note)
    red = 100 * (1 - _round_bytes(comm, "medhe") / _round_bytes(comm, "fedavg"))
    ok = red >= c["reduction_pct"] - 1
    return f"{red:.1f} %", REPRODUCED if ok else NOT_REPRODUCED, note


def rule_comm_fedavg_mb(c, m):
    """An arithmetic check, not an experiment: dense float32 FedAvg sends 4 bytes per parameter, so the
    figure is 5 x 66,955,010 x 4 B. Measured by serialising at the paper's model size (uplink per round,
    5 clients, in the claim's unit); reproduced if within 10 %. Uplink + downlink shown beside it."""
    out = _bytes_rule(c, m, "fedavg")
    if out is None:
        return _missing("paper-size bytes for fedavg", "papersize + comm")
    val, txt, ok = out
    down = _round_bytes(_comm(m), "fedavg", "mib_down_per_client_round")
    both = "" if down is None else f"; uplink + downlink {to_unit(val + 5 * down, c['unit']):,.1f} {c['unit']}"
    n = _comm(m)["num_params"].iloc[0] if "num_params" in _comm(m).columns else None
    return (txt + both, REPRODUCED if ok else NOT_REPRODUCED,
            f"arithmetic check ({'?' if n is None else f'{int(n):,}'} parameters x 4 B x 5 clients), not an experiment")


def rule_comm_medhe_mb(c, m):
    """Uplink per round, 5 clients, MedHE (index sets + packed ciphertexts) at the paper's model size, in the
    claim's unit. Reproduced if within 10 % of the claim."""
    out = _bytes_rule(c, m, "medhe")
    if out is None:
        return _missing("paper-size bytes for medhe", "papersize + comm")
    val, txt, ok = out
    return txt, REPRODUCED if ok else NOT_REPRODUCED, ""


def rule_ciphertexts(c, m):
    """Ciphertexts per client per round at the paper's model size, with packing (medhe) and without
    (medhe_no_packing). Reproduced if both counts are within 10 % of the claims."""
    comm = _comm(m)
    if comm is None:
        return _missing("paper-size ciphertext counts", "papersize + comm")
    got = {}
    for key, method in (("packed", "medhe"), ("unpacked", "medhe_no_packing")):
        rows = comm[comm["method"] == method]
        got[key] = float(rows["ciphertexts_per_client"].mean()) if len(rows) else None
    if any(v is None for v in got.values()):
        have = ", ".join(f"{k}: {_fmt(v)}" for k, v in got.items())
        return have, NOT_TESTABLE, "medhe and medhe_no_packing must both run at paper size (pipeline.paper_size_methods)"
    ok = all(_within(got[k], c[k]) for k in got)
    return f"packed {got['packed']:,.0f}, unpacked {got['unpacked']:,.0f}", REPRODUCED if ok else NOT_REPRODUCED, ""


def _default_set(m: Measured) -> pd.Series | None:
    sec = m.csv("security/params.csv")
    if sec is None:
        return None
    rows = sec[sec["label"].str.startswith("pipeline default")]
    return rows.iloc[0] if len(rows) else None


def rule_slot_packing(c, m):
    """Largest number of 8-bit values per CKKS slot whose 5-client encrypted sum decrypts exactly, measured on
    the pipeline's parameter set. Reproduced if it is at least the claimed number."""
    row = _default_set(m)
    if row is None:
        return _missing("exact packing", "security")
    b = int(row["max_exact_batch_8bit"])
    return f"{b} values per slot (8-bit, 5 clients)", REPRODUCED if b >= c["values_per_slot"] else NOT_REPRODUCED, ""


def rule_ct_size(c, m):
    """Serialised size of one ciphertext (pipeline parameter set) and MedHE uplink per client per round at the
    paper's size, in the claim's unit. Reproduced if both are within 10 % of the claims; if the per-round
    figure is missing, judged on the ciphertext size alone."""
    row = _default_set(m)
    if row is None:
        return _missing("ciphertext size", "security")
    unit = c["unit"]
    ct = float(row["ciphertext_bytes"])
    comm = _comm(m)
    per_client = None
    if comm is not None and len(comm[comm["method"] == "medhe"]):
        per_client = float(comm[comm["method"] == "medhe"]["mib_up_per_client_round"].mean()) * MIB
    ok = _within(ct, claimed_bytes(c["per_ciphertext"], unit)) and (
        per_client is None or _within(per_client, claimed_bytes(c["per_client_round"], unit)))
    pc = "n/a" if per_client is None else f"{to_unit(per_client, unit):,.3f}"
    return (f"{to_unit(ct, unit):.3f} {unit} per ciphertext ({ct:,.0f} B); {pc} {unit} per client per round",
            REPRODUCED if ok else NOT_REPRODUCED, "" if per_client is not None else "per-round figure not measured")


def rule_he_params(c, m):
    """Security level of (N, total modulus bits) in the HomomorphicEncryption.org standard (classical table, as
    SEAL enforces it). Reproduced if it is at least the claimed level."""
    sec = m.csv("security/params.csv")
    if sec is None:
        return _missing("security table", "security")
    rows = sec[(sec["poly_modulus_degree"] == c["poly_modulus_degree"]) & (sec["total_bits"] == c["total_bits"])]
    if not len(rows):
        return _missing(f"N={c['poly_modulus_degree']}, {c['total_bits']} bits", "security")
    lvl = rows.iloc[0]["security_classical"]
    lvl = None if pd.isna(lvl) else int(lvl)
    measured = f"{lvl}-bit" if lvl else f"below 128-bit (refused: {c['total_bits']} bits > standard's limit)"
    return measured, REPRODUCED if lvl and lvl >= c["security_bits"] else NOT_REPRODUCED, ""


def _acc_rule(c, m, method: str, metric: str, claimed_mean: float, claimed_std: float):
    row = _summary(m, method, metric)
    if row is None:
        return _missing(f"{method} {metric}", "train + stats")
    measured = f"{row['mean']:.3f} +- {row['std']:.3f} (n={int(row['n'])}, ddof=1)"
    warn = untrained(m, [method])
    if m.profile != "paper":
        return measured, NOT_TESTABLE, _join(_substitute(m), warn)
    ok = abs(row["mean"] - claimed_mean) <= 2 * claimed_std + 0.01 and not warn
    return measured, REPRODUCED if ok else NOT_REPRODUCED, warn


def rule_acc_medhe(c, m):
    """Mean test accuracy over the trials. Testable only in profile `paper` (the paper's data and model):
    reproduced if |mean - claimed| <= 2 x claimed std + 1 point."""
    return _acc_rule(c, m, "medhe", "accuracy", c["accuracy"], c["std"])


def rule_acc_fedavg(c, m):
    """Mean test accuracy of FedAvg over the trials, and its F1. The F1 is read as binary F1 (class
    "effective"), the only definition the claimed accuracy allows on the paper's test set (arithmetic in the
    note), as for f1-medhe. Testable only in profile `paper`: reproduced if |mean - claimed| <= 2 x claimed
    std + 1 point for the accuracy and 2 x claimed std + 0.01 for the binary F1."""
    bounds, txt = f1_bounds_text(c, accuracy=c["accuracy"], std=c["std"], trials=5)
    macro_ok, binary_ok = c["f1"] <= bounds["macro"], c["f1"] <= bounds["binary"]
    arith = (f"arithmetic: {txt}: F1 {c['f1']:g} is possible as binary F1: {binary_ok}, as macro-F1: {macro_ok}")
    measured, verdict, note = _acc_rule(c, m, "fedavg", "accuracy", c["accuracy"], c["std"])
    f1 = _summary(m, "fedavg", "f1_binary")
    if f1 is not None:
        measured += f"; binary F1 {f1['mean']:.3f} +- {f1['std']:.3f}"
        if verdict == REPRODUCED and abs(f1["mean"] - c["f1"]) > 2 * c["f1_std"] + 0.01:
            verdict = NOT_REPRODUCED
    return measured, verdict, _join(note, arith)


def rule_f1_medhe(c, m):
    """Judged by arithmetic on the paper's test set, in every profile: the claimed F1 must be reachable at the
    claimed accuracy (mean over the trials, with the claimed spread) under some definition, binary F1 or
    macro-F1. If neither definition can reach it, not reproduced (internally inconsistent), with the bound.
    Otherwise testable only in profile `paper`: reproduced if the measured mean of the reachable definition
    is within 2 x claimed std + 0.01 of the claim."""
    bounds, txt = f1_bounds_text(c, accuracy=c["accuracy"], std=c["accuracy_std"], trials=int(c["trials"]))
    ours = []
    for metric in ("f1_macro", "f1_binary"):
        row = _summary(m, "medhe", metric)
        if row is not None:
            ours.append(f"{metric} {row['mean']:.3f} +- {row['std']:.3f}")
    shown = "ours (substitute, not judged): " + ", ".join(ours) if ours else ""
    reachable = [avg for avg in ("macro", "binary") if c["f1"] <= bounds[avg]]
    if not reachable:
        return (f"internally inconsistent: {txt}; claimed {c['f1']:g}", NOT_REPRODUCED,
                _join("no classifier reaches the claimed F1 at the claimed accuracy, so no run can reproduce it", shown))
    metric = "f1_macro" if "macro" in reachable else "f1_binary"
    row = _summary(m, "medhe", metric)
    if row is None:
        return _missing(f"medhe {metric}", "train + stats")
    measured = f"{metric} {row['mean']:.3f} +- {row['std']:.3f} (arithmetic allows it: {txt})"
    if m.profile != "paper":
        return measured, NOT_TESTABLE, _substitute(m)
    ok = abs(row["mean"] - c["f1"]) <= 2 * c["std"] + 0.01
    return measured, REPRODUCED if ok else NOT_REPRODUCED, ""


def rule_p_value(c, m):
    """The paper's claim is that MedHE is comparable to FedAvg. Judged by equivalence (two one-sided paired
    t-tests, TOST) of test accuracy, medhe - fedavg, over the seeds both ran, at the margin stated in
    claims/paper.yaml: reproduced if the TOST p < alpha (the 90 % CI lies inside the margin); not reproduced
    if the difference's 95 % CI lies outside the margin or equivalence fails over at least as many pairs as
    the paper's trials; otherwise (fewer pairs, inconclusive) not testable here. The paired t-test p (the
    paper's figure) and Wilcoxon p are shown beside it, not judged. Outside profile `paper` it is judged on
    the substitute data and model."""
    trials = m.csv("stats/trials.csv")
    if trials is None or "accuracy" not in trials.columns:
        return _missing("paired trials", "stats")
    w = trials.pivot_table(index="seed", columns="method", values="accuracy")
    if not {"medhe", "fedavg"} <= set(w.columns) or w[["medhe", "fedavg"]].dropna().shape[0] < 2:
        return "n/a", NOT_TESTABLE, "needs >= 2 paired trials of medhe and fedavg"
    pairs = w[["medhe", "fedavg"]].dropna()
    margin, alpha = float(c["equivalence_margin"]), float(c["alpha"])
    r = stats.paired_tost((pairs["medhe"] - pairs["fedavg"]).to_numpy(), margin=margin, alpha=alpha)
    n = r["n_pairs"]
    measured = (f"mean diff {r['mean_diff']:+.3f}, 95 % CI [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], "
                f"TOST p = {r['p_tost']:.3g} at margin +-{margin:g} ({n} pairs)")
    t = m.csv("stats/tests.csv")
    if t is not None:
        rows = t[(t["a"] == "medhe") & (t["b"] == "fedavg") & (t["metric"] == "accuracy")]
        if len(rows):
            tr = rows.iloc[0]
            tt = "undefined" if pd.isna(tr["p_ttest"]) else f"{tr['p_ttest']:.3g}"
            used = (f" over {int(tr['n_wilcoxon'])} nonzero pairs"
                    if "n_wilcoxon" in tr and pd.notna(tr["n_wilcoxon"]) else "")
            wil = "n/a" if pd.isna(tr["p_wilcoxon"]) else f"{tr['p_wilcoxon']:.3g}{used}"
            measured += f"; paired t-test p = {tt} (paper: {c['p']:g}), Wilcoxon p = {wil}"
    sub = "" if m.profile == "paper" else "judged on the substitute data and model of this profile"
    if r["equivalent"]:
        return measured, REPRODUCED, _join(f"equivalent within +-{margin:g}", sub)
    outside = r["ci_low"] >= margin or r["ci_high"] <= -margin
    if outside:
        return measured, NOT_REPRODUCED, _join(f"the 95 % CI of the difference lies outside +-{margin:g}", sub)
    if n < c["pairs"]:
        return measured, NOT_TESTABLE, _join(f"equivalence not shown over {n} pairs, and no difference beyond the "
                                             f"margin either; the paper's test had {c['pairs']} (run a profile "
                                             f"with {c['pairs']} seeds)", sub)
    return measured, NOT_REPRODUCED, _join(f"equivalence within +-{margin:g} not shown over {n} pairs", sub)


def rule_he_only(c, m):
    """Bytes: the paper's HE-only figure encrypts only the classifier layers, so it is judged against
    he_classifier_only (CKKS on the classifier head, plaintext for the rest) at the paper's size: uplink per
    round, 5 clients, in the claim's unit, reproduced if within 10 %. Whole-model HE (he_only) is shown as what
    an HE-only method that encrypts the whole update costs. Accuracy and F1 are about the paper's data (shown,
    not judged outside profile `paper`)."""
    comm = _comm(m)
    unit = c["unit"]
    head = None if comm is None else _round_bytes(comm, "he_classifier_only")
    whole = None if comm is None else _round_bytes(comm, "he_only")
    acc = _summary(m, "he_only", "accuracy")
    acc_txt = f"; he_only accuracy {acc['mean']:.3f} +- {acc['std']:.3f} (not judged)" if acc is not None else ""
    whole_txt = "" if whole is None else f"; whole-model HE (he_only) {to_unit(whole, unit):,.0f} {unit}"
    if head is None:
        return ("n/a" + whole_txt + acc_txt, NOT_TESTABLE, "he_classifier_only did not run at paper size in this "
                "profile (pipeline.paper_size_methods)")
    rows = comm[comm["method"] == "he_classifier_only"]
    clear = float(rows["bytes_up_update"].mean()) / 4 if "bytes_up_update" in rows.columns else math.nan
    total = float(rows["num_params"].mean()) if "num_params" in rows.columns else math.nan
    leak = (f"he_classifier_only sends {clear:,.0f} of {total:,.0f} parameters ({100 * clear / total:.1f} %) of each "
            "client's update in plaintext float32: the server sees almost all of every update, as under FedAvg")
    ok = _within(head, claimed_bytes(c["per_round"], unit))
    return (f"he_classifier_only {to_unit(head, unit):,.1f} {unit} per round{whole_txt}{acc_txt}",
            REPRODUCED if ok else NOT_REPRODUCED,
            _join(leak, f"unit {unit} assumed (the paper's figure is labelled analytical)"))


def rule_dp_epsilon(c, m):
    """Epsilon of the client-level Gaussian mechanism for the stated (z, T, delta), all clients every round,
    from dp-accounting (RDP and PLD). Reproduced if both are <= the claimed bound."""
    eps = m.csv("privacy/epsilon.csv")
    if eps is None:
        return _missing("epsilon", "privacy")
    rows = eps[(eps["noise_multiplier"] == c["noise_multiplier"]) & (eps["round"] == c["rounds"])]
    if not len(rows):
        return _missing(f"epsilon for z={c['noise_multiplier']}, T={c['rounds']}", "privacy")
    r = rows.iloc[0]
    ok = r["epsilon_rdp"] <= c["epsilon_max"] and r["epsilon_pld"] <= c["epsilon_max"]
    return (f"epsilon = {r['epsilon_rdp']:.1f} (RDP), {r['epsilon_pld']:.1f} (PLD) at delta {c['delta']}",
            REPRODUCED if ok else NOT_REPRODUCED,
            "epsilon of the unquantised Gaussian mechanism; no amplification by (1 - s) is applied: top-k "
            "selection is not covered; MedHE's packed-CKKS and BFV paths round each client's noisy share, which "
            "this accountant does not cover (their runs report epsilon 'not covered')")


def _lira_note(m: Measured) -> str:
    lira = m.csv("mia/lira_attacks.csv")
    if lira is None or not len(lira[lira["attack"] == "lira_offline"]):
        return ""
    rows = lira[lira["attack"] == "lira_offline"].groupby("method")[["auc", "tpr_at_1pct_fpr"]].mean()
    summary = m.csv("mia/lira_summary.csv")
    prior = (summary.groupby("method")["prior_auc"].mean() if summary is not None and "prior_auc" in summary
             else pd.Series(dtype=float))
    return "offline LiRA (one target each; not judged): " + ", ".join(
        f"{k} AUC {r.auc:.3f} TPR@1%FPR {r.tpr_at_1pct_fpr:.3f}"
        + (f" (class-prior model on the same split: AUC {prior[k]:.3f})" if k in prior.index else "")
        for k, r in rows.iterrows())


def _prior_note(mia: pd.DataFrame) -> str:
    """What a model that outputs the class prior scores on the same splits (the label mix alone)."""
    if "prior_success_rate" not in mia:
        return ""
    per_seed = mia.groupby("seed")["prior_success_rate"].first()
    return (f"a model that outputs the class prior scores {per_seed.mean():.3f} on the same splits (mean over "
            f"{len(per_seed)} seeds, range {per_seed.min():.3f} to {per_seed.max():.3f}): the label mix alone")


def _mia_gap_rule(c, m, *, low: str, high: str, low_key: str, high_key: str, extra: str = "", every: bool = True):
    mia = m.csv("mia/summary.csv")
    if mia is None:
        return _missing("membership inference", "train + mia")
    means = mia.groupby("method")["worst_success_rate"].mean()
    if not {low, high} <= set(means.index):
        return _missing(f"membership inference for {low} and {high}", "train + mia")
    f1 = {k: _summary(m, k, "f1_macro") for k in means.index}
    shown = "; ".join(f"{k} {v:.3f}" + ("" if f1[k] is None else f" (macro-F1 {f1[k]['mean']:.3f})")
                      for k, v in means.items() if every or k in (low, high))
    notes = [f"{int(mia['seed'].nunique())} trials", _prior_note(mia), _lira_note(m), untrained(m, list(means.index))]
    ok_learned, why = _gate(m, [low, high])
    if not ok_learned:
        return shown, NOT_TESTABLE, _join(f"privacy is compared only between models that learned; {why}", *notes, extra)
    ok = means[high] - means[low] >= (c[high_key] - c[low_key]) / 2
    return shown, REPRODUCED if ok else NOT_REPRODUCED, _join(why, *notes, extra)


def rule_mia(c, m):
    """Worst-case success rate (balanced accuracy at a calibration-fitted threshold, best of the paper's four
    attacks), mean over trials. Judged only if both medhe and fedavg learned (accuracy above the majority class
    by the stated margin on every seed, or on the mean with a 95 % CI): a model that did not learn leaks little
    because it knows little. Then reproduced if MedHE's is lower than FedAvg's by at least half the claimed
    gap. Every method's rate is shown with its mean macro-F1; the note gives what a model that outputs the class
    prior (and so knows no record) scores on the same splits."""
    return _mia_gap_rule(c, m, low="medhe", high="fedavg", low_key="medhe", high_key="fedavg")


def rule_mia_no_he(c, m):
    """Worst-case membership-inference success of medhe_no_he vs medhe, mean over trials, judged only if both
    learned (the definition of rule mia). Reproduced if medhe_no_he's is higher by at least half the claimed
    gap. The attack queries the final model, which encryption of the transport does not change, so no
    difference is expected."""
    return _mia_gap_rule(c, m, low="medhe", high="medhe_no_he", low_key="medhe", high_key="no_he", every=False,
                         extra="HE protects updates in transit; the released model is what the attack queries")


def rule_ablation(c, m):
    """Sub-claims judged where measurable: bytes of medhe_no_packing and medhe_no_he at paper size within 10 %,
    in the claim's unit. Not judged here, and why: the two macro-F1 values are about the paper's data (shown
    with the arithmetic check that the claimed accuracy allows them), the MIA without HE is judged in row
    mia-no-he. Reproduced only if every measurable sub-claim holds."""
    parts, verdicts = [], []
    unit = c["unit"]
    comm = _comm(m)
    for method, key in (("medhe_no_packing", "no_packing"), ("medhe_no_he", "no_he")):
        val = None if comm is None else _round_bytes(comm, method)
        if val is not None:
            parts.append(f"{method} {to_unit(val, unit):,.1f} {unit}/round")
            verdicts.append(_within(val, claimed_bytes(c[key], unit)))
    for method in ("medhe_no_ef", "medhe_no_adaptive", "medhe"):
        row = _summary(m, method, "f1_macro")
        if row is not None:
            parts.append(f"{method} macro-F1 {row['mean']:.3f}")
    lo, hi = f1_arithmetic.f1_range(n=int(c["test_n"]), positive=int(c["test_positive"]),
                                    accuracy=c["ablation_accuracy"], average="macro")
    arith = (f"not judged: macro-F1 {c['no_ef_f1']:g} and {c['no_adaptive_f1']:g} (the paper's data; at "
             f"{100 * c['ablation_accuracy']:.1f} % accuracy macro-F1 can lie in [{lo:.3f}, {hi:.3f}]); MIA without "
             "HE judged in row mia-no-he; byte figures in "
             f"{unit} (assumed); {c['no_he']:g} {unit} is about one client's kept values in float32 "
             f"(0.1 x 66,955,010 x 4 B = {0.1 * 66_955_010 * 4 / MIB:.1f} MiB)")
    warn = untrained(m, ["medhe_no_ef", "medhe_no_adaptive", "medhe", "medhe_no_packing", "medhe_no_he"])
    if not verdicts:
        return "; ".join(parts) or "n/a", NOT_TESTABLE, _join("no ablation ran at paper size in this profile", arith, warn)
    return "; ".join(parts), REPRODUCED if all(verdicts) else NOT_REPRODUCED, _join(arith, warn)


def rule_ef_adaptive_gain(c, m):
    """Judged by arithmetic first: the claimed gain must be possible with one F1 definition on both sides. At
    MedHE's claimed accuracy the mean macro-F1 is bounded (as in f1-medhe), and at the ablations' claimed
    accuracy the binary F1 has a floor. If macro-vs-macro cannot reach half the claimed gain and the ablations'
    F1 are below the binary floor, the gain compares a binary F1 with a macro-F1: not reproduced (internally
    inconsistent). Otherwise testable only in profile `paper` on the measured macro-F1 gains (medhe minus each
    ablation), reproduced if both reach half the claimed gain."""
    n, pos = int(c["test_n"]), int(c["test_positive"])
    macro_top = f1_arithmetic.mean_f1_upper_bound(n=n, positive=pos, accuracy=c["medhe_accuracy"],
                                                  accuracy_std=c["medhe_std"], trials=int(c["trials"]),
                                                  average="macro")["bound"]
    binary_floor = f1_arithmetic.f1_range(n=n, positive=pos, accuracy=c["ablation_accuracy"] - 0.0005,
                                          average="binary")[0]
    abl = max(c["no_ef_f1"], c["no_adaptive_f1"])
    macro_gain = macro_top - abl
    ours = []
    for method in ("medhe_no_ef", "medhe_no_adaptive"):
        a, b = _summary(m, "medhe", "f1_macro"), _summary(m, method, "f1_macro")
        if a is not None and b is not None:
            ours.append(f"medhe - {method} macro-F1 {a['mean'] - b['mean']:+.3f}")
    shown = ("ours: " + ", ".join(ours)) if ours else ""
    arith = (f"macro-F1 at MedHE's {100 * c['medhe_accuracy']:.1f} % is at most {macro_top:.3f}, so a macro-vs-macro "
             f"gain over {abl:g} is at most {macro_gain:+.3f}; binary F1 at the ablations' "
             f"{100 * c['ablation_accuracy']:.1f} % is at least {binary_floor:.3f}, so {abl:g} is not a binary F1")
    if macro_gain < c["gain"] / 2 and abl < binary_floor:
        return (f"internally inconsistent: {arith}; the claimed {c['gain']:g} equals MedHE's {c['medhe_f1']:g} "
                f"(binary F1) minus the ablations' macro-F1", NOT_REPRODUCED, shown)
    if m.profile != "paper" or len(ours) < 2:
        return shown or "n/a", NOT_TESTABLE, _join(_substitute(m) or "medhe and both ablations must run", arith)
    gains = [float(s.split()[-1]) for s in ours]
    return shown, REPRODUCED if min(gains) >= c["gain"] / 2 else NOT_REPRODUCED, arith


def rule_sparsity_sweep(c, m):
    """From the sparsity sweep (embedded model, bytes measured): (1) the uplink saving vs fedavg is below 80 %
    at every s < 0.8, and (2) at s = 0.9 accuracy stays within 2 points of fedavg's (same profile, mean over
    trials; MedHE's sweep points when the sweep ran MedHE, else every swept method's). Reproduced only if
    both hold. Not judged: the absolute 85 % accuracy threshold at s > 0.95 (about the paper's data; shown)."""
    sw = m.csv("comm/sweep.csv")
    trials = m.csv("stats/trials.csv")
    if sw is None or not len(sw) or trials is None:
        return _missing("sparsity sweep", "sweep + comm + stats")
    parts = [f"{r.method} s={r.sparsity}: saving {r.saving_pct:.1f} %, acc {r.accuracy:.3f}" for r in sw.itertuples()]
    low, keep = sw[sw["sparsity"] < c["low_s"]], sw[sw["sparsity"] == c["keep_s"]]
    fed = trials[trials["method"] == "fedavg"]["accuracy"]
    not_judged = f"not judged: accuracy below {c['high_acc_below']:g} at s > {c['high_s']:g} (the paper's data)"
    if not len(low) or not len(keep) or not len(fed):
        return ("; ".join(parts), NOT_TESTABLE,
                _join(f"the sweep needs s < {c['low_s']}, s = {c['keep_s']} and a fedavg run", not_judged))
    ok_low = bool((low["saving_pct"] < c["low_saving_pct"]).all())
    if (keep["method"] == "medhe").any():
        keep = keep[keep["method"] == "medhe"]
    ok_keep = bool(keep["accuracy"].mean() >= fed.mean() - 0.02)
    note = f"saving below {c['low_saving_pct']} % at s < {c['low_s']}: {ok_low}; accuracy kept at s = {c['keep_s']}: {ok_keep}"
    return "; ".join(parts), REPRODUCED if ok_low and ok_keep else NOT_REPRODUCED, _join(note, not_judged)


def rule_convergence(c, m):
    """First round at which test accuracy comes within 1 point of its final value (10-round runs, or the
    profile's convergence_rounds). Reproduced if both fedavg and medhe reach it by the claimed round and both
    learned by their final round (the definition of rule mia, on the final accuracy of each seed against the
    majority class): a model that predicts one label has stopped moving, not converged."""
    conv = m.csv("stats/convergence.csv")
    if conv is None or not len(conv):
        return _missing("convergence runs", "convergence + stats")
    got = conv.groupby("method")["converged_round"].max().astype(int).to_dict()
    if not {"fedavg", "medhe"} <= set(got):
        return _missing("convergence of fedavg and medhe", "convergence")
    rounds = int(conv["rounds"].max())
    ok = got["fedavg"] <= c["round"] and got["medhe"] <= c["round"]
    notes = []
    hist, base = m.csv("stats/convergence_history.csv"), _majority(m, "accuracy")
    if hist is not None and base is not None and "accuracy" in hist.columns:
        last = hist[hist["round"] == hist.groupby("method")["round"].transform("max")]
        for method in ("fedavg", "medhe"):
            acc = last[last["method"] == method]["accuracy"].to_numpy()
            if acc.size:
                did, why = learned(acc, base)
                if not did:
                    ok = False
                    notes.append(f"{method} did not learn by its final round ({why}): it stopped, it did not converge")
    return (f"fedavg round {got['fedavg']}, medhe round {got['medhe']} (of {rounds})",
            REPRODUCED if ok else NOT_REPRODUCED, _join(*notes))


def rule_noniid(c, m):
    """The paper states no result for its non-IID split, so no verdict: shown are the final accuracy and
    macro-F1 of each method on the Dirichlet split (one seed), and whether it learned (rule mia's definition)."""
    t = m.csv("stats/noniid.csv")
    if t is None or not len(t):
        return _missing("non-IID runs", "noniid + stats")
    base = _majority(m, "accuracy")
    parts = []
    for method, rows in t.groupby("method", sort=False):
        txt = f"{method} accuracy {rows['accuracy'].mean():.3f}, macro-F1 {rows['f1_macro'].mean():.3f}"
        if base is not None:
            txt += " (learned)" if learned(rows["accuracy"].to_numpy(), base)[0] else " (did not learn)"
        parts.append(txt)
    return "; ".join(parts), NOT_TESTABLE, f"the paper gives no figure for the Dirichlet alpha = {c['dirichlet_alpha']:g} split"


def rule_scale(c, m):
    """'Practical' is not defined by the paper, so no verdict: shown are, per client count, the round wall time,
    the server's aggregation time, the peak memory and the uplink per client, measured on Flower's simulation
    engine (``flower_scale/scale.csv``, tabular task); the in-process sweep (``comm/scale.csv``) where that is
    absent."""
    sc = m.csv("flower_scale/scale.csv")
    if sc is not None and len(sc):
        parts = [f"{r.method} n={r.num_clients}: {r.time_round:.2f} s/round, aggregate {r.time_aggregate:.2f} s, "
                 f"peak {r.peak_rss_mb_all_processes:,.0f} MB (all processes), {r.mib_up_per_client_round:.3f} MiB/client"
                 for r in sc.itertuples()]
        where = "Flower's simulation engine"
    else:
        sc = m.csv("comm/scale.csv")
        if sc is None or not len(sc):
            return _missing("client-count sweep", "flower_scale (or scale + comm)")
        parts = [f"{r.method} n={r.num_clients}: {r.mib_up_per_client_round:.3f} MiB/client, aggregate "
                 f"{r.time_aggregate:.2f} s" for r in sc.itertuples()]
        where = "the in-process engine"
    return ("; ".join(parts), NOT_TESTABLE,
            f"the paper gives no criterion for 'practical'; not judged: {c['clients']}+ clients (largest count "
            f"measured here, on {where}: {int(sc['num_clients'].max())})")


def overhead_by_phase(phases: pd.DataFrame, *, a: str = "medhe", b: str = "fedavg", top: int = 3) -> str:
    """The phases that make ``a`` slower than ``b``: mean seconds per run, largest differences first.

    >>> ph = pd.DataFrame({"method": ["medhe", "medhe", "fedavg"], "phase": ["encrypt", "evaluate", "evaluate"],
    ...                    "mean_s": [50.0, 40.0, 38.0]})
    >>> overhead_by_phase(ph)
    'extra seconds per run by phase: encrypt +50, evaluate +2'
    """
    wide = phases.pivot_table(index="phase", columns="method", values="mean_s").fillna(0.0)
    if a not in wide.columns or b not in wide.columns:
        return ""
    diff = (wide[a] - wide[b]).sort_values(ascending=False)
    parts = [f"{phase} {sec:+.0f}" for phase, sec in diff.head(top).items() if round(sec) > 0]
    return "extra seconds per run by phase: " + ", ".join(parts) if parts else ""


def rule_overhead(c, m):
    """Extra wall time of medhe over fedavg, mean over paired trials (whole run, same hardware). Reproduced if
    within 20 percentage points of the claim. The note names the phases that take the extra time. The ratio
    depends on the machine (cores, load, model size against encryption cost) as much as on the method."""
    trials = m.csv("stats/trials.csv")
    if trials is None:
        return _missing("trials", "stats")
    w = trials.pivot_table(index="seed", columns="method", values="wall_time_s")
    if not {"medhe", "fedavg"} <= set(w.columns):
        return _missing("wall times of medhe and fedavg", "train")
    extra = 100 * float((w["medhe"] / w["fedavg"] - 1).mean())
    phases = m.csv("stats/phases.csv")
    note = _join("" if phases is None else overhead_by_phase(phases),
                 "a ratio of wall times measures the machine as much as the method: other profiles and hardware "
                 "give other figures")
    return f"{extra:+.0f} % wall time", REPRODUCED if abs(extra - c["extra_time_pct"]) <= 20 else NOT_REPRODUCED, note


def rule_ckks_random_topk(c, m):
    """Decryption failures counted by a benchmark (bench/ckks_topk.csv): 5 clients draw random top-k index sets
    (independent, no EMA threshold), align them to their union and aggregate through medhe's CKKS transport with
    the pipeline's parameters, packed and unpacked; a decryption fails if it raises or differs from the
    plaintext sum (packed: any integer differs; unpacked: any value off by more than the benchmark's tolerance).
    Reproduced if any decryption fails."""
    b = m.csv("bench/ckks_topk.csv")
    if b is None or not len(b):
        return _missing("random top-k decryptions", "ckks_topk")
    parts = [f"{r.path}: {int(r.failed)} of {int(r.decryptions)} aggregates failed"
             + (f" ({int(r.ciphertexts)} ciphertexts, {int(r.values_checked):,} values)" if "ciphertexts" in b.columns else "")
             + f", max error {r.max_abs_error:.2g}" for r in b.itertuples()]
    first = b.iloc[0]
    note = (f"{int(first['trials'])} random index patterns per path, {int(first['clients'])} clients, "
            f"{int(first['size']):,} coordinates, s = {first['sparsity']:g}")
    return "; ".join(parts), REPRODUCED if int(b["failed"].sum()) > 0 else NOT_REPRODUCED, note


def rule_no_side_channel(c, m):
    """Plaintext index-set bytes each client uploads per round (comm/bytes.csv, MedHE, embedded model and paper
    size). Reproduced if no index set travels in plaintext (alignment `dense`); under `union` alignment every
    client's top-k index set reaches the server in the clear: not reproduced."""
    df = m.csv("comm/bytes.csv")
    if df is None or "bytes_up_index" not in df.columns:
        return _missing("index bytes", "comm")
    parts, leaked = [], []
    for group in ("runs", "papersize"):
        rows = df[(df["group"] == group) & (df["method"] == "medhe")]
        if len(rows):
            v = float(rows["bytes_up_index"].mean())
            leaked.append(v > 0)
            parts.append(f"{group}: {v / 1e6:,.2f} MB of plaintext index set per client per round "
                         f"({int(rows['num_params'].iloc[0]):,} parameters)")
    if not parts:
        return _missing("MedHE bytes", "train + comm")
    if any(leaked):
        return "; ".join(parts), NOT_REPRODUCED, ("each client's index set travels in plaintext: the server learns "
                                                  "which coordinates each hospital changed most in every round")
    return "; ".join(parts), REPRODUCED, "no plaintext index sets (dense alignment)"


def rule_key_model(c, m):
    """A property of the setup, not a measurement, so no verdict: who holds the CKKS secret key. An aggregation
    server that can decrypt individual updates gives no protection against that server."""
    return ("medhe: the clients share the secret key; the server holds a context without it and only adds "
            "ciphertexts (tests/test_transport.py checks it)", NOT_TESTABLE,
            "the paper's public code gives the aggregation server the secret key and has it decrypt each client's "
            "update: that setup assumes a trusted server, against which HE then protects nothing")


def rule_he_only_collapse(c, m):
    """From the trials: he_only (CKKS on the whole dense update, no DP) against fedavg, seed by seed. Judged only
    if fedavg learned (rule mia's definition): reproduced if he_only did not learn; not reproduced if it did.
    The note gives the largest per-seed accuracy difference from fedavg."""
    t = m.csv("stats/trials.csv")
    if t is None or not {"he_only", "fedavg"} <= set(t["method"]):
        return _missing("he_only and fedavg trials", "train + stats")
    w = t.pivot_table(index="seed", columns="method", values="accuracy")[["he_only", "fedavg"]].dropna()
    diff = float((w["he_only"] - w["fedavg"]).abs().max())
    same = f"largest per-seed accuracy difference from fedavg {diff:.2g} over {len(w)} seeds"
    if diff == 0:
        same = f"he_only equals fedavg to the last digit in all {len(w)} seeds"
    fed_ok, fed_why = learned_in(m, "fedavg")
    he_ok, he_why = learned_in(m, "he_only")
    measured = f"{he_why}; {same}"
    if not fed_ok:
        return measured, NOT_TESTABLE, f"fedavg did not learn in this profile ({fed_why}), so a collapse cannot be told apart"
    if he_ok:
        return measured, NOT_REPRODUCED, "CKKS noise (scale 2^40) is far below the update's float32 precision"
    return measured, REPRODUCED, ""


def rule_dp_utility(c, m):
    """MedHE's accuracy under its stated privacy, from the privacy-utility stage (``privacy_utility.csv``): point
    ``client-eps<epsilon_max>`` (client-level Gaussian noise whose z the accountant solves for the claimed epsilon
    over the run's rounds, on unpacked CKKS: the only encrypted release that accountant covers), per seed, against
    point ``none`` (the same method without noise). Judged only if ``none`` learned (learned()): not reproduced if
    the DP point did not learn. If it learned: in profile `paper`, reproduced if |mean accuracy - claimed| <=
    2 x claimed std + 1 point; elsewhere not testable (the claimed number belongs to the paper's data)."""
    t = m.csv("privacy_utility.csv")
    point = f"client-eps{_fmt(c['epsilon_max'])}"
    if t is None or not len(t[t["point"] == point]):
        return _missing(f"privacy-utility point {point}", "privacy_utility + privacy_frontier")
    dp, ref = t[t["point"] == point], t[t["point"] == "none"]
    dp_ok, dp_why = learned(dp["accuracy"].to_numpy(), float(dp["majority_accuracy"].mean()))
    eps = float(dp["epsilon"].max())
    measured = (f"{point} (epsilon {eps:.2f}, z = {float(dp['noise_multiplier'].mean()):.3g}): accuracy "
                f"{dp['accuracy'].mean():.3f} +- {dp['accuracy'].std(ddof=1) if len(dp) > 1 else float('nan'):.3f}, "
                f"macro-F1 {dp['macro_f1'].mean():.3f} (n={len(dp)}); {dp_why}")
    if not len(ref):
        return measured, NOT_TESTABLE, "the no-noise point `none` is not measured, so a DP loss cannot be told apart"
    ref_ok, ref_why = learned(ref["accuracy"].to_numpy(), float(ref["majority_accuracy"].mean()))
    if not ref_ok:
        return measured, NOT_TESTABLE, f"without noise the method did not learn either ({ref_why})"
    if not dp_ok:
        return measured, NOT_REPRODUCED, f"without noise it learned ({ref_why}); at epsilon {eps:.2f} it did not"
    if m.profile != "paper":
        return measured, NOT_TESTABLE, _substitute(m)
    ok = abs(float(dp["accuracy"].mean()) - c["accuracy"]) <= 2 * c["std"] + 0.01
    return measured, REPRODUCED if ok else NOT_REPRODUCED, ""


def rule_comm_honest_reachable(c, m):
    """Exact BFV aggregation (coefficient-packed 8-bit fields, seeded ciphertexts), measured bytes per
    ciphertext and index sets (benchmark): reproduced if at the claimed s its uplink per round (5 clients,
    best case: all clients share one index set) is at most the claimed bytes, in the claim's unit. The note
    gives the smallest s that reaches the benchmark's target bytes (uplink, and uplink + downlink; best case
    and random index sets)."""
    target = m.csv("bench/bfv_target.csv")
    rounds = m.csv("bench/bfv.csv")
    if target is None or rounds is None:
        return _missing("BFV benchmark", "bench")
    best = rounds[rounds["row"].str.contains("union = k", regex=False)]
    if not len(best):
        return _missing("BFV best-case round", "bench")
    unit = c["unit"]
    up = float(best.iloc[0]["up_round_MB"]) * 1e6
    d = target[target["params"].str.startswith("default")].set_index("union")
    tb = float(d["target_bytes"].iloc[0]) if "target_bytes" in d.columns else math.nan
    claimed = claimed_bytes(c["per_round"], unit)
    stale = ("" if not abs(tb - claimed) > 1 else
             f" (the bench stage's target; the claim in its unit is {claimed:,.0f} B: rerun stage bench)")
    note = ("smallest s reaching {:,.0f} B" + stale.replace("{", "{{").replace("}", "}}") + ": uplink only {:.4f} (shared index set) / {:.4f} (random index "
            "sets); uplink + downlink {:.4f} / {:.4f}").format(tb, d.loc["k", "s_uplink_target"],
                                                            d.loc["random", "s_uplink_target"],
                                                            d.loc["k", "s_total_target"], d.loc["random", "s_total_target"])
    front = m.csv("comm/frontier.csv")
    if front is not None and len(front[front["kind"] == "frontier"]):
        fr = front[front["kind"] == "frontier"]
        top = fr.loc[fr["sparsity"].idxmax()]
        note += f"; on the embedded model at s={top['sparsity']:g} ({top['method']}, {int(top['bits'])}-bit) macro-F1 {top['f1_macro']:.3f}"
        if "model_change_l2" in fr.columns and not top["model_change_l2"] > 0:
            note += " (WARNING: that run never moved from its initial weights)"
    ok = up <= claimed
    return (f"{to_unit(up, unit):,.1f} {unit} uplink per round at s = {c['sparsity']} (BFV, best case)",
            REPRODUCED if ok else NOT_REPRODUCED, note)


PAPER_MODEL_PARAMS = 66_955_010  # distilbert-base-uncased + 2-class head (tests/test_model.py measures it)


def claimed_frontier_point(claims_file: str | Path) -> tuple[float, float]:
    """The paper's point for the frontier figure: (claimed uplink bytes per round per parameter, the highest
    mean macro-F1 its claimed accuracy allows on its test set). The claimed 0.950 is reachable by no
    classifier at 89.5 % accuracy (rule f1-medhe), so the figure places the claim at its bound."""
    by_id = {c["id"]: {**c["claimed"], **c.get("judge", {})} for c in load_claims(claims_file)}
    mb, f1 = by_id["comm-medhe-mb"], by_id["f1-medhe"]
    bound = f1_arithmetic.mean_f1_upper_bound(n=int(f1["test_n"]), positive=int(f1["test_positive"]),
                                              accuracy=f1["accuracy"], accuracy_std=f1["accuracy_std"],
                                              trials=int(f1["trials"]), average="macro")["bound"]
    return claimed_bytes(mb["per_round"], mb["unit"]) / PAPER_MODEL_PARAMS, min(f1["f1"], bound)


RULES: dict[str, Callable[[dict, Measured], tuple[str, str, str]]] = {
    "comm-reduction": rule_comm_reduction, "comm-fedavg-mb": rule_comm_fedavg_mb,
    "comm-medhe-mb": rule_comm_medhe_mb, "ciphertexts": rule_ciphertexts, "slot-packing": rule_slot_packing,
    "ct-size": rule_ct_size, "he-params": rule_he_params, "acc-medhe": rule_acc_medhe,
    "acc-fedavg": rule_acc_fedavg, "f1-medhe": rule_f1_medhe, "p-value": rule_p_value, "he-only": rule_he_only,
    "dp-epsilon": rule_dp_epsilon, "mia": rule_mia, "mia-no-he": rule_mia_no_he, "ablation": rule_ablation,
    "ef-adaptive-gain": rule_ef_adaptive_gain, "sparsity-sweep": rule_sparsity_sweep,
    "convergence": rule_convergence, "noniid": rule_noniid, "scale": rule_scale, "overhead": rule_overhead,
    "ckks-random-topk": rule_ckks_random_topk, "no-side-channel": rule_no_side_channel,
    "key-model": rule_key_model, "he-only-collapse": rule_he_only_collapse,
    "comm-honest-reachable": rule_comm_honest_reachable, "dp-utility": rule_dp_utility,
}

SOURCES = {
    "comm-reduction": "comm/bytes.csv", "comm-fedavg-mb": "comm/bytes.csv", "comm-medhe-mb": "comm/bytes.csv",
    "ciphertexts": "comm/bytes.csv", "slot-packing": "security/params.csv", "ct-size": "security/params.csv",
    "he-params": "security/params.csv", "acc-medhe": "stats/summary.csv", "acc-fedavg": "stats/summary.csv",
    "f1-medhe": "claims/paper.yaml (arithmetic)", "p-value": "stats/trials.csv", "he-only": "comm/bytes.csv",
    "dp-epsilon": "privacy/epsilon.csv", "mia": "mia/summary.csv", "mia-no-he": "mia/summary.csv",
    "ablation": "comm/bytes.csv", "ef-adaptive-gain": "claims/paper.yaml (arithmetic)",
    "sparsity-sweep": "comm/sweep.csv", "convergence": "stats/convergence.csv", "noniid": "stats/noniid.csv",
    "scale": "flower_scale/scale.csv", "overhead": "stats/trials.csv", "ckks-random-topk": "bench/ckks_topk.csv",
    "no-side-channel": "comm/bytes.csv", "key-model": "src/medhe/fl/ckks_transport.py (key model)",
    "he-only-collapse": "stats/trials.csv", "comm-honest-reachable": "bench/bfv.csv",
    "dp-utility": "privacy_utility.csv",
}


def _configuration(m: Measured) -> str:
    cfg = m.json("data/summary.json") or {}
    run = m.json("config.json") or {}
    return (f"profile {m.profile}: data {cfg.get('name', '?')} ({cfg.get('n_train', '?')} train / "
            f"{cfg.get('n_test', '?')} test), model {run.get('model', '?')}, {run.get('num_clients', '?')} clients, "
            f"{run.get('rounds', '?')} rounds, seeds {run.get('seeds', '?')}; CKKS {run.get('ckks', '?')}")


#: Profiles that can judge a claim, in order of cost; a claim not listed can be judged by ``full`` (or
#: ``paper``). ``scale`` states no criterion, so no profile can.
TESTABLE_AT = {"acc-medhe": ("paper",), "acc-fedavg": ("paper",), "f1-medhe": ("paper",), "scale": (), "key-model": (),
               "noniid": ()}


def not_testable_note(note: str, *, claim_id: str, profile: str) -> str:
    """The note of a row ``profile`` cannot judge: says so, and names the profile that can.

    >>> not_testable_note("needs 5 seeds", claim_id="p-value", profile="quick")
    'not testable at profile quick: needs 5 seeds; run profile `full`'
    """
    can = next((p for p in TESTABLE_AT.get(claim_id, ("full", "paper")) if p != profile), None)
    where = f"run profile `{can}`" if can else "no profile can"
    if can and f"profile `{can}`" in note:
        return f"not testable at profile {profile}: {note}"
    return f"not testable at profile {profile}: {note}; {where}" if note else f"not testable at profile {profile}; {where}"


def build_ledger(claims_file: str | Path, *, root: str | Path, profile: str) -> list[LedgerRow]:
    """Evaluate every claim; a claim without a rule is an error (every claim gets a row)."""
    claims = load_claims(claims_file)
    missing = [c["id"] for c in claims if c["id"] not in RULES]
    if missing:
        raise ValueError(f"claims without a rule: {missing}")
    m = Measured(root, profile)
    config = _configuration(m)
    rows = []
    for c in claims:
        rule = RULES[c["id"]]
        measured, verdict, note = rule({**c["claimed"], **c.get("judge", {})}, m)
        if verdict == NOT_TESTABLE:
            note = not_testable_note(note, claim_id=c["id"], profile=profile)
        public = c.get("public_runs", "")
        src = SOURCES[c["id"]]
        rows.append(LedgerRow(
            id=c["id"], claim=c["claim"], claimed=", ".join(f"{k}={v}" for k, v in c["claimed"].items()),
            measured=measured, verdict=verdict, rule=" ".join((rule.__doc__ or "").split()), profile=profile,
            configuration=config,
            source=src if src.startswith(("claims/", "src/")) else str(Path("results") / profile / src),
            note=_join(note, f"author's public material: {public}" if public else ""),
            provenance=c.get("provenance", "")))
    return rows


def to_frame(rows: list[LedgerRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows])


def from_csv(path: str | Path) -> list[LedgerRow]:
    """The rows of a ledger written by ``to_frame(...).to_csv``."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [LedgerRow(**r) for r in df.to_dict("records")]


def table_markdown(rows: list[LedgerRow], *, provenance: bool = False) -> str:
    """The verdict counts and the table (id, claim, measured, verdict, note; ``provenance``: where the paper
    states the claim), without the rules."""
    counts = pd.Series([r.verdict for r in rows]).value_counts().to_dict()
    extra = " provenance |" if provenance else ""
    lines = ["Verdicts: " + ", ".join(f"{k}: {v}" for k, v in counts.items()), "",
             "| id | claim | measured | verdict | note |" + extra, "|---|---|---|---|---|" + ("---|" if provenance else "")]
    lines += [f"| {r.id} | {r.claim} | {r.measured} | **{r.verdict}** | {r.note} |"
              + (f" {r.provenance} |" if provenance else "") for r in rows]
    return "\n".join(lines)


def to_markdown(rows: list[LedgerRow]) -> str:
    """The ledger as a Markdown table (id, claim, measured, verdict, note) plus the rules."""
    lines = [f"# Claims ledger (profile `{rows[0].profile}`)" if rows else "# Claims ledger", "",
             rows[0].configuration if rows else "", "", table_markdown(rows, provenance=True), "", "## Rules", ""]
    lines += [f"- **{r.id}** ({r.source}): {r.rule}" for r in rows]
    return "\n".join(lines) + "\n"
