"""The figure a training notebook ends with: one run's metrics and measured bytes, round by round.

Kept apart from :mod:`medhe.plots` (the pipeline's figures, drawn from results files) because the
training notebook imports it: restyling a pipeline figure must not rerun every training stage.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

MIB = 2 ** 20
STYLE = {"figure.dpi": 120, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "font.size": 9, "legend.fontsize": 7}
COLUMNS = ("round", "accuracy", "f1_macro", "bytes_up_per_client", "bytes_down_per_client")


def curves(history: pd.DataFrame):
    """Accuracy and macro-F1 per round (left) and the cumulative measured MiB per client, up and down
    (right). ``history`` is a run's ``history.csv``; round 0 is the initial model (no bytes)."""
    missing = sorted(set(COLUMNS) - set(history.columns))
    if missing:
        raise ValueError(f"history lacks columns {missing}: pass a run's history.csv")
    h = history.sort_values("round")
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 2.8))
        left.plot(h["round"], h["accuracy"], marker="o", label="accuracy")
        left.plot(h["round"], h["f1_macro"], marker="s", label="macro-F1")
        left.set_ylim(0, 1)
        left.set_ylabel("test metric")
        for direction in ("up", "down"):
            right.plot(h["round"], h[f"bytes_{direction}_per_client"].cumsum() / MIB, marker="o",
                       label=f"{direction}link")
        right.set_ylabel("cumulative MiB per client (measured)")
        for ax in (left, right):
            ax.set_xlabel("round")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend()
        fig.tight_layout()
    return fig
