"""Output helpers shared by the benchmark scripts: a Markdown table for the terminal, a CSV file."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else (f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}")
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def markdown(rows: list[dict], cols: list[str]) -> str:
    """``rows`` as a Markdown table with columns ``cols`` (missing cells empty)."""
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict], cols: list[str]) -> None:
    """Write ``rows`` to ``path`` with columns ``cols``; missing cells empty, other keys left out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
