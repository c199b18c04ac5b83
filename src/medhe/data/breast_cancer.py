"""scikit-learn's Wisconsin diagnostic breast-cancer data: a real, offline, tabular check.

569 tumours, 30 real-valued features (``sklearn.datasets.load_breast_cancer``; ships
with scikit-learn, no download). Not in the paper; it gives the federated pipeline a
small non-text medical task that trains in seconds.

Label choice: positive (1) = **malignant**, the clinical convention (the condition
one screens for). scikit-learn codes malignant as 0, so ``y = 1 - target``.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer as _sk_load
from sklearn.model_selection import train_test_split

from medhe import rng as seeds
from medhe.data.dataset import Dataset


def standardise(
    x_train: np.ndarray, x_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Z-score both splits with the training mean and standard deviation only.

    Features with zero training spread are centred but not scaled.

    Returns:
        ``(z_train, z_test, mean, std)`` with ``std`` as used (zeros replaced by 1).

    >>> z_tr, z_te, m, s = standardise(np.array([[0.0], [2.0]]), np.array([[4.0]]))
    >>> z_tr.ravel().tolist(), z_te.ravel().tolist()
    ([-1.0, 1.0], [3.0])
    """
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std, mean, std


def load_breast_cancer(*, seed: int = 42, test_size: float = 0.2) -> Dataset:
    """Stratified train/test split of the Wisconsin data, standardised with train statistics.

    The split is ``train_test_split(stratify=y, random_state=r)`` where ``r`` is
    ``medhe.rng.int_seed(seed, "breast-cancer-split") % 2**32``, so each seed gives
    its own split, independent of every other random stream. With the default
    ``test_size`` this is 455 train / 114 test.

    Args:
        seed: Non-negative run seed.
        test_size: Test fraction, in (0, 1).

    Returns:
        A tabular :class:`Dataset` named ``"breast_cancer"`` (float32 features);
        ``meta`` holds the feature names and the train mean/std used.

    Raises:
        ValueError: If ``seed`` or ``test_size`` is out of range.
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    random_state = seeds.int_seed(seed, "breast-cancer-split") % 2**32
    bunch = _sk_load()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = (1 - np.asarray(bunch.target)).astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=random_state, stratify=y
    )
    z_tr, z_te, mean, std = standardise(x_tr, x_te)
    meta = {
        "source": "sklearn.datasets.load_breast_cancer (UCI Breast Cancer Wisconsin Diagnostic)",
        "label_rule": "1 = malignant (sklearn target 0), 0 = benign",
        "split_rule": f"stratified train_test_split(test_size={test_size}, random_state={random_state})",
        "seed": seed,
        "feature_names": [str(f) for f in bunch.feature_names],
        "train_mean": mean.tolist(),
        "train_std": std.tolist(),
        "paper_data": False,
    }
    return Dataset(
        name="breast_cancer", kind="tabular", label_names=("benign", "malignant"), meta=meta,
        x_train=z_tr.astype(np.float32), y_train=y_tr,
        x_test=z_te.astype(np.float32), y_test=y_te,
    )
