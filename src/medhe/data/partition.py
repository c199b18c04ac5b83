"""Splitting a training set across federated clients (pure functions of labels and an rng).

Every function returns one sorted ``int64`` index array per client; the arrays are
disjoint and together cover ``range(n)``. All randomness comes from the
``numpy.random.Generator`` passed in (or, in :func:`partition`, from
``medhe.rng.generator(seed, "partition")``).

>>> import numpy as np
>>> parts = partition_iid(10, num_clients=3, rng=np.random.default_rng(0))
>>> [len(p) for p in parts]
[4, 3, 3]
>>> sorted(np.concatenate(parts).tolist()) == list(range(10))
True
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from medhe import rng as seeds

Scheme = Literal["iid", "dirichlet"]


def _check_clients(num_clients: int, n: int) -> None:
    if isinstance(num_clients, bool) or not isinstance(num_clients, (int, np.integer)):
        raise TypeError(f"num_clients must be an integer, got {num_clients!r}")
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got num_clients={num_clients}")
    if num_clients > n:
        raise ValueError(
            f"num_clients={num_clients} exceeds the number of samples n={n}: "
            f"some client would get no data"
        )


def _check_rng(rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def partition_iid(n: int, *, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Equal IID split (the paper's default federation): shuffle, then cut into near-equal parts.

    Client sizes differ by at most one (the first ``n % num_clients`` clients get
    the extra sample).

    Args:
        n: Number of samples.
        num_clients: Number of clients, ``1 <= num_clients <= n``.
        rng: Source of the shuffle.

    Returns:
        ``num_clients`` sorted int64 index arrays.

    Raises:
        ValueError: If ``n`` or ``num_clients`` is out of range.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got n={n!r}")
    _check_clients(num_clients, int(n))
    _check_rng(rng)
    perm = rng.permutation(int(n))
    return [np.sort(part).astype(np.int64) for part in np.array_split(perm, int(num_clients))]


def _dirichlet_once(
    labels: np.ndarray, classes: np.ndarray, *, num_clients: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        shares = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(np.int64)
        for client, piece in enumerate(np.split(idx, cuts)):
            buckets[client].append(piece)
    return [np.sort(np.concatenate(b)).astype(np.int64) for b in buckets]


def partition_dirichlet(
    labels: np.ndarray,
    *,
    num_clients: int,
    alpha: float,
    rng: np.random.Generator,
    min_size: int = 1,
    max_tries: int = 10,
) -> list[np.ndarray]:
    """Label-skewed non-IID split by Dirichlet proportions (Hsu et al. 2019, arXiv 1909.06335).

    For each class (in sorted order) the class's indices are shuffled and cut
    among clients in proportions drawn from ``Dirichlet(alpha * 1)``; small
    ``alpha`` gives each client few classes, large ``alpha`` approaches IID. This is
    the per-class "proportions over clients" form used by Flower's
    ``DirichletPartitioner`` and FedML, usually cited to Hsu et al.

    If a draw leaves some client with fewer than ``min_size`` samples, the whole
    draw is repeated with the *same* ``rng`` (continuing its stream), at most
    ``max_tries`` times in total; then a ValueError is raised. Retrying conditions
    the partition on every client reaching ``min_size``, as Flower and FedML do;
    set ``max_tries=1`` to refuse any retry.

    Args:
        labels: 1-D integer class labels, one per sample.
        num_clients: Number of clients, ``1 <= num_clients <= len(labels)``.
        alpha: Dirichlet concentration, > 0 and finite.
        rng: Source of every draw.
        min_size: Smallest acceptable client size, >= 0 (0 allows empty clients).
        max_tries: Number of draws before giving up, >= 1.

    Returns:
        ``num_clients`` sorted int64 index arrays.

    Raises:
        ValueError: On bad arguments, or if no draw within ``max_tries`` gives every
            client ``min_size`` samples (the message names num_clients, alpha and the
            client sizes of the last draw).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    n = len(labels)
    _check_clients(num_clients, n)
    _check_rng(rng)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (0 < alpha < math.inf):
        raise ValueError(f"alpha must be a finite number > 0, got alpha={alpha!r}")
    for name, value, low in (("min_size", min_size, 0), ("max_tries", max_tries, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {name}={value!r}")
    if min_size * num_clients > n:
        raise ValueError(
            f"min_size={min_size} x num_clients={num_clients} exceeds n={n}; "
            f"lower min_size or use fewer clients"
        )
    classes = np.unique(labels)
    for _ in range(int(max_tries)):
        parts = _dirichlet_once(labels, classes, num_clients=int(num_clients), alpha=float(alpha), rng=rng)
        sizes = [len(p) for p in parts]
        if min(sizes) >= min_size:
            return parts
    raise ValueError(
        f"Dirichlet partition with num_clients={num_clients}, alpha={alpha} left a client with "
        f"fewer than min_size={min_size} samples in each of {max_tries} draw(s); last client "
        f"sizes: {sizes}. Use a larger alpha or fewer clients."
    )


def partition(
    labels: np.ndarray,
    *,
    scheme: Scheme,
    num_clients: int,
    seed: int,
    alpha: float | None = None,
    min_size: int = 1,
) -> list[np.ndarray]:
    """Partition by name, drawing from ``medhe.rng.generator(seed, "partition")``.

    Args:
        labels: 1-D integer labels of the training set (only its length matters for IID).
        scheme: ``"iid"`` (:func:`partition_iid`) or ``"dirichlet"`` (:func:`partition_dirichlet`).
        num_clients: Number of clients.
        seed: Run seed.
        alpha: Dirichlet concentration; required for ``"dirichlet"``, must be None for ``"iid"``.
        min_size: Passed to :func:`partition_dirichlet`.

    Returns:
        One sorted int64 index array per client.

    Raises:
        ValueError: On an unknown scheme or a missing / superfluous alpha.

    >>> [len(p) for p in partition([0, 1] * 5, scheme="iid", num_clients=2, seed=0)]
    [5, 5]
    """
    labels = np.asarray(labels)
    rng = seeds.generator(seed, "partition")
    if scheme == "iid":
        if alpha is not None:
            raise ValueError(f"alpha applies only to scheme='dirichlet', got alpha={alpha!r} with 'iid'")
        return partition_iid(len(labels), num_clients=num_clients, rng=rng)
    if scheme == "dirichlet":
        if alpha is None:
            raise ValueError("scheme='dirichlet' needs alpha (e.g. alpha=0.1 as in the paper)")
        return partition_dirichlet(labels, num_clients=num_clients, alpha=alpha, rng=rng, min_size=min_size)
    raise ValueError(f"scheme must be 'iid' or 'dirichlet', got scheme={scheme!r}")
