"""Result tables read back from run records: the wall time per phase adds up to the run's wall time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medhe import results


def _write_run(root: Path, *, method: str, seed: int, wall: float, phases: dict[str, float]) -> None:
    folder = results.run_path("t", "runs", method=method, seed=seed, root=root)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"method": method, "seed": seed, "accuracy": 0.5}))
    (folder / "run.json").write_text(json.dumps({"wall_time_s": wall, "time_per_phase_s": phases, "params": {}}))


def test_phase_table_untimed_row_makes_phases_add_up_to_wall_time(tmp_path: Path) -> None:
    _write_run(tmp_path, method="medhe", seed=1, wall=100.0, phases={"encrypt": 20.0, "local_training": 50.0})
    _write_run(tmp_path, method="medhe", seed=2, wall=120.0, phases={"encrypt": 30.0, "local_training": 50.0})
    _write_run(tmp_path, method="fedavg", seed=1, wall=60.0, phases={"local_training": 59.0})
    table = results.phase_table(results.collect("t", "runs", root=tmp_path, params=False))

    medhe = table[table["method"] == "medhe"].set_index("phase")
    assert medhe.loc["untimed", "mean_s"] == pytest.approx(35.0)  # (100 - 70 + 120 - 80) / 2
    assert medhe.loc["untimed", "std_s"] == pytest.approx(np.std([30.0, 40.0], ddof=1))
    assert medhe["share"].sum() == pytest.approx(1.0)
    assert medhe.loc["encrypt", "n"] == 2
    fedavg = table[table["method"] == "fedavg"].set_index("phase")
    assert "encrypt" not in fedavg.index  # a phase a method never ran is absent, not zero
    assert fedavg.loc["untimed", "mean_s"] == pytest.approx(1.0)


def test_phase_table_refuses_runs_without_phase_times(tmp_path: Path) -> None:
    _write_run(tmp_path, method="medhe", seed=1, wall=10.0, phases={})
    runs = results.collect("t", "runs", root=tmp_path, params=False)
    with pytest.raises(ValueError, match="time_per_phase_s"):
        results.phase_table(runs)
