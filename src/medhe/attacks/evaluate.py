"""Run every membership-inference attack on one federated run, and write the results.

Protocol (reviewer-facing; see also the package docstring):

1. **Members** are the target model's own training records (``dataset.x_train``),
   **non-members** its held-out test records (same distribution, never trained on).
   The larger group is subsampled to the size of the smaller (stream ``"mia-balance"``).
2. Each group is split into a **calibration** and an **evaluation** part
   (``calibration_fraction``, streams ``"mia-calibration"``). Thresholds and the
   logistic attack are fitted on calibration records only; every reported number
   is computed on evaluation records only.
3. Success rate = balanced accuracy on the evaluation split at the calibration
   threshold; AUC and TPR at fixed FPRs on the evaluation split; stratified
   bootstrap CIs (stream ``"mia-bootstrap"``). The worst-case attack is the one with
   the highest success rate on the *calibration* split; its evaluation numbers are
   reported, and every attack keeps its own row.
4. LiRA shadows are trained by :func:`medhe.fl.run` with the target's parameters.
   Offline (Carlini et al. 2022 use shadows trained on as many records as the target):
   pool = every record of the data set (train and test) **except every attacked record**
   (calibration and evaluation), and each shadow trains on exactly as many records as
   the target (``len(dataset.y_train)``), drawn without replacement from the pool (stream
   ``"mia-shadow-offline"``). Every attacked record is therefore OUT for every shadow, so
   calibration and evaluation scores have the same spread. To leave room for that, the
   members and non-members are capped at ``(n_all - n_train - 1) // 2`` per side when
   offline LiRA runs. Online pool = every record; each record is IN for
   ``round(shadow_keep * n_shadows)`` shadows (shadow sizes equal the target's only in
   expectation, and only if ``shadow_keep`` = n_train / n_all).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from medhe import rng as rngmod
from medhe.attacks import lira as lr
from medhe.attacks import metrics as mt
from medhe.attacks import scores as sc
from medhe.attacks.data import AttackInput, AttackResult, MIAConfig, MIAReport

if TYPE_CHECKING:  # torch-free at import time
    from medhe.data import Dataset
    from medhe.fl import RunResult
    from medhe.params import Params

SCORE_DESCRIPTIONS = {
    "confidence": "log F_y (true-label probability)",
    "confidence_max": "log max_i F_i (maximum probability)",
    "entropy": "-H(F(x))",
    "modified_entropy": "-Mentr(F(x), y) (Song & Mittal 2021)",
    "learned_logistic": "logistic regression on sorted probabilities, log F_y, entropy, Mentr, phi; threshold p = 0.5",
    "lira_offline": "(phi - mu_out) / sigma_out over OUT shadows (Carlini et al. 2022, offline)",
    "lira_online": "log N(phi; in) - log N(phi; out) (Carlini et al. 2022, online)",
}


@dataclass(frozen=True, eq=False)
class MembershipSplit:
    """Balanced members / non-members and their calibration mask (stacked: members first).

    Attributes:
        members: Indices into the training split.
        nonmembers: Indices into the test split.
        calibration: Boolean over the stacked records; False = evaluation.
    """

    members: np.ndarray
    nonmembers: np.ndarray
    calibration: np.ndarray

    @property
    def is_member(self) -> np.ndarray:
        return np.r_[np.ones(len(self.members), bool), np.zeros(len(self.nonmembers), bool)]

    def global_indices(self, n_train: int) -> np.ndarray:
        """Stacked records as indices into ``train ++ test``."""
        return np.r_[self.members, n_train + self.nonmembers]


def membership_split(n_train: int, n_test: int, *, seed: int, calibration_fraction: float = 0.5,
                     max_per_side: int | None = None) -> MembershipSplit:
    """Balance members and non-members (seeded subsample) and split each 50/50 (by default).

    Raises:
        ValueError: If fewer than 4 records per side are available.
    """
    n = min(n_train, n_test, max_per_side or n_train)
    if n < 4:
        raise ValueError(f"need >= 4 members and non-members, got n_train={n_train}, n_test={n_test}")
    g = rngmod.generator(seed, "mia-balance")
    members = np.sort(g.choice(n_train, size=n, replace=False))
    nonmembers = np.sort(g.choice(n_test, size=n, replace=False))
    k = int(min(max(round(calibration_fraction * n), 2), n - 2))
    cal = [rngmod.generator(seed, "mia-calibration", side).permutation(n) < k for side in (0, 1)]
    return MembershipSplit(members.astype(np.int64), nonmembers.astype(np.int64), np.concatenate(cal))


def _bootstrap_key(attack: str) -> int:
    return zlib.crc32(attack.encode())


def evaluate_scores(attack: str, scores: np.ndarray, is_member: np.ndarray, calibration: np.ndarray, *,
                    seed: int, config: MIAConfig, threshold: float | None = None,
                    description: str | None = None) -> AttackResult:
    """Fit a threshold on the calibration records, score the evaluation records.

    Args:
        attack: Attack name.
        scores: One score per record, higher = more member-like.
        is_member: Membership of every record.
        calibration: True for calibration records; the rest are evaluation records.
        seed: Seed of the bootstrap stream.
        config: CI and TPR settings.
        threshold: A fixed threshold (e.g. a classifier's own 0.5); None fits one on calibration.
        description: What the score is.
    """
    s, y = mt.check_scores(scores, is_member)
    cal = np.asarray(calibration, dtype=bool)
    if cal.shape != s.shape:
        raise ValueError(f"calibration mask has shape {cal.shape}, scores {s.shape}")
    if threshold is None:
        threshold = mt.fit_threshold(s[cal], y[cal])  # calibration records only
    s_eval, y_eval = s[~cal], y[~cal]
    fpr, tpr, _ = mt.roc_curve(s_eval, y_eval)
    auc = mt.auc_from_roc(fpr, tpr)
    ci = mt.bootstrap_ci(s_eval, y_eval, threshold=threshold, n_resamples=config.n_bootstrap,
                         rng=rngmod.generator(seed, "mia-bootstrap", _bootstrap_key(attack)), level=config.ci_level)
    n_neg = int((~y_eval).sum())
    tprs = {t: mt.tpr_at_fpr(fpr, tpr, target=t) for t in config.fpr_targets}
    warn = [f"TPR at FPR {t:g} not resolvable: {n_neg} evaluation non-members give FPR resolution "
            f"{mt.fpr_resolution(fpr):.3g}" for t, v in tprs.items() if np.isnan(v)]
    if auc < config.suspicious_auc:
        warn.insert(0, f"suspiciously low AUC {auc:.3f} < {config.suspicious_auc}: "
                       "score direction inverted or attack broken")
    return AttackResult(attack=attack, score=description or SCORE_DESCRIPTIONS.get(attack, attack),
                        success_rate=mt.balanced_accuracy(s_eval >= threshold, y_eval), success_ci=ci["success_rate"],
                        auc=auc, auc_ci=ci["auc"], tpr_at_fpr=tprs, threshold=float(threshold),
                        n_members_eval=int(y_eval.sum()), n_nonmembers_eval=n_neg, fpr=fpr, tpr=tpr,
                        warnings=tuple(warn),
                        calibration_success_rate=mt.balanced_accuracy(s[cal] >= threshold, y[cal]))


def learned_attack_scores(features: np.ndarray, is_member: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """Logistic-regression attack fitted on the calibration records; log-odds for every record.

    Standardised features, L2 penalty (C = 1), balanced class weights, lbfgs
    (deterministic). The decision rule is log-odds >= 0 (p >= 0.5).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cal = np.asarray(calibration, dtype=bool)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    clf.fit(features[cal], np.asarray(is_member, dtype=bool)[cal])
    return clf.decision_function(features)


def run_attacks(inp: AttackInput, *, calibration: np.ndarray, seed: int, config: MIAConfig,
                extra_scores: Mapping[str, np.ndarray] | None = None) -> tuple[AttackResult, ...]:
    """The paper's four attacks (plus any precomputed ``extra_scores``, e.g. LiRA) on one input.

    Args:
        inp: Model outputs on members and non-members.
        calibration: Boolean over the stacked records (members first): True = calibration.
        seed: Seed of the bootstrap streams.
        config: Evaluation settings.
        extra_scores: Attack name -> score per stacked record (higher = member).

    Raises:
        ValueError: If the calibration mask does not fit, or either split lacks a group.
    """
    logp, labels, is_member = inp.stacked()
    cal = np.asarray(calibration, dtype=bool)
    if cal.shape != is_member.shape:
        raise ValueError(f"calibration mask has {cal.shape[0] if cal.ndim else 0} entries, "
                         f"expected {len(is_member)} (members + non-members)")
    for name, part in (("calibration", cal), ("evaluation", ~cal)):
        if is_member[part].all() or not is_member[part].any():
            raise ValueError(f"the {name} split needs both members and non-members")
    conf_name = "confidence" if config.confidence == "true_label" else "confidence_max"
    runs: list[tuple[str, np.ndarray, float | None]] = [
        ("confidence", sc.confidence_score(logp, labels, kind=config.confidence), None),
        ("entropy", sc.entropy_score(logp), None),
        ("modified_entropy", sc.modified_entropy_score(logp, labels), None),
        ("learned_logistic", learned_attack_scores(sc.attack_features(logp, labels), is_member, cal), 0.0),
    ]
    runs += [(name, np.asarray(s, dtype=np.float64), None) for name, s in (extra_scores or {}).items()]
    return tuple(evaluate_scores(name, s, is_member, cal, seed=seed, config=config, threshold=thr,
                                 description=SCORE_DESCRIPTIONS[conf_name] if name == "confidence" else None)
                 for name, s, thr in runs)


# ------------------------------------------------------------------ models and shadows


def model_logits(bundle: Any, weights: np.ndarray, inputs: Any, *, batch_size: int) -> np.ndarray:
    """Logits (float64, shape (n, classes)) of ``bundle``'s model with ``weights`` on raw inputs."""
    import torch

    from medhe import model

    model.set_flat(bundle.module, weights)
    enc = bundle.encode(inputs)
    n = int(enc["input_ids"].shape[0]) if isinstance(enc, dict) else int(enc.shape[0])
    device = model.module_device(bundle.module)
    bundle.module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            batch = {k: v[sl].to(device) for k, v in enc.items()} if isinstance(enc, dict) else enc[sl].to(device)
            res = bundle.module(**batch) if isinstance(batch, dict) else bundle.module(batch)
            out.append((res.logits if hasattr(res, "logits") else res).double().cpu())
    return torch.cat(out).numpy()


def _take(x: Any, idx: np.ndarray) -> Any:
    return tuple(x[i] for i in idx) if isinstance(x, tuple) else x[idx]


def _all_records(ds: Dataset) -> tuple[Any, np.ndarray]:
    if ds.kind == "text":
        return tuple(ds.x_train) + tuple(ds.x_test), np.r_[ds.y_train, ds.y_test]
    return np.concatenate([ds.x_train, ds.x_test]), np.r_[ds.y_train, ds.y_test]


def _bundle(P: Params, ds: Dataset, *, seed: int) -> Any:
    from medhe import model

    in_features = None if ds.kind == "text" else int(np.asarray(ds.x_train).shape[1])
    return model.build(P.model, seed=seed, in_features=in_features, device=P.train.device)


def _input_from_logits(logits: np.ndarray, labels: np.ndarray, *, n_members: int) -> AttackInput:
    return AttackInput.from_logits(logits_members=logits[:n_members], labels_members=labels[:n_members],
                                   logits_nonmembers=logits[n_members:], labels_nonmembers=labels[n_members:])


def attack_input(P: Params, weights: np.ndarray, *, dataset: Dataset, split: MembershipSplit,
                 seed: int = 0) -> AttackInput:
    """Outputs of a model with ``weights`` on the split's members (train) and non-members (test) of ``dataset``.

    The weights need not come from a model trained on ``dataset.x_train``: this is how a
    control (a model that never saw the "members") is attacked with the same records.
    ``seed`` only seeds the throw-away initialisation of the model skeleton.
    """
    query = split.global_indices(len(dataset.y_train))
    x_all, y_all = _all_records(dataset)
    logits = model_logits(_bundle(P, dataset, seed=seed), weights, _take(x_all, query),
                          batch_size=P.train.eval_batch_size)
    return _input_from_logits(logits, y_all[query], n_members=len(split.members))


def offline_shadow_sets(pool: np.ndarray, *, train_size: int, n_shadows: int,
                        rng: np.random.Generator) -> list[np.ndarray]:
    """Each offline shadow's training records: ``train_size`` of ``pool``, without replacement (sorted).

    Equal training-set sizes for the target and its shadows (Carlini et al. 2022, section IV).
    At least one pool record is left out of each shadow for its held-out test set.

    Raises:
        ValueError: If the pool has fewer than ``train_size + 1`` records.
    """
    pool = np.asarray(pool, dtype=np.int64)
    if len(pool) < train_size + 1:
        raise ValueError(f"an offline shadow must train on {train_size} records (the target's training-set size), "
                         f"but the pool holds {len(pool)}: cap mia.max_per_side or use a larger data set")
    return [np.sort(rng.choice(pool, size=train_size, replace=False)) for _ in range(n_shadows)]


def shadow_phi(P: Params, *, method: str, seed: int, variant: str, ds: Dataset, pool: np.ndarray,
               query: np.ndarray, bundle: Any, config: MIAConfig,
               train_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Train ``config.n_shadows`` federated shadows on parts of ``pool``; ``phi`` on ``query``.

    Args:
        pool: Indices into ``train ++ test`` the shadows may train on.
        query: Indices into ``train ++ test`` whose ``phi`` is needed (the stacked records).
        train_size: Offline: records per shadow (:func:`offline_shadow_sets`); None (online):
            the balanced assignment of :func:`medhe.attacks.lira.shadow_assignment`.

    Returns:
        ``(phi, shadow_in, train_sizes)``: the first two ``(n_shadows, len(query))``, then the
        number of records each shadow trained on.
    """
    from medhe import data, fl

    key = ("offline", "online").index(variant)
    pool = np.asarray(pool, dtype=np.int64)
    if train_size is None:
        assign = lr.shadow_assignment(len(pool), n_shadows=config.n_shadows, keep=config.shadow_keep,
                                      rng=rngmod.generator(seed, "mia-shadow-assignment", key))
        sets = [pool[a] for a in assign]
    else:
        sets = offline_shadow_sets(pool, train_size=train_size, n_shadows=config.n_shadows,
                                   rng=rngmod.generator(seed, "mia-shadow-offline"))
    x_all, y_all = _all_records(ds)
    shadow_in = np.zeros((config.n_shadows, len(query)), dtype=bool)
    phi = np.empty((config.n_shadows, len(query)))
    for k, tr in enumerate(sets):
        te = np.setdiff1d(pool, tr)
        if len(tr) < P.data.num_clients or len(te) == 0:
            raise ValueError(f"{variant} shadow {k} gets {len(tr)} training / {len(te)} held-out records from a "
                             f"pool of {len(pool)}: too few for {P.data.num_clients} clients")
        sds = data.Dataset(name=f"{ds.name}-shadow-{variant}{k}", kind=ds.kind, x_train=_take(x_all, tr),
                           y_train=y_all[tr], x_test=_take(x_all, te), y_test=y_all[te],
                           label_names=ds.label_names, meta={"mia_shadow": variant, "index": k})
        res = fl.run(P, method=method, seed=rngmod.int_seed(seed, f"mia-shadow-{variant}", k) % 2**31,
                     progress=False, dataset=sds)
        logp = sc.log_softmax(model_logits(bundle, res.final_weights, _take(x_all, query),
                                           batch_size=P.train.eval_batch_size))
        phi[k] = sc.logit_confidence(logp, y_all[query])
        shadow_in[k] = np.isin(query, tr)
    return phi, shadow_in, [int(len(t)) for t in sets]


def _check_result(result: RunResult, *, P: Params, method: str, seed: int, ds: Dataset) -> None:
    rec = result.record
    checks = {"method": (rec.get("method"), method), "seed": (rec.get("seed"), seed),
              "params_digest": (rec.get("params_digest"), P.digest()),
              "n_train": (rec.get("dataset", {}).get("n_train"), len(ds.y_train)),
              "n_test": (rec.get("dataset", {}).get("n_test"), len(ds.y_test))}
    bad = {k: v for k, v in checks.items() if v[0] != v[1]}
    if bad:
        raise ValueError(f"result does not match the requested run (got, expected): {bad}")
    if result.final_weights is None:
        raise ValueError("result.final_weights is None: the run kept no final model")


def evaluate_run(P: Params, *, method: str, seed: int, result: RunResult | None = None,
                 dataset: Dataset | None = None, config: MIAConfig | None = None,
                 progress: bool = False) -> MIAReport:
    """Attack one federated run: the paper's four attacks plus LiRA, on balanced members / non-members.

    Args:
        P: :class:`medhe.params.Params` of the target run (also used for every shadow).
        method: Federated method of the target (a name in ``medhe.fl.METHODS``).
        seed: Trial seed of the target; every draw of the evaluation derives from it.
        result: The target's :class:`medhe.fl.RunResult`; None trains it here.
        dataset: The data set the target trained on; None loads the one ``P`` names.
        config: :class:`MIAConfig`; None uses the defaults.
        progress: Show the target run's progress bar (when trained here).

    Returns:
        The :class:`MIAReport`.

    Raises:
        ValueError: If ``result`` was not produced by ``(P, method, seed, dataset)``, or the
            data set is too small for the balanced split or the shadow pools.
    """
    from medhe import fl
    from medhe.fl.simulate import load_dataset

    cfg = config or MIAConfig()
    ds = load_dataset(P) if dataset is None else dataset
    if result is None:
        result = fl.run(P, method=method, seed=seed, progress=progress, dataset=ds)
    _check_result(result, P=P, method=method, seed=seed, ds=ds)
    n_train = len(ds.y_train)
    max_per_side = cfg.max_per_side
    if "offline" in cfg.lira:  # leave a pool of n_train + 1 unattacked records for the offline shadows
        cap = (n_train + len(ds.y_test) - n_train - 1) // 2  # pool = n_all - 2 m >= n_train + 1
        max_per_side = cap if max_per_side is None else min(max_per_side, cap)
    split = membership_split(n_train, len(ds.y_test), seed=seed, calibration_fraction=cfg.calibration_fraction,
                             max_per_side=max_per_side)
    query = split.global_indices(n_train)
    x_all, y_all = _all_records(ds)
    bundle = _bundle(P, ds, seed=seed)
    logits = model_logits(bundle, result.final_weights, _take(x_all, query), batch_size=P.train.eval_batch_size)
    inp = _input_from_logits(logits, y_all[query], n_members=len(split.members))
    m = len(split.members)
    target_phi = sc.logit_confidence(sc.log_softmax(logits), y_all[query])
    extra: dict[str, np.ndarray] = {}
    pools: dict[str, int] = {}
    train_sizes: dict[str, list[int]] = {}
    out_counts: dict[str, dict[str, int]] = {}
    shadow_method = cfg.shadow_method or method
    for variant in cfg.lira:
        everything = np.arange(len(y_all))
        offline = variant == "offline"
        pool = np.setdiff1d(everything, query) if offline else everything
        phi, shadow_in, train_sizes[variant] = shadow_phi(
            P, method=shadow_method, seed=seed, variant=variant, ds=ds, pool=pool, query=query, bundle=bundle,
            config=cfg, train_size=n_train if offline else None)
        out = (~shadow_in).sum(axis=0)
        out_counts[variant] = {"calibration_min": int(out[split.calibration].min()),
                               "evaluation_min": int(out[~split.calibration].min())}
        if offline:
            if shadow_in.any():  # the design guarantees this; check it anyway
                raise RuntimeError("an offline shadow trained on an attacked record")
            extra["lira_offline"] = lr.lira_offline(target_phi, phi, shadow_in, fixed_variance=cfg.fixed_variance)
        else:
            extra["lira_online"] = lr.lira_online(target_phi, phi, shadow_in, fixed_variance=cfg.fixed_variance)
        pools[variant] = int(len(pool))
    results = run_attacks(inp, calibration=split.calibration, seed=seed, config=cfg, extra_scores=extra)
    pred = logits.argmax(axis=1) == y_all[query]
    info = {"n_train": n_train, "n_test": len(ds.y_test), "dataset": ds.name,
            "member_accuracy": float(pred[:m].mean()), "nonmember_accuracy": float(pred[m:].mean()),
            "target_final": {k: v for k, v in result.final.items() if isinstance(v, (int, float, str))},
            "shadow_method": shadow_method if cfg.lira else None, "shadow_pool_sizes": pools,
            "target_train_size": n_train, "shadow_train_sizes": train_sizes, "shadow_out_counts": out_counts,
            "roc_tpr_at_fpr": "step ROC (best TPR with FPR <= target), NaN below the FPR resolution",
            "shadow_design": "offline: pool = all records minus every attacked record, each shadow trains on as "
                             "many records as the target (every attacked record OUT for every shadow); online: "
                             "pool = all records, each record IN for round(keep * n_shadows) shadows"}
    return MIAReport(method=method, seed=seed, results=results, n_members=m, n_nonmembers=len(split.nonmembers),
                     config=cfg, info=info)


def write_report(report: MIAReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``mia.csv`` (one row per attack), ``roc.csv`` (tidy ROC) and ``mia.json``; no pickle."""
    from medhe import records

    out = Path(out_dir)
    return {"mia.csv": records.write_csv(out / "mia.csv", report.to_frame().to_dict("records")),
            "roc.csv": records.write_csv(out / "roc.csv", report.roc_frame().to_dict("records")),
            "mia.json": records.write_json(out / "mia.json", report.to_dict())}


def config_from_params(mia: Any) -> MIAConfig:
    """:class:`MIAConfig` from the ``mia`` section of ``params.yaml`` (:class:`medhe.params.MIAParams`)."""
    return MIAConfig(n_bootstrap=mia.n_bootstrap, lira=tuple(mia.lira), n_shadows=mia.n_shadows,
                     shadow_method=mia.shadow_method, max_per_side=mia.max_per_side)
