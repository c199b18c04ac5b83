"""Top-k gradient sparsification with error feedback and an EMA-smoothed threshold.

Implements step 3 of MedHE (arXiv 2511.09043, Sec. "Adaptive gradient sparsification"):
each client adds its error-feedback residual to its update (``e <- G + e``), keeps the
entries of largest magnitude (sparsity ``s``; the top ``1 - s`` fraction), optionally with
a keep-threshold smoothed over rounds, ``tau_t = alpha * tau_{t-1} + (1 - alpha) * tau_now``,
and keeps what it did not send in the residual. Error feedback follows Seide et al. (2014)
and Karimireddy et al. (2019, "EF-SGD"); the compressor-object shape follows PowerSGD
(Vogels et al. 2019), whose compressor reports its own compression rate.

The maths is in pure functions (:func:`num_kept`, :func:`kth_largest_magnitude`,
:func:`topk_indices`); the per-client state (residual, threshold, density history) is in
:class:`TopKSparsifier`. Update vectors are 1-D floating numpy arrays (the flattened model
delta of one client for one round, up to ~67 M entries), so selection uses
``np.partition`` (O(n)) and never a full sort. Top-k runs over the whole flattened model
(one global k and one threshold), whereas the author's code takes k per tensor: a
difference from the paper's implementation. With the EMA threshold the number kept is not
k: the smoothed threshold lags the shrinking updates, so later rounds can keep many times k
(the run records the density per round).

>>> x = np.array([0.1, -3.0, 2.0, 0.5, -2.0], dtype=np.float32)
>>> sp = TopKSparsifier(size=5, sparsity=0.6, adaptive=False)
>>> msg = sp.compress(x)
>>> msg.indices.tolist(), msg.values.tolist()
([1, 2], [-3.0, 2.0])
>>> sp.residual.tolist()
[0.10000000149011612, 0.0, 0.0, 0.5, -2.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SparseUpdate",
    "TopKSparsifier",
    "global_mask",
    "kth_largest_magnitude",
    "num_kept",
    "topk_indices",
]


# --------------------------------------------------------------------------- checks


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def _check_sparsity(sparsity: float) -> float:
    if not isinstance(sparsity, (int, float, np.floating)) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1) (fraction of entries dropped), got {sparsity!r}")
    return float(sparsity)


def _check_vector(x: np.ndarray, *, name: str = "x", size: int | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    if size is not None and x.shape[0] != size:
        raise ValueError(f"{name} has length {x.shape[0]}, expected size={size}")
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} must be finite, got {x[bad]!r} at index {bad}")
    return x


def _check_mask(mask: np.ndarray, *, size: int) -> np.ndarray:
    idx = np.asarray(mask)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"mask must be a 1-D integer index array, got dtype {idx.dtype}, shape {idx.shape}")
    if idx.size and (idx[0] < 0 or idx[-1] >= size or (idx.size > 1 and not (np.diff(idx) > 0).all())):
        raise ValueError(f"mask indices must be strictly increasing and lie in [0, {size})")
    return idx.astype(np.int64, copy=False)


def _check_k(k: int, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}], got {k!r}")
    return int(k)


# --------------------------------------------------------------------------- pure maths


def num_kept(size: int, *, sparsity: float) -> int:
    """Number of entries top-k keeps: ``k = max(1, round((1 - s) * size))``.

    MedHE step 3 keeps "the top 10 %" at sparsity s = 0.9. Rounding is to the nearest
    integer with halves rounded up (not Python's banker's rounding), and at least one
    entry is always kept, so a tiny vector is never silently dropped in full.

    Args:
        size: Dense length of the update (positive).
        sparsity: Fraction of entries dropped, in [0, 1).

    Returns:
        k, an integer in [1, size].

    Raises:
        ValueError: If ``size`` is not a positive integer or ``sparsity`` is outside [0, 1).

    >>> num_kept(1000, sparsity=0.9), num_kept(3, sparsity=0.9), num_kept(7, sparsity=0.0)
    (100, 1, 7)
    """
    size = _check_size(size)
    sparsity = _check_sparsity(sparsity)
    return min(size, max(1, math.floor((1.0 - sparsity) * size + 0.5)))


def kth_largest_magnitude(x: np.ndarray, *, k: int) -> float:
    """The exact top-k threshold ``tau_now``: the k-th largest ``|x_i|`` (MedHE step 3).

    O(n) via ``np.partition`` on one private copy of ``|x|``.

    Args:
        x: 1-D finite floating vector.
        k: Rank, 1 <= k <= len(x) (k = 1 is the largest magnitude).

    Returns:
        The k-th largest magnitude as a Python float (exactly representable in x's dtype).

    Raises:
        ValueError: If x is not a finite 1-D floating vector or k is out of range.

    >>> kth_largest_magnitude(np.array([0.5, -4.0, 2.0, -1.0]), k=2)
    2.0
    """
    x = _check_vector(x)
    n = x.shape[0]
    k = _check_k(k, n)
    mags = np.abs(x)
    mags.partition(n - k)
    return float(mags[n - k])


def _topk_mask(mags: np.ndarray, *, k: int, tau: float) -> np.ndarray:
    """Boolean mask of the k largest entries of ``mags`` (ties: lower index first)."""
    mask = mags > tau
    need = k - int(np.count_nonzero(mask))
    if need > 0:
        ties = np.flatnonzero(mags == tau)[:need]
        mask[ties] = True
    return mask


def topk_indices(x: np.ndarray, *, k: int) -> np.ndarray:
    """Indices of the k largest ``|x_i|``, sorted ascending (MedHE step 3, exact top-k).

    Ties at the threshold are broken deterministically in favour of the lower index, so
    the result equals ``np.sort(np.argsort(-np.abs(x), kind="stable")[:k])`` but costs O(n).

    Args:
        x: 1-D finite floating vector.
        k: Number of entries to keep, 1 <= k <= len(x).

    Returns:
        int64 array of exactly k unique indices in ascending order.

    Raises:
        ValueError: If x is not a finite 1-D floating vector or k is out of range.

    >>> topk_indices(np.array([1.0, -3.0, 1.0, 3.0, 0.0]), k=3).tolist()
    [0, 1, 3]
    """
    tau = kth_largest_magnitude(x, k=k)
    mask = _topk_mask(np.abs(x), k=k, tau=tau)
    return np.flatnonzero(mask).astype(np.int64, copy=False)


def global_mask(score: np.ndarray | None, *, size: int, k: int, explore: float,
                rng: np.random.Generator) -> np.ndarray:
    """One index set of exactly ``k`` positions that every client derives from public data alone.

    For the ``global`` alignment: every client sends its values at the same positions, so no
    index set travels and the server learns nothing but ``k``. The positions are

    * *exploit*: the ``k - r`` largest ``|score|`` entries, where ``score`` is public to every
      client (the previous round's decrypted aggregate update); ties to the lower index;
    * *explore*: ``r = ceil(explore * k)`` further positions drawn uniformly without replacement
      from the rest with ``rng``, a generator every client seeds alike (public seed and round).
      Exploration lets the mask leave the positions sent before: the aggregate is zero outside
      the previous mask, so the exploit part alone could never move.

    With ``score`` None or all zero (round 1) every position is drawn at random. What falls
    outside the mask stays in each client's error-feedback residual.

    Args:
        score: 1-D public vector of length ``size``, or None.
        size: Dense length of the update.
        k: Positions to select, 1 <= k <= size.
        explore: Fraction of ``k`` drawn at random, in [0, 1].
        rng: Generator seeded from public values only.

    Returns:
        int64 array of exactly k unique indices, ascending.

    >>> m = global_mask(np.array([0.0, 5.0, -4.0, 0.1, 3.0]), size=5, k=2, explore=0.0,
    ...                 rng=np.random.default_rng(0))
    >>> m.tolist()
    [1, 2]
    """
    size = _check_size(size)
    k = _check_k(k, size)
    if not isinstance(explore, (int, float, np.floating)) or not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore must be a fraction in [0, 1], got {explore!r}")
    exploit = np.empty(0, dtype=np.int64)
    if score is not None:
        score = _check_vector(score, name="score", size=size)
        n_exploit = min(k - math.ceil(explore * k), int(np.count_nonzero(score)))
        if n_exploit > 0:
            exploit = topk_indices(score, k=n_exploit)
    rest = np.ones(size, dtype=bool)
    rest[exploit] = False
    pool = np.flatnonzero(rest)
    drawn = rng.choice(pool, size=k - exploit.size, replace=False) if k > exploit.size else pool[:0]
    return np.sort(np.concatenate([exploit, drawn.astype(np.int64)]))


# --------------------------------------------------------------------------- message


@dataclass(frozen=True, eq=False)
class SparseUpdate:
    """What one client sends in one round: the kept coordinates of its update.

    Attributes:
        indices: int64, strictly increasing, in [0, size).
        values: The kept values, same dtype as the dense update, ``len(values) == nnz``.
        size: Dense length of the update.

    Treat the arrays as immutable; the dataclass is frozen but numpy arrays are not.
    """

    indices: np.ndarray
    values: np.ndarray
    size: int

    def __post_init__(self) -> None:
        size = _check_size(self.size)
        idx, vals = np.asarray(self.indices), np.asarray(self.values)
        if idx.ndim != 1 or idx.dtype != np.int64:
            raise ValueError(f"indices must be a 1-D int64 array, got shape {idx.shape} dtype {idx.dtype}")
        if vals.ndim != 1 or not np.issubdtype(vals.dtype, np.floating):
            raise ValueError(f"values must be a 1-D floating array, got shape {vals.shape} dtype {vals.dtype}")
        if idx.shape != vals.shape:
            raise ValueError(f"indices ({idx.shape[0]}) and values ({vals.shape[0]}) differ in length")
        if idx.size:
            if idx[0] < 0 or idx[-1] >= size:
                raise ValueError(f"indices must lie in [0, {size}), got {idx[0]}..{idx[-1]}")
            if idx.size > 1 and not (np.diff(idx) > 0).all():
                raise ValueError("indices must be strictly increasing (sorted and unique)")
        object.__setattr__(self, "indices", idx)
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "size", size)

    @property
    def nnz(self) -> int:
        """Number of coordinates sent."""
        return int(self.indices.shape[0])

    @property
    def density(self) -> float:
        """Fraction of coordinates sent, ``nnz / size``."""
        return self.nnz / self.size

    def to_dense(self) -> np.ndarray:
        """The dense vector with zeros at the coordinates not sent."""
        out = np.zeros(self.size, dtype=self.values.dtype)
        out[self.indices] = self.values
        return out


# --------------------------------------------------------------------------- state


class TopKSparsifier:
    """Per-client top-k compressor with error feedback and an EMA threshold (MedHE step 3).

    Each :meth:`compress` call (one per round) does, with ``k = num_kept(size, sparsity=s)``:

    1. ``acc = update + residual`` (error feedback on), else ``acc = update``;
    2. ``tau_now`` = k-th largest ``|acc|`` (exact top-k threshold);
    3. adaptive: ``tau_t = ema_alpha * tau_{t-1} + (1 - ema_alpha) * tau_now``, with
       ``tau_1 = tau_now``, and keep every entry with ``|acc| >= tau_t``; the kept count can
       differ from k. Not adaptive: keep exactly the top k (ties to the lower index);
    4. ``residual = acc - sent`` (error feedback on), else the residual stays zero.

    Behaviour of the EMA threshold, as the paper describes it and without repair: if
    ``tau_t`` exceeds every ``|acc|``, nothing is sent that round (an empty
    :class:`SparseUpdate`); with error feedback the mass stays in the residual and is sent
    later. When update magnitudes shrink over rounds (as in real training), the lagging
    ``tau_t`` stays above ``tau_now`` and fewer than k entries are kept; when they grow, more.
    If ``tau_t == 0`` every entry (zeros included) passes ``|acc| >= 0``. The only
    safeguard is the opt-in ``max_density``: if the EMA rule would keep more than
    ``ceil(max_density * size)`` entries, exactly that many largest entries are kept instead
    (recorded in :attr:`capped_history`). Nothing else changes the method silently.

    Args:
        size: Dense length of every update.
        sparsity: Fraction of entries dropped, in [0, 1) (paper: 0.9).
        error_feedback: Keep what is not sent and add it to the next update.
        adaptive: Use the EMA-smoothed threshold instead of exact top-k.
        ema_alpha: EMA weight on the previous threshold, in [0, 1) (paper: 0.9).
        max_density: Optional cap on the kept fraction in adaptive mode, in (0, 1].

    Raises:
        ValueError: On out-of-range arguments, naming the value.
    """

    def __init__(
        self,
        *,
        size: int,
        sparsity: float,
        error_feedback: bool = True,
        adaptive: bool = True,
        ema_alpha: float = 0.9,
        max_density: float | None = None,
    ) -> None:
        self.size = _check_size(size)
        self.sparsity = _check_sparsity(sparsity)
        if not isinstance(ema_alpha, (int, float, np.floating)) or not 0.0 <= ema_alpha < 1.0:
            raise ValueError(f"ema_alpha must be in [0, 1), got {ema_alpha!r}")
        if max_density is not None and not 0.0 < max_density <= 1.0:
            raise ValueError(f"max_density must be in (0, 1] or None, got {max_density!r}")
        self.k = num_kept(self.size, sparsity=self.sparsity)
        self.error_feedback = bool(error_feedback)
        self.adaptive = bool(adaptive)
        self.ema_alpha = float(ema_alpha)
        self.max_density = None if max_density is None else float(max_density)
        self._residual: np.ndarray | None = None
        self._dtype: np.dtype = np.dtype(np.float32)
        self.threshold: float | None = None
        """Threshold used in the last call (``tau_t`` if adaptive, else ``tau_now``)."""
        self.exact_threshold: float | None = None
        """``tau_now`` of the last call: the k-th largest ``|acc|``."""
        self.density_history: list[float] = []
        """Fraction of entries sent, one per call."""
        self.capped_history: list[bool] = []
        """Whether ``max_density`` overrode the EMA rule, one per call."""
        self.last_sent_nnz: int | None = None

    @property
    def rounds(self) -> int:
        """Number of :meth:`compress` calls so far."""
        return len(self.density_history)

    @property
    def last_density(self) -> float | None:
        """Fraction of entries sent in the last call (None before the first call)."""
        return self.density_history[-1] if self.density_history else None

    @property
    def target_density(self) -> float:
        """``k / size``, the density exact top-k would send."""
        return self.k / self.size

    @property
    def residual(self) -> np.ndarray:
        """Read-only view of the error-feedback residual (zeros if feedback is off).

        The view shares memory with the state and changes on the next :meth:`compress`
        (the residual is updated in place to avoid a second dense copy); ``.copy()`` it to keep it.
        """
        if self._residual is None:
            return np.zeros(self.size, dtype=self._dtype)
        view = self._residual.view()
        view.flags.writeable = False
        return view

    def _accumulate(self, update: np.ndarray) -> np.ndarray:
        if self.rounds and update.dtype != self._dtype:
            raise ValueError(f"update dtype {update.dtype} differs from earlier rounds ({self._dtype})")
        self._dtype = update.dtype
        if not self.error_feedback:
            return update  # never mutated below
        if self._residual is None:
            return update.copy()
        return np.add(update, self._residual, out=self._residual)

    def _select(self, acc: np.ndarray) -> np.ndarray:
        tau_now = kth_largest_magnitude(acc, k=self.k)
        self.exact_threshold = tau_now
        mags = np.abs(acc)
        if not self.adaptive:
            self.threshold = tau_now
            self.capped_history.append(False)
            return _topk_mask(mags, k=self.k, tau=tau_now)
        if self.threshold is None:
            tau = tau_now
        else:
            tau = self.ema_alpha * self.threshold + (1.0 - self.ema_alpha) * tau_now
        self.threshold = tau
        mask = mags >= tau
        cap = None if self.max_density is None else math.ceil(self.max_density * self.size)
        capped = cap is not None and int(np.count_nonzero(mask)) > cap
        self.capped_history.append(capped)
        if capped:
            mask = _topk_mask(mags, k=cap, tau=kth_largest_magnitude(acc, k=cap))
        return mask

    def compress(self, update: np.ndarray, *, mask: np.ndarray | None = None) -> SparseUpdate:
        """Sparsify one round's update (MedHE step 3); call once per round.

        Args:
            update: 1-D finite floating vector of length ``size``; not modified.
            mask: Optional ascending, unique indices to send instead of this client's own
                top-k (the ``global`` alignment's public mask, :func:`global_mask`); needs
                ``adaptive=False``. Error feedback keeps everything outside the mask.

        Returns:
            The kept coordinates of ``update + residual``.

        Raises:
            ValueError: On a wrong length, non-floating dtype, a dtype change between
                rounds, or a NaN/inf entry (named with its index).
        """
        update = _check_vector(update, name="update", size=self.size)
        if mask is not None:
            indices = _check_mask(mask, size=self.size)
            if self.adaptive:
                raise ValueError("a given mask replaces the EMA threshold: build the sparsifier with adaptive=False")
        acc = self._accumulate(update)
        if mask is None:
            keep = self._select(acc)
            indices = np.flatnonzero(keep).astype(np.int64, copy=False)
            del keep
        else:
            self.capped_history.append(False)
        values = acc[indices]
        if self.error_feedback:
            acc[indices] = 0  # acc becomes the new residual: acc - sent, exactly
            self._residual = acc
        self.last_sent_nnz = int(indices.shape[0])
        self.density_history.append(self.last_sent_nnz / self.size)
        return SparseUpdate(indices=indices, values=values, size=self.size)

    def absorb(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Add a correction to the error-feedback residual: ``residual[indices] += values``.

        For what a transport lost after :meth:`compress`, e.g. the quantisation error of the BFV
        transport (``RoundResult.feedback``), so that ``sent_as_delivered + residual ==
        update + old_residual`` still holds and nothing is lost over rounds. Values are cast to
        the residual's dtype (that of the updates).

        Without error feedback this is a documented no-op: nothing is carried over between
        rounds, the transport's loss included (the ablation stays "no error feedback").

        Args:
            indices: 1-D integer positions in [0, size), strictly increasing (as a payload's).
            values: finite floats, one per index.

        Raises:
            ValueError: on mismatched shapes, unsorted/duplicate or out-of-range indices, or a
                non-finite value.
        """
        idx = np.asarray(indices)
        vals = np.asarray(values)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"indices must be a 1-D integer array, got dtype {idx.dtype}, shape {idx.shape}")
        if vals.shape != idx.shape:
            raise ValueError(f"values shape {vals.shape} differs from indices shape {idx.shape}")
        if idx.size:
            if idx[0] < 0 or idx[-1] >= self.size:
                raise ValueError(f"indices must lie in [0, {self.size}), got {idx[0]}..{idx[-1]}")
            if idx.size > 1 and not (np.diff(idx) > 0).all():
                raise ValueError("indices must be strictly increasing (sorted and unique)")
            _check_vector(vals.astype(np.float64, copy=False), name="values")
        if not self.error_feedback or idx.size == 0:
            return
        if self._residual is None:
            self._residual = np.zeros(self.size, dtype=self._dtype)
        self._residual[idx] += vals.astype(self._residual.dtype, copy=False)
