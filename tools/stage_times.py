"""Wall time of a long profile, stage by stage, from the logs of ``tools/repro_ordered.sh``.

A long profile runs across sessions, so no single process measures its wall time. Every stage
``repro_ordered.sh`` starts is logged as ``=== HH:MM:SS <stage>``, and DVC prints
``Running stage '<stage>'`` when the stage really runs (not when its lock entry is up to date).
This script reads those logs (``<profile>_MMDD_HHMM.log``; the date comes from the name) and
writes one row per stage run:

- ``completed``: the stage ran and the log goes on with the next ``===`` line;
- ``interrupted``: the log ends during the stage, or the next line is a ``session resume``
  (the run was stopped at the end of a session and the stage was rerun later);
- ``failed``: ``repro_ordered.sh`` printed ``!!! <stage> failed`` (or, for the final
  ``remaining stages``, ``done (status N)`` with N not 0).

Stages that DVC skipped (up to date) are not rows. The profile's wall time is the sum, over
stages, of the last completed run of each: what one uninterrupted run would have taken on this
machine.

    python tools/stage_times.py locks/full-logs/*.log              # per stage family, and the total
    python tools/stage_times.py locks/full-logs/*.log --out runs.csv   # also every stage run
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import re
import sys
from dataclasses import dataclass
from pathlib import Path

STAGE_LINE = re.compile(r"^=== (\d\d:\d\d:\d\d) (.+?)\s*$")
LOG_NAME = re.compile(r"_(\d\d)(\d\d)_(\d\d)(\d\d)\.log$")
NOT_STAGES = ("done", "deadline", "run_until done", "session resume")  # markers, not stage runs


@dataclass(frozen=True)
class StageRun:
    stage: str
    log: str
    start: dt.datetime
    minutes: float
    status: str  # completed | interrupted | failed


def log_start(path: Path, *, year: int) -> dt.datetime:
    """The time in the log's name (``..._MMDD_HHMM.log``)."""
    m = LOG_NAME.search(path.name)
    if not m:
        raise ValueError(f"{path}: log name must end in _MMDD_HHMM.log (as repro_ordered.sh logs are named)")
    month, day, hour, minute = map(int, m.groups())
    return dt.datetime(year, month, day, hour, minute)


def parse_log(path: Path, *, year: int) -> list[StageRun]:
    """The stage runs of one log, in order."""
    lines = path.read_text(errors="replace").splitlines()
    t0 = log_start(path, year=year)
    marks: list[tuple[int, dt.datetime, str]] = []  # (line number, time, label)
    day, last = t0.date(), None
    for i, line in enumerate(lines):
        m = STAGE_LINE.match(line)
        if not m:
            continue
        clock = dt.time.fromisoformat(m.group(1))
        if last is not None and clock < last:  # past midnight
            day += dt.timedelta(days=1)
        last = clock
        marks.append((i, dt.datetime.combine(day, clock), m.group(2)))
    runs = []
    for k, (i, start, label) in enumerate(marks):
        if label.startswith(NOT_STAGES):
            continue
        end_line = marks[k + 1][0] if k + 1 < len(marks) else len(lines)
        body = lines[i + 1:end_line]
        ran = [re.search(r"Running stage '([^']+)'", b) for b in body]
        ran = [r.group(1) for r in ran if r]
        if not ran:
            continue  # up to date: DVC skipped it
        stage = label if label != "remaining stages" else "remaining: " + "+".join(ran)
        following = marks[k + 1][2] if k + 1 < len(marks) else ""
        if any(b.startswith("!!!") for b in body) or (following.startswith("done (status ")
                                                     and following != "done (status 0)"):
            status = "failed"
        elif k + 1 >= len(marks) or following.startswith("session resume"):
            status = "interrupted"
        else:
            status = "completed"
        stop = marks[k + 1][1] if k + 1 < len(marks) else start
        runs.append(StageRun(stage, path.name, start, (stop - start).total_seconds() / 60, status))
    return runs


def profile_minutes(runs: list[StageRun]) -> dict[str, float]:
    """Minutes of the last completed run of each stage."""
    last: dict[str, StageRun] = {}
    for r in sorted(runs, key=lambda r: r.start):
        if r.status == "completed":
            last[r.stage] = r
    return {s: r.minutes for s, r in last.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logs", nargs="+", type=Path)
    ap.add_argument("--year", type=int, default=dt.date.today().year)
    ap.add_argument("--out", type=Path, default=None, help="CSV of every stage run")
    a = ap.parse_args(argv)
    missing = [str(p) for p in a.logs if not p.is_file()]
    if missing:
        ap.error(f"no such log: {', '.join(missing)}")
    runs = sorted((r for p in a.logs for r in parse_log(p, year=a.year)), key=lambda r: r.start)
    if a.out:
        with a.out.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["stage", "log", "start_utc", "minutes", "status"])
            for r in runs:
                w.writerow([r.stage, r.log, r.start.isoformat(), f"{r.minutes:.2f}", r.status])
    per_stage = profile_minutes(runs)
    groups: dict[str, list[float]] = {}
    for stage, minutes in per_stage.items():
        groups.setdefault(stage.split("-")[0] if "@" in stage else stage, []).append(minutes)
    for g, ms in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
        print(f"{g:40s} {len(ms):3d} stage(s) {sum(ms):8.1f} min")
    counts = {s: sum(r.status == s for r in runs) for s in ("completed", "interrupted", "failed")}
    total = sum(per_stage.values())
    print(f"{'total':40s} {len(per_stage):3d} stage(s) {total:8.1f} min = {total / 60:.2f} h "
          f"({counts['completed']} completed, {counts['interrupted']} interrupted, {counts['failed']} failed runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
