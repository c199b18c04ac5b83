"""The common return type of every loader, its summary and its deterministic subset.

A :class:`Dataset` is an immutable pair of splits. Text sources hold tuples of
strings; tabular sources hold ``float32`` matrices. Labels are always ``int64``
arrays with 1 for the positive class.

>>> import numpy as np
>>> ds = Dataset(name="toy", kind="tabular", x_train=np.zeros((4, 2)), y_train=[0, 1, 1, 1],
...              x_test=np.ones((2, 2)), y_test=[1, 0], label_names=("neg", "pos"))
>>> s = summary(ds)
>>> s["n_train"], s["pos_frac_train"], s["majority_class"], s["majority_acc_test"]
(4, 0.75, 1, 0.5)
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["text", "tabular"]
TextOrMatrix = tuple[str, ...] | np.ndarray


def _labels(y: Any, *, what: str) -> np.ndarray:
    arr = np.array(y, dtype=np.int64, copy=True)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    bad = set(np.unique(arr).tolist()) - {0, 1}
    if bad:
        raise ValueError(f"{what} must hold only 0/1 labels, got values {sorted(bad)}")
    arr.setflags(write=False)
    return arr


def _inputs(x: Any, *, kind: Kind, what: str) -> TextOrMatrix:
    if kind == "text":
        texts = tuple(x)
        wrong = [type(t).__name__ for t in texts if not isinstance(t, str)]
        if wrong:
            raise TypeError(f"{what} must hold str for a text dataset, found {sorted(set(wrong))}")
        return texts
    arr = np.array(x, dtype=np.float32, copy=True)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D matrix for a tabular dataset, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Dataset:
    """One binary-classification dataset with a fixed train/test split.

    Attributes:
        name: Source name as given to :func:`medhe.data.load`.
        kind: ``"text"`` (inputs are a tuple of str) or ``"tabular"`` (a float32 matrix).
        x_train: Training inputs.
        y_train: Training labels, int64, 1 = positive class.
        x_test: Test inputs.
        y_test: Test labels, int64, 1 = positive class.
        label_names: ``(name of class 0, name of class 1)``.
        meta: Read-only provenance (source, label rule, split rule, counts dropped, ...).

    Arrays are copied on construction and made read-only, so a Dataset cannot be
    changed through the arrays passed in or through its attributes.
    """

    name: str
    kind: Kind
    x_train: TextOrMatrix
    y_train: np.ndarray
    x_test: TextOrMatrix
    y_test: np.ndarray
    label_names: tuple[str, str]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("text", "tabular"):
            raise ValueError(f"kind must be 'text' or 'tabular', got {self.kind!r}")
        if len(self.label_names) != 2:
            raise ValueError(f"label_names must name exactly 2 classes, got {self.label_names!r}")
        put = object.__setattr__
        for split in ("train", "test"):
            x = _inputs(getattr(self, f"x_{split}"), kind=self.kind, what=f"x_{split}")
            y = _labels(getattr(self, f"y_{split}"), what=f"y_{split}")
            if len(x) != len(y):
                raise ValueError(f"x_{split} has {len(x)} rows but y_{split} has {len(y)}")
            put(self, f"x_{split}", x)
            put(self, f"y_{split}", y)
        put(self, "label_names", tuple(self.label_names))
        put(self, "meta", types.MappingProxyType(dict(self.meta)))


def _mean_words(texts: Sequence[str]) -> float | None:
    if not texts:
        return None
    return float(np.mean([len(t.split()) for t in texts]))


def _pos_frac(y: np.ndarray) -> float | None:
    return float(y.mean()) if len(y) else None


def summary(ds: Dataset) -> dict[str, Any]:
    """Counts and baselines of a dataset, as a flat JSON-ready dict.

    The majority class is chosen on the *training* labels (ties go to class 1) and
    scored on the test labels, which is the honest "predict the prior" baseline.

    Args:
        ds: The dataset.

    Returns:
        ``name, kind, n_train, n_test, n_pos_train, n_pos_test, pos_frac_train,
        pos_frac_test, majority_class, majority_acc_test, mean_words_train,
        mean_words_test, n_features``. Word means are None for tabular data and
        ``n_features`` is None for text.
    """
    majority = int(ds.y_train.mean() >= 0.5) if len(ds.y_train) else 1
    text = ds.kind == "text"
    return {
        "name": ds.name,
        "kind": ds.kind,
        "n_train": len(ds.y_train),
        "n_test": len(ds.y_test),
        "n_pos_train": int(ds.y_train.sum()),
        "n_pos_test": int(ds.y_test.sum()),
        "pos_frac_train": _pos_frac(ds.y_train),
        "pos_frac_test": _pos_frac(ds.y_test),
        "majority_class": majority,
        "majority_acc_test": float(np.mean(ds.y_test == majority)) if len(ds.y_test) else None,
        "mean_words_train": _mean_words(ds.x_train) if text else None,  # type: ignore[arg-type]
        "mean_words_test": _mean_words(ds.x_test) if text else None,  # type: ignore[arg-type]
        "n_features": None if text else int(ds.x_train.shape[1]),  # type: ignore[union-attr]
    }


def head_stratified(y: np.ndarray, *, k: int) -> np.ndarray:
    """Indices of a deterministic, class-proportional subset: the first rows of each class.

    Class quotas are ``k * n_c / n`` rounded by largest remainder (ties to the
    lower class id); each class contributes its first ``quota`` rows in stored
    order, and the result is returned in stored order. No randomness is used: the
    stored order of every source here is already shuffled or random-split.

    Args:
        y: 1-D label array.
        k: Subset size, ``1 <= k``; ``k >= len(y)`` returns every index.

    Returns:
        Sorted int64 indices into ``y``.

    Raises:
        ValueError: If ``k`` is not a positive integer.

    >>> head_stratified(np.array([1, 1, 0, 1, 0, 1, 1, 0]), k=4).tolist()
    [0, 1, 2, 4]
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"subset size must be a positive integer, got {k!r}")
    y = np.asarray(y)
    n = len(y)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * k / n
    quota = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: k - int(quota.sum())]] += 1
    picked = [np.flatnonzero(y == c)[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def take(ds: Dataset, *, max_train: int | None = None, max_test: int | None = None) -> Dataset:
    """A smaller copy of ``ds`` for quick profiles, via :func:`head_stratified` on each split.

    Args:
        ds: The full dataset.
        max_train: Keep at most this many training rows (None keeps all).
        max_test: Keep at most this many test rows (None keeps all).

    Returns:
        A new Dataset; ``meta`` gains ``subset`` describing the rule and the sizes.
    """
    if max_train is None and max_test is None:
        return ds
    parts: dict[str, Any] = {}
    for split, k in (("train", max_train), ("test", max_test)):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        idx = np.arange(len(y)) if k is None else head_stratified(y, k=k)
        parts[f"x_{split}"] = tuple(x[i] for i in idx) if ds.kind == "text" else x[idx]
        parts[f"y_{split}"] = y[idx]
    rule = {"rule": "first rows of each class, class-proportional (largest remainder)",
            "max_train": max_train, "max_test": max_test,
            "full_n_train": len(ds.y_train), "full_n_test": len(ds.y_test)}
    return Dataset(name=ds.name, kind=ds.kind, label_names=ds.label_names,
                   meta={**ds.meta, "subset": rule}, **parts)
