"""tools/repro.sh (what `make repro` runs): an interrupted pipeline resumes where it stopped.

A stub DVC pipeline of three stages runs in a scratch repository; the test stops it (SIGTERM, as a
terminal's hang-up or `kill` would) while the second stage runs, then runs it again and checks
that the first stage is not run twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

STEP = """\
import pathlib, sys, time
name = sys.argv[1]
with open("ran.log", "a") as f:
    f.write(name + "\\n")
if pathlib.Path("fail").exists() and name == "second":
    sys.exit(1)
if pathlib.Path("hold").exists() and name == "second":
    pathlib.Path("second.started").touch()
    time.sleep(120)
pathlib.Path(name + ".txt").write_text(name)
"""

DVC_YAML = """\
stages:
  first:
    cmd: python step.py first
    outs: [{first.txt: {cache: false}}]
  second:
    cmd: python step.py second
    deps: [first.txt]
    outs: [{second.txt: {cache: false}}]
  third:
    cmd: python step.py third
    deps: [second.txt]
    outs: [{third.txt: {cache: false}}]
"""


@pytest.fixture
def stub(tmp_path: Path) -> tuple[Path, dict]:
    work = tmp_path / "repo"
    (work / "tools").mkdir(parents=True)
    (work / "profiles").mkdir()
    for tool in ("repro.sh", "record_time.py"):
        shutil.copy2(ROOT / "tools" / tool, work / "tools" / tool)
    (work / "profiles" / "stub.yaml").write_text("profile: stub\n")
    (work / "step.py").write_text(STEP)
    (work / "dvc.yaml").write_text(DVC_YAML)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=work, env=env, check=True)
    return work, env


def _wait_for(path: Path, *, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.2)


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["from a terminal", "sigint ignored"])
def test_interrupted_repro_keeps_finished_stages_and_resumes(stub, sigint) -> None:
    """SIG_IGN: started in the background of a non-interactive shell (nohup, CI), the job inherits an
    ignored SIGINT, which no shell can reset; the stop must still end it."""
    work, env = stub
    (work / "hold").touch()
    run = subprocess.Popen(["bash", "tools/repro.sh", "stub"], cwd=work, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))
    try:
        _wait_for(work / "second.started")
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, out
    lock = (work / "locks" / "stub.lock").read_text()
    assert "first:" in lock and "second:" not in lock, lock  # the finished stage is kept, the stopped one is not
    assert not (work / "results" / "stub" / "repro_time.json").exists()  # no time for an unfinished run

    (work / "hold").unlink()
    (work / "dvc.lock").unlink()  # as on a fresh checkout: the profile's lock is the only record
    again = subprocess.run(["bash", "tools/repro.sh", "stub"], cwd=work, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (work / "ran.log").read_text().split() == ["first", "second", "second", "third"]
    assert all(s in (work / "locks" / "stub.lock").read_text() for s in ("first:", "second:", "third:"))
    timing = json.loads((work / "results" / "stub" / "repro_time.json").read_text())
    assert timing["stages_run"] == 2 and timing["stages_total"] == 3 and timing["pipeline_s"] >= 0


def test_failed_stage_fails_the_run_and_keeps_the_finished_ones(stub) -> None:
    work, env = stub
    (work / "fail").touch()
    run = subprocess.run(["bash", "tools/repro.sh", "stub"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode != 0, run.stdout
    lock = (work / "locks" / "stub.lock").read_text()
    assert "first:" in lock and "second:" not in lock
    assert not (work / "results" / "stub" / "repro_time.json").exists()


def test_repro_refuses_an_unknown_profile(stub) -> None:
    work, env = stub
    run = subprocess.run(["bash", "tools/repro.sh", "nope"], cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 2 and "choose one of stub" in run.stderr
