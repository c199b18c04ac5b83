"""Data, configuration and results of the membership-inference evaluation (TF-Privacy's cut).

* :class:`AttackInput`: model outputs (as log-probabilities) and labels of members and non-members.
* :class:`MIAConfig`: every knob of the evaluation, checked on construction.
* :class:`AttackResult`: one attack's numbers and ROC on the evaluation split.
* :class:`MIAReport`: all attacks on one run, with :meth:`MIAReport.to_frame` and
  :meth:`MIAReport.roc_frame` (tidy), and the paper's worst case.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

from medhe.attacks import scores as sc
from medhe.attacks.lira import check_n_shadows
from medhe.attacks.metrics import check_fpr_target

PAPER_ATTACKS = ("confidence", "entropy", "modified_entropy", "learned_logistic")
LIRA_VARIANTS = ("offline", "online")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class MIAConfig:
    """Knobs of :func:`medhe.attacks.evaluate_run` (defaults follow the literature; see README).

    Attributes:
        calibration_fraction: Share of members and of non-members used to fit thresholds
            and the learned attack; the rest is the evaluation split.
        n_bootstrap: Stratified bootstrap resamples for the CIs.
        ci_level: Confidence level of the percentile CIs.
        fpr_targets: FPRs at which TPR is reported.
        confidence: ``"true_label"`` (``F_y``, Song & Mittal) or ``"max"`` (``max_i F_i``, Salem et al.).
        n_shadows: Shadow models per LiRA variant (>= 2).
        lira: LiRA variants to run (``"offline"``, ``"online"``); empty skips shadow training.
        shadow_keep: Fraction of shadows that train on each pool record.
        fixed_variance: Pool the LiRA Gaussian variance across records.
        shadow_method: Federated method of the shadows; None = the target's method.
        max_per_side: Cap on members and on non-members after balancing (None = no cap).
        suspicious_auc: AUCs below this are flagged (an inverted or broken attack).
    """

    calibration_fraction: float = 0.5
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    fpr_targets: tuple[float, ...] = (0.01, 0.001)
    confidence: Literal["true_label", "max"] = "true_label"
    n_shadows: int = 8
    lira: tuple[str, ...] = LIRA_VARIANTS
    shadow_keep: float = 0.5
    fixed_variance: bool = True
    shadow_method: str | None = None
    max_per_side: int | None = None
    suspicious_auc: float = 0.4

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "fpr_targets", tuple(check_fpr_target(t) for t in self.fpr_targets))
        put(self, "lira", tuple(self.lira))
        _check(0 < self.calibration_fraction < 1,
               f"calibration_fraction must be in (0, 1), got calibration_fraction={self.calibration_fraction!r}")
        _check(isinstance(self.n_bootstrap, int) and self.n_bootstrap >= 1,
               f"n_bootstrap must be an integer >= 1, got n_bootstrap={self.n_bootstrap!r}")
        _check(0 < self.ci_level < 1, f"ci_level must be in (0, 1), got ci_level={self.ci_level!r}")
        _check(self.confidence in ("true_label", "max"),
               f"confidence must be 'true_label' or 'max', got confidence={self.confidence!r}")
        check_n_shadows(self.n_shadows)
        _check(set(self.lira) <= set(LIRA_VARIANTS),
               f"lira variants must be among {LIRA_VARIANTS}, got lira={self.lira!r}")
        _check(0 < self.shadow_keep < 1, f"shadow_keep must be in (0, 1), got shadow_keep={self.shadow_keep!r}")
        _check(self.max_per_side is None or (isinstance(self.max_per_side, int) and self.max_per_side >= 4),
               f"max_per_side must be None or an integer >= 4, got max_per_side={self.max_per_side!r}")
        _check(0 <= self.suspicious_auc <= 0.5,
               f"suspicious_auc must be in [0, 0.5], got suspicious_auc={self.suspicious_auc!r}")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> MIAConfig:
        """Build from a plain mapping (e.g. an ``mia:`` section of params.yaml); unknown keys are errors."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)})
        _check(not unknown, f"unknown MIAConfig key(s) {unknown}")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class AttackInput:
    """Per-record outputs of the attacked model (TF-Privacy's ``AttackInputData``).

    Stored as float64 log-probabilities; build it with :meth:`from_logits` (preferred:
    no saturation ties) or :meth:`from_proba`. Members come first wherever the two
    groups are stacked (:meth:`stacked`).
    """

    logp_members: np.ndarray
    labels_members: np.ndarray
    logp_nonmembers: np.ndarray
    labels_nonmembers: np.ndarray

    def __post_init__(self) -> None:
        put = object.__setattr__
        for group in ("members", "nonmembers"):
            lp = np.asarray(getattr(self, f"logp_{group}"), dtype=np.float64)
            if lp.ndim != 2 or lp.shape[1] < 2 or len(lp) < 2:
                raise ValueError(f"logp_{group} must be (n >= 2, classes >= 2), got shape {lp.shape}")
            if not np.all(np.isfinite(lp)) or lp.max() > 1e-9:
                raise ValueError(f"logp_{group} must be finite log-probabilities (<= 0)")
            put(self, f"logp_{group}", lp)
            put(self, f"labels_{group}", sc.check_labels(getattr(self, f"labels_{group}"), n=len(lp),
                                                         num_classes=lp.shape[1], what=f"labels_{group}"))
        if self.logp_members.shape[1] != self.logp_nonmembers.shape[1]:
            raise ValueError(f"members have {self.logp_members.shape[1]} classes, non-members "
                             f"{self.logp_nonmembers.shape[1]}")

    @classmethod
    def from_logits(cls, *, logits_members: np.ndarray, labels_members: np.ndarray,
                    logits_nonmembers: np.ndarray, labels_nonmembers: np.ndarray) -> AttackInput:
        """From raw logits (log-softmax taken here, in float64)."""
        return cls(sc.log_softmax(logits_members), labels_members, sc.log_softmax(logits_nonmembers), labels_nonmembers)

    @classmethod
    def from_proba(cls, *, proba_members: np.ndarray, labels_members: np.ndarray, proba_nonmembers: np.ndarray,
                   labels_nonmembers: np.ndarray, atol: float = sc.PROBA_ATOL) -> AttackInput:
        """From probabilities; rows must sum to 1 within ``atol``."""
        return cls(sc.log_proba_from_proba(proba_members, atol=atol), labels_members,
                   sc.log_proba_from_proba(proba_nonmembers, atol=atol), labels_nonmembers)

    @property
    def n_members(self) -> int:
        return len(self.labels_members)

    @property
    def n_nonmembers(self) -> int:
        return len(self.labels_nonmembers)

    def stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(logp, labels, is_member)`` with members first."""
        is_member = np.r_[np.ones(self.n_members, bool), np.zeros(self.n_nonmembers, bool)]
        return (np.vstack([self.logp_members, self.logp_nonmembers]),
                np.r_[self.labels_members, self.labels_nonmembers], is_member)


def tpr_column(target: float) -> str:
    """Column name of TPR at an FPR target: 0.01 -> ``tpr_at_1pct_fpr``, 0.001 -> ``tpr_at_0.1pct_fpr``."""
    return f"tpr_at_{100 * target:g}pct_fpr"


@dataclass(frozen=True, eq=False)
class AttackResult:
    """One attack on the evaluation split.

    ``success_rate`` is the balanced accuracy at the threshold fitted on the
    calibration split (the paper's "attack success rate"; 0.5 = chance).
    ``calibration_success_rate`` is the balanced accuracy at that threshold on the
    calibration records themselves: it selects the worst-case attack
    (:meth:`MIAReport.worst_case`), so the evaluation records never take part in the choice.
    """

    attack: str
    score: str  # what the score is, in words
    success_rate: float
    success_ci: tuple[float, float]
    auc: float
    auc_ci: tuple[float, float]
    tpr_at_fpr: Mapping[float, float]
    threshold: float
    n_members_eval: int
    n_nonmembers_eval: int
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    warnings: tuple[str, ...] = ()
    calibration_success_rate: float = float("nan")

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "attack": self.attack, "success_rate": self.success_rate,
            "calibration_success_rate": self.calibration_success_rate, "ci_low": self.success_ci[0],
            "ci_high": self.success_ci[1], "auc": self.auc, "auc_ci_low": self.auc_ci[0],
            "auc_ci_high": self.auc_ci[1]}
        row.update({tpr_column(t): v for t, v in self.tpr_at_fpr.items()})
        row.update({"fpr_resolution": 1 / self.n_nonmembers_eval, "threshold": self.threshold,
                    "n_members_eval": self.n_members_eval, "n_nonmembers_eval": self.n_nonmembers_eval,
                    "score": self.score, "warnings": "; ".join(self.warnings)})
        return row


def select_on_calibration(results: list[AttackResult]) -> AttackResult:
    """The result with the highest calibration success rate (first one on ties).

    Raises:
        ValueError: If a result has no calibration success rate (NaN).
    """
    missing = [r.attack for r in results if not np.isfinite(r.calibration_success_rate)]
    if missing:
        raise ValueError(f"attack(s) {missing} carry no calibration_success_rate; the worst case is chosen on the "
                         "calibration split only")
    return max(results, key=lambda r: r.calibration_success_rate)


@dataclass(frozen=True, eq=False)
class MIAReport:
    """Every attack on one (method, seed) run, plus what was attacked and how.

    Attributes:
        method: Federated method of the target run.
        seed: Trial seed of the target run (and of every draw of the evaluation).
        results: One :class:`AttackResult` per attack.
        n_members: Members used (balanced; calibration + evaluation).
        n_nonmembers: Non-members used.
        config: The :class:`MIAConfig`.
        info: Provenance: sizes before balancing, target accuracies, shadow design.
    """

    method: str
    seed: int
    results: tuple[AttackResult, ...]
    n_members: int
    n_nonmembers: int
    config: MIAConfig
    info: Mapping[str, Any] = field(default_factory=dict)

    def result(self, attack: str) -> AttackResult:
        for r in self.results:
            if r.attack == attack:
                return r
        raise KeyError(f"no attack {attack!r}; have {[r.attack for r in self.results]}")

    def worst_case(self, attacks: tuple[str, ...] = PAPER_ATTACKS) -> AttackResult:
        """The attack with the highest *calibration* success rate among ``attacks`` (the paper's four by default).

        The choice uses the calibration records only; the chosen attack's ``success_rate`` is then an
        unbiased evaluation-split number. Taking the best of several attacks on the evaluation split
        itself biases it upward (with no membership signal, the best of four averages about 0.517 at
        a few hundred records, against 0.500 for one attack). Ties go to the first attack listed.
        """
        pool = [r for r in self.results if r.attack in attacks]
        if not pool:
            raise ValueError(f"none of {attacks} was run")
        return select_on_calibration(pool)

    def to_frame(self):
        """One row per attack: method, seed, attack, success_rate, CIs, AUC, TPR@FPR, sizes, warnings."""
        import pandas as pd

        rows = [{"method": self.method, "seed": self.seed, **r.to_row(),
                 "n_members": self.n_members, "n_nonmembers": self.n_nonmembers} for r in self.results]
        return pd.DataFrame(rows)

    def roc_frame(self):
        """Tidy ROC points of every attack on the evaluation split: method, seed, attack, fpr, tpr."""
        import pandas as pd

        return pd.DataFrame([{"method": self.method, "seed": self.seed, "attack": r.attack, "fpr": f, "tpr": t}
                             for r in self.results for f, t in zip(r.fpr.tolist(), r.tpr.tolist())])

    def summary(self) -> dict[str, Any]:
        """Flat worst-case numbers: over the paper's four attacks, and over all attacks."""
        paper, overall = self.worst_case(), self.worst_case(tuple(r.attack for r in self.results))
        return {"method": self.method, "seed": self.seed, "worst_case_selected_on": "calibration split",
                "worst_case_attack": paper.attack,
                "worst_case_success_rate": paper.success_rate, "worst_case_ci_low": paper.success_ci[0],
                "worst_case_ci_high": paper.success_ci[1], "worst_case_auc": paper.auc,
                "worst_any_attack": overall.attack, "worst_any_success_rate": overall.success_rate,
                "max_auc": max(r.auc for r in self.results),
                "suspicious": any(r.auc < self.config.suspicious_auc for r in self.results)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: summary, per-attack rows, config and provenance (ROC points are in roc.csv)."""
        return {"summary": self.summary(), "attacks": [r.to_row() for r in self.results],
                "n_members": self.n_members, "n_nonmembers": self.n_nonmembers,
                "config": self.config.to_dict(), "info": dict(self.info)}

