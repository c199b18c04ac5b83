"""Figures, one function per figure: (tidy results frame) -> matplotlib Figure.

Only the figures notebook calls these, and only on frames read from ``results/``:
restyling a figure never retrains anything.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medhe.attacks.metrics import auc_from_roc, tpr_at_fpr  # noqa: E402

STYLE = {"figure.dpi": 120, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "font.size": 9}


def _fig(width: float = 6.0, height: float = 3.4):
    with plt.rc_context(STYLE):
        return plt.subplots(figsize=(width, height))


def _finish(fig, ax, *, ylabel: str, xlabel: str | None = None, fontsize: int = 7, legend_outside: bool = False):
    """Axis labels, legend (inside the axes, or to their right) and tight layout; returns the figure."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend_outside:
        ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=fontsize)
    fig.tight_layout()
    return fig


BYTES_GROUPS = {"runs": "trials' model", "papersize": "paper-size update"}


def bytes_per_method(comm: pd.DataFrame):
    """Uplink MiB per client per round, per method, log scale, one bar per model size: the trials' model
    (results group ``runs``) and the paper-sized update (``papersize``), each labelled with its measured
    parameter count and each bar with its value. Other groups (non-IID, sweeps) run the trials' model
    and are left out."""
    comm = comm[comm["group"].isin(BYTES_GROUPS)]
    if comm.empty:
        raise ValueError("the comm table has no 'runs' or 'papersize' rows: run the train or papersize stages, then comm")
    fig, ax = _fig()
    groups = [g for g in BYTES_GROUPS if g in set(comm["group"])]
    methods = list(dict.fromkeys(comm["method"]))
    width = 0.8 / len(groups)
    for gi, group in enumerate(groups):
        rows = comm[comm["group"] == group]
        sub = rows.groupby("method")["mib_up_per_client_round"].mean()
        params = ", ".join(f"{int(n):,}" for n in sorted(rows["num_params"].unique()))
        xs = [i + gi * width for i, m in enumerate(methods) if m in sub.index]
        bars = ax.bar(xs, [sub[m] for m in methods if m in sub.index], width=width,
                      label=f"{BYTES_GROUPS[group]} ({params} parameters)")
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=6, padding=1)
    ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(methods))], methods, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("MiB up per client per round (measured)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def bytes_vs_sparsity(sweep: pd.DataFrame):
    """Measured uplink per client per round and macro-F1 against sparsity s."""
    fig, ax = _fig()
    for method, sub in sweep.groupby("method"):
        ax.plot(sub["sparsity"], sub["mib_up_per_client_round"], marker="o", label=f"{method} bytes")
    ax.set_xlabel("sparsity s (fraction dropped)")
    ax.set_ylabel("MiB up per client per round")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    for method, sub in sweep.groupby("method"):
        ax2.plot(sub["sparsity"], sub["f1_macro"], marker="s", ls="--", label=f"{method} macro-F1")
    ax2.set_ylabel("macro-F1")
    ax2.set_ylim(0, 1)  # a free axis would magnify differences in the fourth digit
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def majority_baseline(summary: pd.DataFrame, metric: str) -> float | None:
    """The score of always predicting the training majority class (stats summary row ``majority_<metric>``,
    mean over trials), or None when the summary has no such row."""
    base = summary[summary["metric"] == f"majority_{metric}"]
    return float(base["mean"].mean()) if len(base) else None


def metric_per_method(summary: pd.DataFrame, *, metrics=("accuracy", "f1_macro")):
    """Mean and 95 % CI per method for each metric, with the majority-class baseline."""
    fig, ax = _fig()
    methods = list(dict.fromkeys(summary["method"]))
    width = 0.8 / len(metrics)
    for k, metric in enumerate(metrics):
        sub = summary[summary["metric"] == metric].set_index("method").reindex(methods)
        err = (sub["ci_high"] - sub["mean"]).fillna(0)
        ax.bar([i + k * width for i in range(len(methods))], sub["mean"], width=width, yerr=err, capsize=3, label=metric)
        base = majority_baseline(summary, metric)
        if base is not None:
            ax.axhline(base, ls=":", lw=1, color=f"C{k}", label=f"majority-class {metric}")
    ax.set_xticks([i + width * (len(metrics) - 1) / 2 for i in range(len(methods))], methods, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    return _finish(fig, ax, ylabel="test score (mean, 95 % CI)")


def convergence(hist: pd.DataFrame):
    """Test accuracy and macro-F1 per round, mean over seeds, per method (round 0 is the initial model).
    Macro-F1 sits beside accuracy because a model that predicts the majority class keeps its accuracy."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
    for ax, metric, label in zip(axes, ("accuracy", "f1_macro"), ("test accuracy", "test macro-F1")):
        for method, sub in hist.groupby("method"):
            curve = sub.groupby("round")[metric].mean()
            n = sub["seed"].nunique()
            ax.plot(curve.index, curve.values, marker="o", label=f"{method} ({n} seed{'s' if n > 1 else ''})")
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def epsilon_vs_rounds(eps: pd.DataFrame):
    """Epsilon (RDP and PLD accountants) against rounds for each noise multiplier z, at the table's delta."""
    fig, ax = _fig()
    for i, (z, sub) in enumerate(eps.groupby("noise_multiplier")):
        ax.plot(sub["round"], sub["epsilon_rdp"], marker="o", color=f"C{i}", label=f"z = {z:.3g}, RDP")
        ax.plot(sub["round"], sub["epsilon_pld"], marker="x", ls="--", color=f"C{i}", label=f"z = {z:.3g}, PLD")
    ax.axhline(1.0, color="k", lw=0.8, ls=":", label="epsilon = 1")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    deltas = ", ".join(f"{d:g}" for d in sorted(eps["delta"].unique()))
    return _finish(fig, ax, xlabel="rounds (all clients every round)", ylabel=f"epsilon at delta = {deltas}")


def he_frontier(security: pd.DataFrame):
    """Accepted CKKS sets: bytes per plaintext value (with the largest exact 8-bit packing) vs precision."""
    fig, ax = _fig()
    ok = security[security["accepted"].astype(bool)]
    for row in ok.itertuples():
        b = max(int(row.max_exact_batch_8bit), 1)
        ax.scatter(row.max_abs_error_single, row.bytes_per_value, marker="o", color="C0")
        ax.scatter(row.max_abs_error_single, row.bytes_per_value / b, marker="^", color="C1")
        ax.annotate(f"N={row.poly_modulus_degree} {row.coeff_mod_bit_sizes}", (row.max_abs_error_single, row.bytes_per_value),
                    fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.axhline(4, color="k", ls=":", lw=0.8, label="plain float32 (4 B)")
    ax.scatter([], [], marker="o", color="C0", label="one value per slot")
    ax.scatter([], [], marker="^", color="C1", label="8-bit packed (largest exact B)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return _finish(fig, ax, xlabel="max abs error of one encrypt/decrypt", ylabel="bytes per value (serialised)")


def save(fig, path: str | Path) -> Path:
    """Write a PNG (creating folders) and close the figure."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=150)
    plt.close(fig)
    return p


def mean_roc(roc: pd.DataFrame, grid) -> pd.DataFrame:
    """Per method and attack, the TPR at each FPR of ``grid`` averaged over seeds (vertical averaging: each
    seed's step ROC is read at the same FPRs with :func:`medhe.attacks.metrics.tpr_at_fpr`, NaN where the
    seed's non-members cannot resolve that FPR), and the mean AUC over seeds (:func:`auc_from_roc`, the
    attack tables' AUC). Columns: method, attack, n_seeds, auc, fpr, tpr."""
    need = {"method", "seed", "attack", "fpr", "tpr"} - set(roc.columns)
    if need:
        raise ValueError(f"ROC table lacks columns {sorted(need)} (expected results/<profile>/mia/roc.csv)")
    grid = np.asarray(grid, dtype=float)
    rows = []
    for (method, attack), sub in roc.groupby(["method", "attack"], sort=False):
        curves, aucs = [], []
        for _, one in sub.groupby("seed"):
            f, t = one["fpr"].to_numpy(float), one["tpr"].to_numpy(float)
            curves.append([tpr_at_fpr(f, t, target=g) for g in grid])
            aucs.append(auc_from_roc(f, t))
        rows.append(pd.DataFrame({"method": method, "attack": attack, "n_seeds": len(curves),
                                  "auc": float(np.mean(aucs)), "fpr": grid, "tpr": np.mean(curves, axis=0)}))
    return pd.concat(rows, ignore_index=True)


def mia_roc(roc: pd.DataFrame, *, attack: str | None = None, min_fpr: float = 1e-3):
    """ROC of membership inference per method, log-log axes (as LiRA plots them), so that chance is the
    diagonal and the low-FPR region is visible. Each curve is the mean over seeds at fixed FPRs
    (:func:`mean_roc`). By default the attack drawn per method is the one with the highest mean AUC.
    """
    grid = np.unique(np.r_[np.logspace(np.log10(min_fpr), 0, 200)[:-1], np.linspace(0, 1, 1001)[1:-1]])
    mean = mean_roc(roc, grid)
    fig, ax = _fig(5.0, 4.0)
    for method, sub in mean.groupby("method", sort=False):
        aucs = sub.groupby("attack")["auc"].first()
        best = aucs.idxmax() if attack is None else attack
        if best not in aucs.index:
            raise ValueError(f"no attack {best!r} for method {method!r}; the table has {sorted(aucs.index)}")
        curve = sub[(sub["attack"] == best) & (sub["fpr"] >= min_fpr)]  # NaN below the FPR resolution: no line
        n = int(curve["n_seeds"].iloc[0])
        ax.plot(curve["fpr"], curve["tpr"].clip(lower=min_fpr), drawstyle="steps-post",
                label=f"{method} ({best}, AUC {aucs[best]:.3f}, {n} seed{'s' if n > 1 else ''})")
    ax.plot([min_fpr, 1], [min_fpr, 1], color="k", ls=":", lw=0.8, label="chance (TPR = FPR)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min_fpr, 1)
    ax.set_ylim(min_fpr, 1.05)
    return _finish(fig, ax, xlabel="false positive rate (log)", ylabel="true positive rate (log; mean over seeds)")


SPARSITY_MARKERS = ("o", "^", "D", "v", "P", "X")
TRIAL_MARKERS = ("s", "p", "h", "8", "*", "<", ">", "H", "d", "1")  # none of SPARSITY_MARKERS


def frontier(front: pd.DataFrame, *, claimed_bytes_per_param: float | None = None, claimed_f1: float | None = None,
             majority_f1: float | None = None):
    """Macro-F1 against measured uplink bytes per round per model parameter (5 clients summed).

    Bytes are normalised by the model's parameter count so that the embedded model's runs and the
    paper's claimed point (its MiB per round over 66,955,010 parameters) share an axis; the claimed
    point is drawn hollow and labelled as claimed, not measured. ``majority_f1`` (see
    :func:`majority_baseline`) draws the macro-F1 of always predicting the majority class: a point on
    that line has learned nothing, whatever its bytes. Points sit close together when nothing learns,
    so nothing is written beside them: a frontier line's colour is its (method, bits), a marker's shape
    its sparsity, and each trial method has a black marker of its own, all named in the legend.
    """
    fig, ax = _fig(width=8.0, height=3.8)
    fr = front[front["kind"] == "frontier"]
    levels = sorted(fr["sparsity"].unique())
    if len(levels) > len(SPARSITY_MARKERS):
        raise ValueError(f"frontier has {len(levels)} sparsity levels; the plot has markers for {len(SPARSITY_MARKERS)}")
    shape = dict(zip(levels, SPARSITY_MARKERS))
    for (method, bits), sub in fr.groupby(["method", "bits"]):
        sub = sub.sort_values("bytes_up_round_per_param")
        line, = ax.plot(sub["bytes_up_round_per_param"], sub["f1_macro"], lw=1, label=f"{method}, {int(bits)}-bit")
        for row in sub.itertuples():
            ax.plot(row.bytes_up_round_per_param, row.f1_macro, ls="", marker=shape[row.sparsity], ms=5,
                    color=line.get_color(), alpha=0.8)
    for s in levels:
        ax.plot([], [], ls="", marker=shape[s], color="0.5", label=f"s = {s:g}")
    tr = front[front["kind"] == "trial"].groupby("method")[["bytes_up_round_per_param", "f1_macro"]].mean()
    if len(tr) > len(TRIAL_MARKERS):
        raise ValueError(f"{len(tr)} trial methods; the plot has markers for {len(TRIAL_MARKERS)}")
    for marker, (method, row) in zip(TRIAL_MARKERS, tr.iterrows()):
        ax.plot(row.bytes_up_round_per_param, row.f1_macro, ls="", marker=marker, ms=6, mfc="none", mec="k",
                zorder=3, label=f"{method} (trials, mean)")
    if claimed_bytes_per_param is not None and claimed_f1 is not None:
        ax.scatter([claimed_bytes_per_param], [claimed_f1], marker="*", s=140, facecolors="none", edgecolors="r",
                   label="paper's claimed point (not measured)")
    if majority_f1 is not None:
        ax.axhline(majority_f1, color="k", ls=":", lw=0.8, label="majority class (learned nothing)")
    ax.set_xscale("log")
    return _finish(fig, ax, xlabel="uplink bytes per round per model parameter (measured, all clients)", ylabel="macro-F1",
                   fontsize=6, legend_outside=True)


def target_curves(curves: pd.DataFrame, table: pd.DataFrame, *, variants: list[str] | None = None,
                  majority_f1: float | None = None, claimed: tuple[float, float] | None = None, title: str | None = None):
    """Macro-F1 against cumulative measured uplink per client, one curve per variant, a point per round.

    ``curves`` and ``table`` are ``comm/curves.csv`` and ``comm/to_target.csv``
    (:func:`medhe.targets.to_target_table`). The x axis is the cumulative uplink of one client divided
    by the model's parameter count (FedAvg sends 4 bytes per parameter per round), log scale, so a
    paper-size point shares the axis; each curve is the mean over seeds at each round that every seed
    ran (runs stop at the target). The dashed line is the mean target, the dotted one the majority
    class; ``claimed`` = (x, macro-F1) of the paper's point, drawn hollow as claimed, not measured.
    """
    fig, ax = _fig(width=8.0, height=3.8)
    if variants is not None:
        curves = curves[curves["variant"].isin(variants)]
    params = table.groupby("variant")["num_params"].first()
    for variant, sub in curves.groupby("variant", sort=True):
        per_seed_rounds = sub.groupby("seed")["round"].max()
        sub = sub[sub["round"] <= per_seed_rounds.min()]
        mean = sub.groupby("round")[["cum_bytes_up_per_client", "f1_macro"]].mean()
        x = mean["cum_bytes_up_per_client"] / float(params.get(variant, np.nan))
        n = sub["seed"].nunique()
        ax.plot(x[x > 0], mean["f1_macro"][x > 0], marker="o", ms=3, lw=1, label=f"{variant} (n={n})")
    if len(table):
        ax.axhline(float(table["target"].mean()), color="k", ls="--", lw=0.8, label="target (mean over seeds)")
    if majority_f1 is not None:
        ax.axhline(majority_f1, color="k", ls=":", lw=0.8, label="majority class (learned nothing)")
    if claimed is not None:
        ax.scatter([claimed[0]], [claimed[1]], marker="*", s=140, facecolors="none", edgecolors="r",
                   label="paper's claimed point (not measured)")
    ax.set_xscale("log")
    if title:
        ax.set_title(title, fontsize=8)
    return _finish(fig, ax, xlabel="cumulative uplink per client, bytes per model parameter (measured)",
                   ylabel="test macro-F1", fontsize=6, legend_outside=True)


PRIVACY_KINDS = {"client": ("client-level (medhe_no_packing)", "tab:red", "o"),
                 "record": ("record-level DP-SGD (medhe_dpsgd)", "tab:blue", "s")}


def privacy_utility(table: pd.DataFrame, *, confidence: float = 0.95):
    """Macro-F1 against measured epsilon (log scale) for client-level and record-level DP.

    One point per privacy point: mean over seeds with a t-based ``confidence`` interval (bars)
    and the mean measured epsilon. The run without DP (``none``) and the majority class are
    horizontal lines; the paper's claimed "epsilon <= 1" is the shaded region left of 1.
    ``table`` is ``results/<profile>/privacy/utility.csv``.
    """
    from medhe.stats import summarise

    needed = {"kind", "point", "epsilon", "macro_f1", "majority_f1_macro"}
    if table.empty or not needed <= set(table.columns):
        raise ValueError(f"the utility table needs rows with columns {sorted(needed)}: run the privacy_utility stages")
    fig, ax = _fig(7.5, 3.4)
    finite = table[np.isfinite(table["epsilon"])]
    ax.set_xscale("log")
    lo = float(finite["epsilon"].min()) if not finite.empty else 1.0
    ax.axvspan(min(lo, 1.0) / 2, 1.0, color="0.85", alpha=0.6, label="epsilon <= 1 (paper's claim)")
    for kind, (label, colour, marker) in PRIVACY_KINDS.items():
        rows = finite[finite["kind"] == kind]
        if rows.empty:
            continue
        f1 = summarise(rows, metrics=["macro_f1"], by="point", confidence=confidence).set_index("point")
        eps = rows.groupby("point", sort=False)["epsilon"].mean()
        order = eps.sort_values().index
        ax.errorbar(eps[order], f1.loc[order, "mean"],
                    yerr=[f1.loc[order, "mean"] - f1.loc[order, "ci_low"], f1.loc[order, "ci_high"] - f1.loc[order, "mean"]],
                    color=colour, marker=marker, capsize=3, label=f"{label}, {confidence:.0%} CI")
    none = table[table["kind"] == "none"]
    if not none.empty:
        ax.axhline(float(none["macro_f1"].mean()), color="tab:green", ls="-.", lw=1, label="no DP (medhe_no_dp)")
    ax.axhline(float(table["majority_f1_macro"].iloc[0]), color="black", ls=":", lw=1, label="majority class")
    return _finish(fig, ax, ylabel="macro-F1 (final round)", xlabel="epsilon (measured; log scale)", legend_outside=True)
