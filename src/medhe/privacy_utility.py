"""The privacy-utility frontier: which run each point is, and the table built from the runs.

A point names a kind of differential privacy and its level (``pipeline.privacy_points``):

* ``none``: ``medhe_no_dp`` (sparse, error feedback, encrypted; no DP mechanism);
* ``client-z<z>``: ``medhe_no_packing`` with client-level noise multiplier z (the paper's mechanism
  on unpacked CKKS: the clients' Gaussian shares are not rounded to a few bits, so the Gaussian
  accountant covers the release; packed ``medhe`` reports its epsilon as not covered);
* ``client-eps<e>``: ``medhe_no_packing`` with the z that :func:`medhe.privacy.noise_for_epsilon` gives
  for epsilon e over the run's rounds (all clients every round, delta ``dp.delta``);
* ``record-eps<e>``: ``medhe_dpsgd``, record-level DP-SGD in each client with target epsilon e
  (Opacus; delta ``dp_sgd.delta``).

Client-level epsilon protects a whole hospital's data set; record-level epsilon protects one
patient's record inside its hospital. The two are different guarantees on one axis, which
the table says in its ``kind`` column.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from medhe.params import PRIVACY_POINT, Params

CLIENT_LEVEL_METHOD = "medhe_no_packing"  # its Gaussian release is covered by the accountant (no per-client rounding)



def run_dir(profile: str, point: str, *, seed: int, root: str | Path = "results") -> Path:
    """``results/<profile>/privacy/runs/<point>_s<seed>``: one run of the privacy-utility stage.

    >>> str(run_dir("full", "record-eps3", seed=42))
    'results/full/privacy/runs/record-eps3_s42'
    """
    return Path(root) / profile / "privacy" / "runs" / f"{point}_s{seed}"


def table_path(profile: str, *, root: str | Path = "results") -> Path:
    """``results/<profile>/privacy_utility.csv`` (beside, not inside, the folder its runs fill)."""
    return Path(root) / profile / "privacy_utility.csv"


@dataclass(frozen=True)
class Point:
    """One point of the frontier: the method to run and the parameter overrides it needs."""

    name: str
    kind: str  # "none", "client" or "record"
    method: str
    overrides: dict[str, Any] = field(default_factory=dict)


def plan(P: Params, name: str) -> Point:
    """The run behind point ``name`` under parameters ``P``.

    >>> from medhe.params import load_dict
    >>> plan(load_dict({}), "record-eps3").overrides
    {'dp_sgd.target_epsilon': 3.0, 'dp_sgd.noise_multiplier': None}
    >>> plan(load_dict({}), "client-z0.12")
    Point(name='client-z0.12', kind='client', method='medhe_no_packing', overrides={'dp.noise_multiplier': 0.12})
    """
    if not isinstance(name, str) or not re.fullmatch(PRIVACY_POINT, name):
        raise ValueError(f"privacy point must match {PRIVACY_POINT!r} (e.g. none, client-z0.12, client-eps1, "
                         f"record-eps3), got {name!r}")
    if name == "none":
        return Point(name, "none", "medhe_no_dp")
    kind, _, level = name.partition("-")
    value = float(re.sub(r"^(z|eps)", "", level))
    if kind == "record":
        return Point(name, "record", "medhe_dpsgd", {"dp_sgd.target_epsilon": value, "dp_sgd.noise_multiplier": None})
    if level.startswith("eps"):
        from medhe.privacy import noise_for_epsilon

        value = noise_for_epsilon(target_epsilon=value, sampling_rate=1.0, rounds=P.train.rounds, delta=P.dp.delta)
    return Point(name, "client", CLIENT_LEVEL_METHOD, {"dp.noise_multiplier": value})


def utility_row(run_dir: str | Path, *, point: str) -> dict[str, Any]:
    """One row of the privacy-utility table from a finished run folder (``run.json`` and ``metrics.json``).

    ``epsilon`` is what the run's accountant measured: client-level, the RDP epsilon after the
    last round; record-level, the largest epsilon over clients (Opacus); ``inf`` without DP.
    """
    folder = Path(run_dir)
    run = json.loads((folder / "run.json").read_text())
    final = json.loads((folder / "metrics.json").read_text())
    kind = plan_kind(point)
    if kind == "record":
        rec = run["privacy_record_level"]
        epsilon, delta, z = rec["epsilon_max"], rec["delta"], rec["clients"][0]["noise_multiplier"]
    elif kind == "client":
        epsilon, delta, z = final["epsilon_rdp"], run["params"]["dp"]["delta"], run["params"]["dp"]["noise_multiplier"]
    else:
        epsilon, delta, z = math.inf, None, 0.0
    return {"kind": kind, "point": point, "method": run["method"], "seed": run["seed"], "epsilon": epsilon,
            "delta": delta, "noise_multiplier": z, "rounds": final["round"], "macro_f1": final["f1_macro"],
            "accuracy": final["accuracy"], "majority_f1_macro": final["majority_f1_macro"],
            "majority_accuracy": final["majority_accuracy"],
            "noise_to_signal_mean": _mean_noise_to_signal(folder)}


def plan_kind(point: str) -> str:
    """``none``, ``client`` or ``record`` (from the point's name alone)."""
    return "none" if point == "none" else point.partition("-")[0]


def _mean_noise_to_signal(folder: Path) -> float:
    import pandas as pd

    hist = pd.read_csv(folder / "history.csv")
    if "noise_to_signal" not in hist:
        return math.nan
    return float(hist.loc[hist["round"] > 0, "noise_to_signal"].mean())


def utility_table(profile: str, *, points: Sequence[str], seeds: Sequence[int], root: str | Path = "results"):
    """The privacy-utility table as a frame: one row per (point, seed) run of the ``privacy_utility`` stage.

    Raises:
        FileNotFoundError: naming the first missing run folder.
    """
    import pandas as pd

    rows = []
    for point in points:
        for seed in seeds:
            folder = run_dir(profile, point, seed=seed, root=root)
            if not (folder / "metrics.json").is_file():
                raise FileNotFoundError(f"privacy-utility run {folder} has no metrics.json: run its stage first")
            rows.append(utility_row(folder, point=point))
    columns = ["kind", "point", "method", "seed", "epsilon", "delta", "noise_multiplier", "rounds", "macro_f1",
               "accuracy", "majority_f1_macro", "majority_accuracy", "noise_to_signal_mean"]
    return pd.DataFrame(rows, columns=columns)
