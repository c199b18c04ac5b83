"""tools/stage_times.py: the wall time of a long profile from repro_ordered.sh logs."""

import importlib.util
import sys
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("stage_times", Path(__file__).parents[1] / "tools" / "stage_times.py")
stage_times = importlib.util.module_from_spec(SPEC)
sys.modules["stage_times"] = stage_times  # dataclasses look the module up
SPEC.loader.exec_module(stage_times)

FIRST = """\
=== 23:50:00 data
Stage 'data' didn't change, skipping
=== 23:50:01 train@a-1
Running stage 'train@a-1':
=== 23:58:01 train@b-1
Running stage 'train@b-1':
=== 00:03:01 train@c-1
Running stage 'train@c-1':
!!! train@c-1 failed
=== 00:04:01 train@a-1
Running stage 'train@a-1':
=== 00:10:31 session resume (run_until)
=== 00:10:32 train@a-1
Running stage 'train@a-1':
=== 00:16:32 remaining stages
Running stage 'comm':
Running stage 'claims':
=== 00:18:32 done (status 0)
"""


def test_parse_log_statuses_minutes_and_midnight(tmp_path):
    log = tmp_path / "full_1128_2350.log"
    log.write_text(FIRST)
    runs = stage_times.parse_log(log, year=2026)
    got = [(r.stage, r.status, round(r.minutes, 2), r.start.day) for r in runs]
    assert got == [
        ("train@a-1", "completed", 8.0, 28),
        ("train@b-1", "completed", 5.0, 28),   # crosses midnight
        ("train@c-1", "failed", 1.0, 29),
        ("train@a-1", "interrupted", 6.5, 29),  # stopped at the session's end, rerun below
        ("train@a-1", "completed", 6.0, 29),
        ("remaining: comm+claims", "completed", 2.0, 29),
    ]
    # the last completed run of each stage counts; skipped, failed and interrupted runs do not
    assert stage_times.profile_minutes(runs) == {"train@a-1": 6.0, "train@b-1": 5.0,
                                                 "remaining: comm+claims": 2.0}


def test_remaining_stages_failing_is_failed(tmp_path):
    log = tmp_path / "full_1129_0100.log"
    log.write_text("=== 01:00:00 remaining stages\nRunning stage 'stats':\n=== 01:03:00 done (status 1)\n")
    (run,) = stage_times.parse_log(log, year=2026)
    assert (run.stage, run.status, run.minutes) == ("remaining: stats", "failed", 3.0)


def test_log_ending_mid_stage_is_interrupted(tmp_path):
    log = tmp_path / "full_1129_0100.log"
    log.write_text("=== 01:00:00 lira@x\nRunning stage 'lira@x':\n")
    (run,) = stage_times.parse_log(log, year=2026)
    assert run.status == "interrupted" and stage_times.profile_minutes([run]) == {}


def test_log_name_without_date_is_refused(tmp_path):
    log = tmp_path / "full.log"
    log.write_text(FIRST)
    with pytest.raises(ValueError, match="_MMDD_HHMM"):
        stage_times.parse_log(log, year=2026)
