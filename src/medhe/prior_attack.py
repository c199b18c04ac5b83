"""The membership-inference numbers of a model that knows only the class prior.

A model that gives every record the training set's class frequencies has learned nothing about
any record, so it leaks nothing about membership. The paper's confidence attack against it still
sees each record's label: where the members and non-members of an attack split differ in their
mix of labels, its success rate and AUC move away from 1/2. These are the numbers an attack on a
model that collapsed to the majority class should be read against.

:func:`prior_attack` rebuilds a run's attack split (the same seeded draws as
:func:`medhe.attacks.evaluate.evaluate_run`), scores every record with ``log prior[label]`` and
evaluates it with the same threshold rule, calibration split and bootstrap as every other attack.
:func:`prior_table` does this for every run of a results group and checks the rebuilt split
against the sizes each run recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medhe.attacks.data import AttackResult, MIAConfig
from medhe.attacks.evaluate import MembershipSplit, config_from_params, evaluate_scores, membership_split

if TYPE_CHECKING:
    from medhe.data import Dataset
    from medhe.params import Params

ATTACK = "class_prior"
DESCRIPTION = "log prior[y]: the confidence attack on a model that outputs the training set's class frequencies"


def prior_scores(y_train: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``log prior[label]`` per record, the prior being the class frequencies of ``y_train``.

    Raises:
        ValueError: If a label never occurs in ``y_train`` (its prior would be 0).
    """
    y_train = np.asarray(y_train, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if y_train.size == 0:
        raise ValueError("y_train is empty: the class prior needs training labels")
    counts = np.bincount(y_train, minlength=int(max(y_train.max(), labels.max(initial=0))) + 1)
    missing = sorted({int(v) for v in labels if counts[v] == 0})
    if missing:
        raise ValueError(f"labels {missing} never occur in y_train: their prior is 0")
    return np.log(counts[labels] / counts.sum())


def _max_per_side(cfg: MIAConfig, *, n_train: int, n_test: int) -> int | None:
    # as evaluate_run: offline LiRA leaves a pool of n_train + 1 unattacked records
    if "offline" not in cfg.lira:
        return cfg.max_per_side
    cap = (n_test - 1) // 2
    return cap if cfg.max_per_side is None else min(cfg.max_per_side, cap)


def attack_split(P: Params, *, seed: int, dataset: Dataset) -> MembershipSplit:
    """The members / non-members and calibration mask that run ``(P, seed)`` attacked (as ``evaluate_run``)."""
    n_train, n_test = len(dataset.y_train), len(dataset.y_test)
    cfg = config_from_params(P.mia)
    return membership_split(n_train, n_test, seed=seed, calibration_fraction=cfg.calibration_fraction,
                            max_per_side=_max_per_side(cfg, n_train=n_train, n_test=n_test))


def prior_attack(P: Params, *, seed: int, dataset: Dataset | None = None,
                 split: MembershipSplit | None = None) -> AttackResult:
    """The confidence attack against a class-prior model, on the attack split of run ``(P, seed)``.

    Args:
        P: Parameters of the attacked run (its ``mia`` section fixes the split and the bootstrap).
        seed: Trial seed of the attacked run.
        dataset: The data set the run trained on; None loads the one ``P`` names.
        split: The run's attack split; None rebuilds it (:func:`attack_split`).
    """
    from medhe.fl.simulate import load_dataset

    ds = load_dataset(P) if dataset is None else dataset
    split = attack_split(P, seed=seed, dataset=ds) if split is None else split
    y_train, y_test = np.asarray(ds.y_train), np.asarray(ds.y_test)
    labels = np.r_[y_train[split.members], y_test[split.nonmembers]]
    return evaluate_scores(ATTACK, prior_scores(y_train, labels), split.is_member, split.calibration, seed=seed,
                           config=config_from_params(P.mia), description=DESCRIPTION)


def prior_table(profile: str, *, root: str | Path = "results", group: str = "runs") -> pd.DataFrame:
    """The class-prior attack for every run of ``<root>/<profile>/<group>`` that has a ``mia.csv``.

    One row per run (method, seed and the attack's :meth:`AttackResult.to_row` columns). The split is
    rebuilt from each run's ``run.json`` parameters.

    Raises:
        FileNotFoundError: If no run of the group has a ``mia.csv``, or a run lacks its ``run.json``.
        ValueError: If the rebuilt split's sizes differ from those the run's ``mia.csv`` recorded.
    """
    from medhe import params as params_mod
    from medhe.fl.simulate import load_dataset

    folder = Path(root) / profile / group
    runs = sorted(f.parent for f in folder.glob("*/mia.csv"))
    if not runs:
        raise FileNotFoundError(f"no mia.csv under {folder}: run the {group} stages first")
    datasets: dict[str, Dataset] = {}
    rows = []
    for run in runs:
        record = run / "run.json"
        if not record.is_file():
            raise FileNotFoundError(f"{record} is missing: rerun the stage that wrote {run}")
        raw = json.loads(record.read_text())
        P = params_mod.load_dict(raw["params"])
        key = json.dumps({"data": raw["params"]["data"], "seed": raw["params"]["seed"]}, sort_keys=True)
        if key not in datasets:
            datasets[key] = load_dataset(P)
        seed = int(raw["seed"])
        split = attack_split(P, seed=seed, dataset=datasets[key])
        result = prior_attack(P, seed=seed, dataset=datasets[key], split=split)
        recorded = pd.read_csv(run / "mia.csv").iloc[0]
        cols = ("n_members", "n_members_eval", "n_nonmembers_eval")
        rebuilt = (len(split.members), result.n_members_eval, result.n_nonmembers_eval)
        if rebuilt != tuple(int(recorded[c]) for c in cols):
            raise ValueError(f"{run}: the rebuilt attack split has {dict(zip(cols, rebuilt))}, the run recorded "
                             f"{ {c: int(recorded[c]) for c in cols} }: the split code changed since the run; "
                             "rerun its stage")
        rows.append({"method": raw["method"], "seed": seed, **result.to_row()})
    return pd.DataFrame(rows)


def with_prior(summary: pd.DataFrame, prior: pd.DataFrame) -> pd.DataFrame:
    """``summary`` (one row per method and seed) with the class-prior attack's ``prior_success_rate`` and
    ``prior_auc`` on the same run's split.

    Raises:
        ValueError: If a run of ``summary`` has no row in ``prior``.
    """
    cols = prior[["method", "seed", "success_rate", "auc"]].rename(
        columns={"success_rate": "prior_success_rate", "auc": "prior_auc"})
    out = summary.merge(cols, on=["method", "seed"], how="left", validate="one_to_one")
    missing = out[out["prior_success_rate"].isna()]
    if len(missing):
        raise ValueError(f"no class-prior row for runs {sorted(zip(missing['method'], missing['seed']))}")
    return out
