"""Federated simulation: FedAvg and every MedHE variant, one loop.

Implementation based on McMahan et al., "Communication-Efficient Learning of Deep
Networks from Decentralized Data" (https://arxiv.org/abs/1602.05629), with the
client-side steps of MedHE (arXiv 2511.09043) composed from a
:class:`~medhe.fl.methods.MethodSpec`.

Each round: every client starts from the global model, trains locally (Adam, a
fresh optimiser), forms its update (model delta); then, as the method says,
top-k with error feedback and the EMA threshold (or, under the ``global`` alignment,
at the round's public mask), L2 clipping (the paper's fixed bound, or an adaptive
one that tracks the clients' norms: :func:`clip_server`), its share of the
distributed Gaussian noise, and the transport (plaintext, CKKS or BFV). The server
adds the (weighted) messages; the clients apply the mean update. The exchange runs the protocol's roles
(:mod:`medhe.fl.client`, :mod:`medhe.fl.server`) through the in-process engine
(:mod:`medhe.fl.engines.inprocess`), every message counted in the byte ledger. The test set is
evaluated after every round (round 0 = the initial model); with a target macro-F1
the run stops at the first round that reaches it (from ``min_rounds`` on).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medhe import comm, data, model, records
from medhe.fl import methods
from medhe.fl.client import Client  # noqa: F401  (the client role; re-exported)
from medhe.fl.methods import MethodSpec
from medhe.fl.transport import GaussianShares, PlainTransport, SkellamShares
from medhe.params import Params


@dataclass
class RunResult:
    """What one run produced: per-round history, run record, and the byte ledger."""

    history: list[dict[str, Any]]
    record: dict[str, Any]
    ledger: comm.ByteLedger
    final_weights: np.ndarray | None = field(default=None, repr=False)

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1]


class _Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.totals[phase] = self.totals.get(phase, 0.0) + seconds


def make_transport(spec: MethodSpec, P: Params, *, size: int, num_clients: int, module=None):
    """The transport a method names (plaintext, or CKKS with its packing and alignment); ``module``
    locates the classifier head for ``encrypted_part='head'``."""
    alignment = spec.alignment or P.sparsify.alignment
    if spec.encrypted_part == "head":
        from medhe.fl.split_transport import split_transport

        return split_transport(P, module=module, size=size, num_clients=num_clients)
    if spec.encryption == "none":
        return PlainTransport(size=size, alignment=alignment)
    if spec.encryption == "bfv":
        from medhe.bfv import BFVParams
        from medhe.fl.bfv_transport import BFVTransport

        b = P.bfv
        cfg = BFVParams(poly_modulus_degree=b.poly_modulus_degree, coeff_mod_bit_sizes=b.coeff_mod_bit_sizes,
                        plain_modulus_bits=b.plain_modulus_bits, value_bits=b.value_bits, security_level=b.security_level)
        return BFVTransport(cfg, size=size, alignment=alignment, clip_norm=P.dp.clip_norm, num_clients=num_clients,
                            range_factor=P.quant.range_factor, noise_sigmas=P.quant.noise_sigmas)
    from medhe.fl.ckks_transport import CKKSTransport

    return CKKSTransport(P.ckks, size=size, packing=spec.packing, alignment=alignment,
                         clip_norm=P.dp.clip_norm, num_clients=num_clients, range_factor=P.quant.range_factor,
                         noise_sigmas=P.quant.noise_sigmas)


def clip_server(spec: MethodSpec, P: Params):
    """The server's clip-bound role (:class:`medhe.fl.server.ClipServer`): the paper's fixed ``dp.clip_norm``,
    or adaptive (:mod:`medhe.clipping`).

    Under ``adaptive`` the bound is public and travels: clients report their norms once to calibrate it
    (when ``clip.initial`` is null), then one bit each per round (unclipped or not); the server broadcasts
    the next bound. Those messages are serialised and counted (category ``clip``;
    :func:`medhe.fl.engines.inprocess.clip_bound` and :func:`~medhe.fl.engines.inprocess.clip_step`).
    """
    from medhe.fl.server import make_clip_server

    return make_clip_server(spec, P)


def record_level_summary(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """Run-record entry of record-level DP from each client's statement (``RecordLevelDP.statement()``):
    the largest epsilon over clients and every statement."""
    return {"epsilon_max": max(s["epsilon"] for s in statements), "delta": statements[0]["delta"],
            "accountant": statements[0]["accountant"], "post_processing": statements[0]["post_processing"],
            "clients": statements}


def aggregation_weights(spec: MethodSpec, P: Params, sizes: list[int]) -> list[float]:
    """FedAvg's size weights for non-DP methods; DP-FedAvg's fixed public denominator 1/n for DP ones.

    See :func:`medhe.privacy.aggregation_weights` (n = ``P.data.num_clients``).
    """
    from medhe.privacy import aggregation_weights as weights_for

    return weights_for(sizes, dp=spec.noise, num_public=P.data.num_clients)


def _noise_fn(spec: MethodSpec, P: Params, *, seed: int, round_: int,
              weights: list[float]) -> GaussianShares | SkellamShares | None:
    if not spec.noise or P.dp.noise_multiplier == 0:
        return None
    from medhe.privacy import noise_std_per_client, sensitivity_fixed_denominator

    # The released mean is sum_i clip(x_i) / n with the public n: sensitivity C / n under add/remove
    # one client; each of the clients present adds N(0, (z * C / n)^2 / len(weights)).
    sensitivity = sensitivity_fixed_denominator(clip_norm=P.dp.clip_norm, num_public=P.data.num_clients)
    if not np.allclose(weights, 1.0 / P.data.num_clients, rtol=1e-12, atol=0):
        raise ValueError(f"DP noise is calibrated to the fixed-denominator mean (weights 1/{P.data.num_clients}), "
                         f"got weights {list(weights)!r}; use simulate.aggregation_weights")
    if spec.dp_mechanism == "skellam":  # integer shares; the transport fixes the integer scale
        return SkellamShares(noise_multiplier=P.dp.noise_multiplier, sensitivity=sensitivity, seed=seed,
                             round_=round_)
    std = noise_std_per_client(noise_multiplier=P.dp.noise_multiplier, sensitivity=sensitivity,
                               num_clients=len(weights))
    return GaussianShares(std=std, seed=seed, round_=round_)


def quantised_noise(spec: MethodSpec, P: Params) -> str | None:
    """How a DP method's clients round their noisy shares (None: no per-client rounding).

    Packed CKKS and BFV quantise each client's weighted value plus its Gaussian share to a few
    bits before encryption, so the released sum is not the Gaussian-noised sum and the Gaussian
    accountant does not cover it (:func:`medhe.privacy.privacy_statement`, ``quantised``).
    Plaintext and unpacked CKKS release the Gaussian-noised sum.
    """
    if not spec.noise or spec.dp_mechanism == "skellam":
        return None
    if spec.encryption == "bfv":
        return f"BFV, {P.bfv.value_bits}-bit values"
    if spec.packing:
        return f"packed CKKS, {P.ckks.pack_bits}-bit values"
    return None


def _make_accountant(spec: MethodSpec, P: Params):
    """The accountant of a DP method: Gaussian (RDP and PLD) or Skellam (RDP bound); None without DP."""
    if not spec.noise:
        return None
    if spec.dp_mechanism == "skellam":
        from medhe.skellam import SkellamAccountant

        return SkellamAccountant(delta=P.dp.delta)
    from medhe.privacy import ClientLevelAccountant

    return ClientLevelAccountant(noise_multiplier=P.dp.noise_multiplier, sampling_rate=1.0, delta=P.dp.delta)


def _epsilon_columns(accountant, spec: MethodSpec, P: Params, row: dict[str, Any]) -> dict[str, Any]:
    """Account one round; history columns: epsilon where an accountant covers the mechanism, else NaN and why."""
    if spec.dp_mechanism == "skellam":
        if "skellam_variance" in row:  # z > 0: the transport reports the round's integer sensitivity and variance
            accountant.add_round(l2=row["skellam_l2_sensitivity"], l1=row["skellam_l1_sensitivity"],
                                 variance=row["skellam_variance"])
            eps = accountant.epsilon()
        else:
            eps = float("inf")
        return {"epsilon_rdp": eps, "epsilon_pld": float("nan"),
                "epsilon_status": "Skellam accountant (RDP bound, Agarwal, Kairouz & Liu 2021)"}
    accountant.step()
    quantised = quantised_noise(spec, P)
    if quantised is not None:
        from medhe.privacy import NOT_COVERED

        return {"epsilon_rdp": float("nan"), "epsilon_pld": float("nan"),
                "epsilon_status": f"{NOT_COVERED}: Gaussian shares rounded per client ({quantised})"}
    return {"epsilon_rdp": accountant.epsilon(accountant="rdp"), "epsilon_pld": accountant.epsilon(accountant="pld"),
            "epsilon_status": "Gaussian accountant (RDP, PLD)"}


def load_dataset(P: Params) -> data.Dataset:
    """The data set ``P.data`` names (the split is fixed by ``P.seed``, not by the trial seed)."""
    options = {"druglib": {"raw_dir": P.data.raw_dir}, "breast_cancer": {"seed": P.seed}}.get(P.data.dataset, {})
    return data.load(P.data.dataset, max_train=P.data.max_train, max_test=P.data.max_test, **options)


def load_inputs(P: Params, *, seed: int, dataset: data.Dataset | None = None):
    """Data set (``dataset`` or the one ``P`` names), client partition and model, ready for training."""
    ds = load_dataset(P) if dataset is None else dataset
    alpha = P.data.dirichlet_alpha if P.data.partition == "dirichlet" else None
    parts = data.partition(ds.y_train, scheme=P.data.partition, num_clients=P.data.num_clients,
                           alpha=alpha, seed=seed)
    in_features = None if ds.kind == "text" else int(np.asarray(ds.x_train).shape[1])
    if (ds.kind == "text") != (P.model.name != "mlp"):
        raise ValueError(f"model {P.model.name!r} does not fit the {ds.kind} data set {P.data.dataset!r}: "
                         "use model.name=mlp for breast_cancer and a text model otherwise")
    bundle = model.build(P.model, seed=seed, in_features=in_features, device=P.train.device)
    return ds, parts, bundle


def _evaluate(bundle, test_inputs, y_test, P: Params) -> dict[str, float]:
    return model.evaluate(bundle.module, test_inputs, y_test, batch_size=P.train.eval_batch_size)


def run(P: Params, *, method: str, seed: int | None = None, out_dir: str | Path | None = None,
        progress: bool = True, dataset: data.Dataset | None = None,
        target_macro_f1: float | None = None, min_rounds: int = 1) -> RunResult:
    """Run one federated training and (if ``out_dir``) write history.csv, metrics.json, run.json.

    Args:
        P: all parameters.
        method: a name in :data:`medhe.fl.methods.METHODS`.
        seed: overrides ``P.seed``; every random draw of the run derives from it.
        out_dir: folder for the results (created); None keeps results in memory only.
        progress: show a tqdm bar over clients and rounds.
        dataset: train and test on this :class:`medhe.data.Dataset` instead of the one
            ``P.data`` names (e.g. a shadow model's split for membership inference).
        target_macro_f1: stop after the first round, from ``min_rounds`` on, whose test macro-F1
            reaches it (``train.rounds`` is then the budget); None runs every round.
        min_rounds: with a target, run at least this many rounds (e.g. the paper's 3, so that
            its comparison stays measurable).
    """
    if target_macro_f1 is not None and not (0 < target_macro_f1 <= 1):
        raise ValueError(f"target_macro_f1 must be in (0, 1] or None, got {target_macro_f1!r}")
    if not (isinstance(min_rounds, int) and min_rounds >= 1):
        raise ValueError(f"min_rounds must be an integer >= 1, got {min_rounds!r}")
    import torch

    spec = methods.get(method)
    seed = P.seed if seed is None else seed
    torch.set_num_threads(P.train.torch_threads)
    wall0 = time.perf_counter()
    timer = _Timer()
    t = time.perf_counter()
    ds, parts, bundle = load_inputs(P, seed=seed, dataset=dataset)
    train_inputs, test_inputs = bundle.encode(ds.x_train), bundle.encode(ds.x_test)
    timer.add("setup", time.perf_counter() - t)
    w = model.get_flat(bundle.module)
    w0 = w.copy()
    size = int(w.size)
    sizes = [len(p) for p in parts]
    weights = aggregation_weights(spec, P, sizes)
    clients = [Client(i, idx, spec=spec, P=P, size=size) for i, idx in enumerate(parts)]
    clip = clip_server(spec, P)
    transport = make_transport(spec, P, size=size, num_clients=len(clients), module=bundle.module)
    ledger = comm.ByteLedger()
    transport.setup(ledger, num_clients=len(clients))
    accountant = _make_accountant(spec, P)
    base = {"method": method, "seed": seed}
    t = time.perf_counter()
    history = [{**base, "round": 0, **_evaluate(bundle, test_inputs, ds.y_test, P),
                "bytes_up_per_client": 0.0, "bytes_down_per_client": 0.0, "model_change_l2": 0.0}]
    timer.add("evaluate", time.perf_counter() - t)
    bar = _progress(progress, total=P.train.rounds * len(clients), desc=f"{method} s{seed}")
    last_update = None  # the previous round's decrypted mean update: public to every client
    reached = None
    for r in range(1, P.train.rounds + 1):
        mask = _global_mask(spec, P, seed=seed, round_=r, size=size, last_update=last_update)
        row = _one_round(r, w, bundle=bundle, clients=clients, train_inputs=train_inputs, ds=ds, P=P,
                         spec=spec, seed=seed, weights=weights, transport=transport, ledger=ledger,
                         timer=timer, bar=bar, clip=clip, mask=mask)
        last_update = row.pop("_update")
        w = row.pop("_weights")
        # sanity: a method whose aggregate is always zero (e.g. everything quantised to 0) never moves
        row["model_change_l2"] = float(np.linalg.norm(w.astype(np.float64) - w0))
        t = time.perf_counter()
        model.set_flat(bundle.module, w)
        row.update(_evaluate(bundle, test_inputs, ds.y_test, P))
        timer.add("evaluate", time.perf_counter() - t)
        if accountant is not None:
            row.update(_epsilon_columns(accountant, spec, P, row))
        history.append({**base, "round": r, **row})
        if target_macro_f1 is not None and reached is None and row["f1_macro"] >= target_macro_f1:
            reached = r
        if reached is not None and r >= min_rounds:
            break
    if bar is not None:
        bar.close()
    record = _record(P, spec, seed=seed, ds=ds, sizes=sizes, size=size, timer=timer, ledger=ledger,
                     wall=time.perf_counter() - wall0, accountant=accountant, rounds=len(history) - 1)
    if target_macro_f1 is not None:
        record["target"] = {"macro_f1": float(target_macro_f1), "reached_round": reached,
                            "round_budget": P.train.rounds}
    if spec.record_dp:
        record["privacy_record_level"] = record_level_summary([c.private.statement() for c in clients])
    result = RunResult(history, record, ledger, final_weights=w)
    if out_dir is not None:
        write(result, out_dir)
    return result


def _global_mask(spec: MethodSpec, P: Params, *, seed: int, round_: int, size: int,
                 last_update: np.ndarray | None) -> np.ndarray | None:
    """The round's public mask under ``global`` alignment (None otherwise); every client derives it alike."""
    if spec.alignment != "global":
        return None
    from medhe import rng as rngmod
    from medhe.sparsify import global_mask, num_kept

    gen = rngmod.generator(seed, "global-mask", round_)  # a public seed: the server may know it too
    return global_mask(last_update, size=size, k=num_kept(size, sparsity=P.sparsify.sparsity),
                       explore=P.sparsify.global_explore, rng=gen)


def _one_round(r, w, *, bundle, clients, train_inputs, ds, P, spec, seed, weights, transport, ledger, timer, bar,
               clip, mask=None):
    payloads, infos = [], []
    t_train = t_sparsify = 0.0
    for c in clients:
        t = time.perf_counter()
        model.set_flat(bundle.module, w)
        sub = _subset(train_inputs, c.indices)
        stats = model.train_local(bundle.module, sub, ds.y_train[c.indices], epochs=P.train.local_epochs,
                                  batch_size=P.train.batch_size, lr=P.train.lr, seed=seed, client=c.cid, round_=r,
                                  private=c.private)
        delta = model.get_flat(bundle.module) - w
        t_train += time.perf_counter() - t
        t = time.perf_counter()
        payload, info = c.prepare(delta, mask=mask)
        t_sparsify += time.perf_counter() - t
        info.update(stats)
        payloads.append(payload)
        infos.append(info)
        if bar is not None:
            bar.update(1)
    norms = [i["sent_norm_before_clip"] for i in infos]
    clip_row: dict[str, float] = {"sent_norm_before_clip": float(np.mean(norms))}
    if spec.clip:
        from medhe.clipping import clip_fraction_removed

        from medhe.fl.engines import inprocess

        t = time.perf_counter()
        ids = [c.cid for c in clients]
        bound = inprocess.clip_bound(clip, norms, clients=ids, ledger=ledger, round_=r)
        payloads = [c.clip(p, bound=bound) for c, p in zip(clients, payloads)]
        if hasattr(transport, "clip_norm"):
            transport.clip_norm = bound  # the round's public bound sizes the quantisation range
        inprocess.clip_step(clip, norms, bound=bound, clients=ids, ledger=ledger, round_=r)
        t_sparsify += time.perf_counter() - t
        clip_row.update({"clip_norm": float(bound),
                         "clip_removed_frac": float(np.mean([clip_fraction_removed(n, bound) for n in norms])),
                         "clipped_clients_frac": float(np.mean([n > bound for n in norms]))})
    noise = _noise_fn(spec, P, seed=seed, round_=r, weights=weights)
    res = transport.round(payloads, weights=weights, noise=noise, ledger=ledger, round_=r)
    t = time.perf_counter()
    for c, fb in zip(clients, getattr(res, "feedback", None) or []):
        c.absorb(fb)  # quantisation error back into the error-feedback residual
    t_absorb = time.perf_counter() - t
    timings = {"local_training": t_train, "sparsify_clip": t_sparsify, **res.timings}
    if res.feedback:
        timings["quantise"] = timings.get("quantise", 0.0) + t_absorb
    for phase, sec in timings.items():
        timer.add(phase, sec)
    row: dict[str, Any] = {
        "_weights": (w + res.mean_update).astype(np.float32),
        "_update": res.mean_update,
        "bytes_up_per_client": ledger.per_client_round(round_=r, direction="up"),
        "bytes_down_per_client": ledger.per_client_round(round_=r, direction="down"),
        "density": float(np.mean([i["density"] for i in infos])),
        "train_loss": float(np.mean([i["train_loss"] for i in infos])),
        "update_norm": float(np.mean([i["update_norm"] for i in infos])),
        **clip_row,
        **{f"time_{k}": v for k, v in timings.items()},
        **res.info,
    }
    for cat, n in ledger.breakdown(round_=r, direction="up").items():
        row[f"bytes_up_{cat}"] = n / len(clients)
    if spec.record_dp:  # per client over its own records; top-k, EF and encryption are post-processing
        row["epsilon_record_max"] = max(c.private.epsilon() for c in clients)
    return row


def _subset(inputs, idx: np.ndarray):
    if isinstance(inputs, dict):
        return {k: v[idx] for k, v in inputs.items()}
    return inputs[idx]


def _progress(enabled: bool, *, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="client-round", leave=False)


def _record(P: Params, spec: MethodSpec, *, seed, ds, sizes, size, timer, ledger, wall, accountant, rounds):
    rec: dict[str, Any] = {
        "method": spec.name, "method_spec": spec.__dict__, "seed": seed, "params": P.to_dict(),
        "params_digest": P.digest(), "dataset": data.summary(ds), "client_sizes": sizes,
        "num_params": size, "wall_time_s": wall, "time_per_phase_s": timer.totals,
        "bytes_setup": ledger.total(round_=0), "environment": records.environment(),
        "device": str(model.resolve_device(P.train.device)),
    }
    if accountant is not None:
        rec["privacy"] = privacy_record(P, spec, seed=seed, sizes=sizes, rounds=rounds, accountant=accountant)
    return rec


def privacy_record(P: Params, spec: MethodSpec, *, seed: int, sizes: list[int], rounds: int,
                   accountant) -> dict[str, Any]:
    """The run record's ``privacy`` entry of a DP method after ``rounds`` rounds (any engine)."""
    from medhe.privacy import ESTIMATOR, privacy_statement, sensitivity_fixed_denominator

    weights = aggregation_weights(spec, P, sizes)
    noise = _noise_fn(spec, P, seed=seed, round_=1, weights=weights)
    out = privacy_statement(
        noise_multiplier=P.dp.noise_multiplier, clip_norm=P.dp.clip_norm, rounds=rounds,
        delta=P.dp.delta, sampling_rate=1.0, num_clients=len(sizes), estimator=ESTIMATOR,
        sensitivity=sensitivity_fixed_denominator(clip_norm=P.dp.clip_norm, num_public=P.data.num_clients),
        # Skellam: no Gaussian epsilon (its fields are replaced below); skip its accounting
        quantised="integer Skellam shares" if spec.dp_mechanism == "skellam" else quantised_noise(spec, P))
    out["aggregation_weights"] = weights
    if spec.dp_mechanism == "skellam":
        from medhe.skellam import MECHANISM as SKELLAM

        out.update(
            mechanism=SKELLAM, epsilon_covered=True, epsilon_rdp=accountant.epsilon(),
            epsilon_pld="not computed (RDP bound only)", skellam=accountant.state_dict(),
            noise_std_per_client="integer Skellam shares of variance (z * D2)^2 / n per round, "
                                 "D2 = the round's integer L2 sensitivity (see skellam.rounds)",
            noise_std_of_sum=None,
            noise_source=out["noise_source"].replace("'dp-noise'", "'dp-noise-skellam'"))
    else:
        # the std every client's GaussianShares draws with (0 when z = 0)
        out["noise_std_per_client"] = 0.0 if noise is None else noise.std
    return out


def write(result: RunResult, out_dir: str | Path) -> Path:
    """Write history.csv, metrics.json (final round, flat), run.json and bytes.csv."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records.write_csv(out / "history.csv", result.history)
    records.write_json(out / "metrics.json", result.final)
    records.write_json(out / "run.json", result.record)
    records.write_csv(out / "bytes.csv", result.ledger.rows or [{"round": 0, "bytes": 0}])
    return out
