"""Membership inference against the federated global model (the paper's ``mia`` claim).

The paper reports a worst-case "attack success rate" over four attacks (confidence
threshold, entropy threshold, modified entropy, a learned logistic attack). This
package reproduces that number with the protocol reviewers expect, and adds LiRA:

* members = the target's own training records, non-members = its held-out test
  records, balanced by a seeded subsample;
* thresholds and the learned attack are fitted on a calibration split and scored on
  a disjoint evaluation split (:func:`run_attacks`, :func:`evaluate_scores`);
* per attack: success rate (balanced accuracy at the calibration threshold), AUC,
  TPR at 1 % and 0.1 % FPR (step ROC; NaN with a warning when the sample cannot
  resolve the FPR), stratified bootstrap CIs; AUC < 0.4 is flagged as suspicious;
* LiRA (Carlini et al. 2022), offline and online, with shadows trained by our own
  federated code (:func:`evaluate_run`).

Layout: :mod:`~medhe.attacks.scores` and :mod:`~medhe.attacks.metrics` and
:mod:`~medhe.attacks.lira` are pure maths; :mod:`~medhe.attacks.data` holds the data /
config / result dataclasses; :mod:`~medhe.attacks.evaluate` runs models and writes
files. Importing this package touches neither torch nor TenSEAL.

>>> import numpy as np
>>> inp = AttackInput.from_proba(proba_members=np.array([[0.9, 0.1], [0.2, 0.8], [0.95, 0.05], [0.1, 0.9]]),
...                              labels_members=np.array([0, 1, 0, 1]),
...                              proba_nonmembers=np.array([[0.6, 0.4], [0.5, 0.5], [0.4, 0.6], [0.65, 0.35]]),
...                              labels_nonmembers=np.array([0, 1, 1, 0]))
>>> cal = np.array([True, True, False, False] * 2)
>>> res = run_attacks(inp, calibration=cal, seed=0, config=MIAConfig(n_bootstrap=10))
>>> [r.attack for r in res]
['confidence', 'entropy', 'modified_entropy', 'learned_logistic']
>>> res[0].success_rate, res[0].auc
(1.0, 1.0)
"""

from medhe.attacks.data import PAPER_ATTACKS, AttackInput, AttackResult, MIAConfig, MIAReport, tpr_column
from medhe.attacks.evaluate import (
    MembershipSplit,
    attack_input,
    config_from_params,
    evaluate_run,
    evaluate_scores,
    learned_attack_scores,
    membership_split,
    model_logits,
    run_attacks,
    write_report,
)
from medhe.attacks.lira import lira_offline, lira_online, shadow_assignment
from medhe.attacks.metrics import (
    auc_from_roc,
    balanced_accuracy,
    bootstrap_ci,
    fit_threshold,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)
from medhe.attacks.scores import (
    attack_features,
    confidence_score,
    entropy_score,
    log_softmax,
    logit_confidence,
    modified_entropy,
    modified_entropy_score,
)

__all__ = [
    "PAPER_ATTACKS", "AttackInput", "AttackResult", "MIAConfig", "MIAReport", "MembershipSplit",
    "attack_features", "attack_input", "auc_from_roc", "balanced_accuracy", "bootstrap_ci", "confidence_score",
    "config_from_params", "entropy_score", "evaluate_run", "evaluate_scores", "fit_threshold", "learned_attack_scores",
    "lira_offline", "lira_online", "log_softmax", "logit_confidence", "membership_split", "model_logits",
    "modified_entropy", "modified_entropy_score", "roc_auc", "roc_curve", "run_attacks", "shadow_assignment",
    "tpr_at_fpr", "tpr_column", "write_report",
]
