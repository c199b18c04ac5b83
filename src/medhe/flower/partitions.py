"""One file per site: its own training records, plus the test set (evaluated by partition 0).

The in-process engine loads the whole data set and partitions it by the run's seed
(:func:`medhe.fl.simulate.load_inputs`); a site in deployment must hold only its own records. So
the launcher writes ``partition-<i>.npz`` per client from the same partition, and each SuperNode
reads only its own file (node config ``data-file``). Saved with ``allow_pickle=False``; text
records are stored as unicode arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medhe.params import Params


@dataclass(frozen=True)
class Partition:
    """One client's records and the shared test split."""

    partition_id: int
    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    in_features: int | None

    @property
    def num_examples(self) -> int:
        return int(self.y_train.size)


def partition_path(folder: str | Path, partition_id: int) -> Path:
    return Path(folder) / f"partition-{partition_id}.npz"


def write_partitions(P: Params, *, seed: int, folder: str | Path) -> list[Path]:
    """Write every client's file for a run of ``P`` at ``seed`` (the in-process engine's split)."""
    from medhe.fl.simulate import load_dataset
    from medhe import data

    ds = load_dataset(P)
    alpha = P.data.dirichlet_alpha if P.data.partition == "dirichlet" else None
    parts = data.partition(ds.y_train, scheme=P.data.partition, num_clients=P.data.num_clients, alpha=alpha,
                           seed=seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x_train, x_test = _stored(ds.x_train), _stored(ds.x_test)
    paths = []
    for i, idx in enumerate(parts):
        path = partition_path(folder, i)
        np.savez(path, kind=np.array(ds.kind), x_train=x_train[idx], y_train=np.asarray(ds.y_train)[idx],
                 x_test=x_test, y_test=np.asarray(ds.y_test))
        paths.append(path)
    return paths


def _stored(x) -> np.ndarray:
    return np.asarray(x) if not isinstance(x, tuple) else np.array(x, dtype=str)


def load_partition(path: str | Path, partition_id: int) -> Partition:
    with np.load(path, allow_pickle=False) as f:
        kind = str(f["kind"])
        x_train, x_test = f["x_train"], f["x_test"]
        if kind == "text":
            x_train, x_test = tuple(x_train.tolist()), tuple(x_test.tolist())
        in_features = None if kind == "text" else int(x_train.shape[1])
        return Partition(partition_id=partition_id, kind=kind, x_train=x_train, y_train=f["y_train"],
                         x_test=x_test, y_test=f["y_test"], in_features=in_features)
