"""The MedHE ClientApp (Flower 1.42 Message API): one site's side of the protocol.

Handlers, routed by message type (``<category>.<action>``):

* ``query.setup``: read the run's parameters from the message, load this site's partition
  (node config ``data-file``) and key (``key-file``), build the initial model from the run seed,
  reply with the number of training records; partition 0 also sends the public setup bytes
  (a key-less CKKS context or the BFV parameters) and the initial model's test metrics;
* ``train.encode``: local training, top-k with error feedback, clipping; reply with the index set
  (``union`` alignment) or with the value ciphertexts;
* ``train.values``: (``union``) gather at the union, weight, noise share, quantise, encrypt; reply
  with the ciphertexts;
* ``train.apply``: decrypt the server's sum, apply the mean update; reply with a digest of the new
  weights (the server checks that every site holds the same model) and, on partition 0, the test metrics.
  The next round's ``encode`` rides on the same message (record ``next``; replies ``next-index`` or
  ``next-values``), and after the last round the final model (record ``export``), saving a hop each;
* ``query.weights``: the final weights, only if the run asks for them (``export-model``; tests and
  experiments compare models; in a real deployment the model stays at the sites).

All state lives in ``context.state`` (:mod:`medhe.flower.state`); the client refuses a step whose
state is missing (e.g. the SuperNode restarted between rounds and lost it), which fails the run with
a message naming the site, instead of continuing from a fresh residual or model.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from medhe.flower import roles
from medhe.flower import state as st

app = ClientApp()


class StateLost(RuntimeError):
    """The site has no state for the step it is asked to run (restart, or a message out of order)."""


def _cfg(ctx: Context) -> dict:
    if "medhe.run" not in ctx.state:
        raise StateLost(f"partition {ctx.node_config.get('partition-id')}: no run state (the SuperNode restarted "
                        "after set-up and lost its context.state?); refusing to continue from a fresh model")
    return dict(ctx.state["medhe.run"])


def _params(cfg: dict):
    from medhe import params

    return params.load_dict(json.loads(cfg["params-json"]))


def _partition(ctx: Context, cfg: dict):
    from medhe.flower.partitions import load_partition, partition_path

    pid = int(ctx.node_config["partition-id"])
    path = ctx.node_config.get("data-file") or partition_path(cfg["sim-data-dir"], pid)
    return load_partition(path, pid)


def _key_file(ctx: Context, cfg: dict) -> str | None:
    return ctx.node_config.get("key-file") or cfg.get("sim-key-file") or None


def _bundle(P, part, seed: int):
    import torch

    from medhe import model

    torch.set_num_threads(P.train.torch_threads)
    return model.build(P.model, seed=seed, in_features=part.in_features, device=P.train.device)


def _client(spec, P, part, size):
    from medhe.fl.simulate import Client

    return Client(part.partition_id, np.arange(part.num_examples), spec=spec, P=P, size=size)


def _sparsifier(spec, P, size):
    """The sparsifier :class:`medhe.fl.simulate.Client` builds, without importing the training loop."""
    from medhe.sparsify import TopKSparsifier

    return TopKSparsifier(size=size, sparsity=P.sparsify.sparsity, error_feedback=spec.error_feedback,
                          adaptive=spec.adaptive, ema_alpha=P.sparsify.ema_alpha)


def _digest(w: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(w, dtype=np.float32).tobytes()).hexdigest()


def _evaluate(P, bundle, part, w) -> dict[str, float]:
    from medhe import model

    model.set_flat(bundle.module, w)
    x = bundle.encode(part.x_test)
    return {k: float(v) for k, v in model.evaluate(bundle.module, x, part.y_test,
                                                   batch_size=P.train.eval_batch_size).items()}


def gaussian_shares(spec, P, *, seed: int, round_: int, weights: list[float]):
    """The round's seeded Gaussian shares, as :func:`medhe.fl.simulate._noise_fn` builds them (None
    without noise); kept here so that a ClientApp process need not import the training loop."""
    if not spec.noise or P.dp.noise_multiplier == 0:
        return None
    from medhe.fl.transport import GaussianShares
    from medhe.privacy import noise_std_per_client, sensitivity_fixed_denominator

    if not np.allclose(weights, 1.0 / P.data.num_clients, rtol=1e-12, atol=0):
        raise ValueError(f"DP noise is calibrated to the fixed-denominator mean (weights 1/{P.data.num_clients}), "
                         f"got weights {list(weights)!r}")
    sensitivity = sensitivity_fixed_denominator(clip_norm=P.dp.clip_norm, num_public=P.data.num_clients)
    std = noise_std_per_client(noise_multiplier=P.dp.noise_multiplier, sensitivity=sensitivity,
                               num_clients=len(weights))
    return GaussianShares(std=std, seed=seed, round_=round_)


def _noise(spec, P, cfg: dict, *, round_: int, weights: list[float]):
    """The round's noise shares: seeded (reproducible, as in-process) or from the OS CSPRNG."""
    noise = gaussian_shares(spec, P, seed=int(cfg["seed"]), round_=round_, weights=weights)
    if noise is not None and cfg["noise-source"] == "secure":
        from medhe.flower.secure_noise import SecureGaussianShares

        return SecureGaussianShares(std=noise.std)
    return noise


def _reply(msg: Message, **records) -> Message:
    return Message(RecordDict(records), reply_to=msg)


# ---------------------------------------------------------------------------- handlers


@app.query("setup")
def setup(msg: Message, context: Context) -> Message:
    from medhe.fl import methods
    from medhe.flower.keys import client_crypto, setup_bytes
    from medhe import model

    cfg = dict(msg.content["config"])
    forced = str(context.node_config.get("noise-source", "")).strip()
    if forced:  # a site may insist on secure noise; the run record says what each site used
        cfg["noise-source"] = forced
    P = _params(cfg)
    spec = methods.get(cfg["method"])
    roles.check_supported(spec, P)
    part = _partition(context, cfg)
    crypto = client_crypto(spec, P, _key_file(context, cfg))
    bundle = _bundle(P, part, int(cfg["seed"]))
    w = model.get_flat(bundle.module)
    context.state["medhe.run"] = ConfigRecord({**cfg, "round": 0, "step": "setup"})
    st.put_vectors(context.state, "medhe.model", w=w)
    for name in ("sparsifier.config", "sparsifier.arrays", "medhe.pending", "medhe.pending-config"):
        if name in context.state:
            del context.state[name]
    out = {"partition-id": part.partition_id, "num-examples": part.num_examples, "num-params": int(w.size),
           "noise-source": cfg["noise-source"], "digest": _digest(w)}
    records: dict = {"config": ConfigRecord(out)}
    if part.partition_id == 0:
        records["setup"] = st.blobs_record([setup_bytes(spec, P, crypto)])
        records["metrics"] = MetricRecord(_evaluate(P, bundle, part, w))
    return _reply(msg, **records)


def _begin_round(context: Context, rc):
    """Checks the client is where the server thinks it is (``rc``: the round's config); returns
    (cfg, round, weights)."""
    cfg = _cfg(context)
    r = int(rc["round"])
    if int(cfg["round"]) != r - 1 or cfg["step"] not in ("setup", "apply"):
        raise StateLost(f"partition {context.node_config.get('partition-id')}: asked for round {r} but its state "
                        f"is at round {cfg['round']} step {cfg['step']!r}; refusing")
    return cfg, r, [float(x) for x in rc["weights"]]


@app.train("encode")
def encode(msg: Message, context: Context) -> Message:
    return _reply(msg, **_encode(context, msg.content["config"]))


def _encode(context: Context, round_config) -> dict:
    """Train, sparsify, clip; the index set (``union``) or the value message, as records."""
    from medhe import model
    from medhe.fl import methods

    t0 = time.perf_counter()
    cfg, r, weights = _begin_round(context, round_config)
    P, spec, seed = _params(cfg), methods.get(cfg["method"]), int(cfg["seed"])
    part = _partition(context, cfg)
    bundle = _bundle(P, part, seed)
    w = st.get_vectors(context.state, "medhe.model")["w"]
    size = int(w.size)
    client = _client(spec, P, part, size)
    st.load_sparsifier(context.state, client.sparsifier)
    model.set_flat(bundle.module, w)
    stats = model.train_local(bundle.module, bundle.encode(part.x_train), part.y_train, epochs=P.train.local_epochs,
                              batch_size=P.train.batch_size, lr=P.train.lr, seed=seed, client=part.partition_id,
                              round_=r, private=None)
    delta = model.get_flat(bundle.module) - w
    payload, info = client.prepare(delta, mask=_global_mask(spec, P, context, seed=seed, round_=r, size=size))
    if spec.clip:
        payload = client.clip(payload, bound=P.dp.clip_norm)
    st.save_sparsifier(context.state, client.sparsifier)
    st.put_vectors(context.state, "medhe.pending", values=payload.values, indices=payload.indices)
    metrics = {**{k: float(v) for k, v in info.items()}, **{k: float(v) for k, v in stats.items()}}
    context.state["medhe.run"] = ConfigRecord({**cfg, "round": r, "step": "encode"})
    if roles.needs_union(spec, P):
        from medhe.ckks.sparse import encode_index_set

        idx = encode_index_set(payload.indices, length=size)
        metrics["client_seconds"] = time.perf_counter() - t0
        return {"index": st.blobs_record([idx]), "metrics": MetricRecord(metrics)}
    return _values(context, cfg, r, weights, union=None, metrics=metrics, t0=t0)


def _global_mask(spec, P, context: Context, *, seed: int, round_: int, size: int):
    if spec.alignment != "global":
        return None
    from medhe.fl.simulate import _global_mask as gm

    last = st.get_vectors(context.state, "medhe.last-update").get("u")
    return gm(spec, P, seed=seed, round_=round_, size=size, last_update=last)


def _expect_step(context: Context, *, round_: int, step: str, after: str) -> dict:
    """The site's run state, if it finished step ``after`` of ``round_``; else :class:`StateLost`."""
    cfg = _cfg(context)
    if int(cfg["round"]) != round_ or cfg["step"] != after:
        raise StateLost(f"partition {context.node_config.get('partition-id')}: {step} step of round {round_} but its "
                        f"state is at round {cfg['round']} step {cfg['step']!r}; refusing")
    return cfg


@app.train("values")
def values(msg: Message, context: Context) -> Message:
    from medhe.ckks.sparse import decode_index_set

    t0 = time.perf_counter()
    r = int(msg.content["config"]["round"])
    cfg = _expect_step(context, round_=r, step="values", after="encode")
    weights = [float(x) for x in msg.content["config"]["weights"]]
    union = decode_index_set(st.record_blobs(msg.content["union"])[0])
    return _reply(msg, **_values(context, cfg, r, weights, union=union, metrics={}, t0=t0))


def _values(context, cfg, r, weights, *, union, metrics, t0) -> dict:
    from medhe.fl import methods
    from medhe.fl.transport import Payload
    from medhe.flower.keys import client_crypto

    P, spec = _params(cfg), methods.get(cfg["method"])
    pid = int(context.node_config["partition-id"])
    pending = st.get_vectors(context.state, "medhe.pending")
    payload = Payload(values=pending["values"], indices=pending.get("indices"))
    size = int(st.get_vectors(context.state, "medhe.model")["w"].size)
    crypto = client_crypto(spec, P, _key_file(context, cfg))
    noise = _noise(spec, P, cfg, round_=r, weights=weights)
    enc = roles.encode(spec, P, crypto, payload=payload, cid=pid, weights=weights, union=union, noise=noise,
                       size=size)
    if enc.feedback is not None and spec.sparsify:  # quantisation error back into the residual
        sparsifier = _sparsifier(spec, P, size)
        st.load_sparsifier(context.state, sparsifier)
        sparsifier.absorb(*enc.feedback)
        st.save_sparsifier(context.state, sparsifier)
    st.put_vectors(context.state, "medhe.pending", union=enc.support)
    context.state["medhe.pending-config"] = ConfigRecord({"bound": enc.bound, "num-values": enc.num_values})
    context.state["medhe.run"] = ConfigRecord({**cfg, "round": r, "step": "values"})
    metrics.update(enc.info)
    metrics["client_seconds"] = metrics.get("client_seconds", 0.0) + time.perf_counter() - t0
    return {"values": st.blobs_record(enc.blobs), "metrics": MetricRecord(metrics)}


@app.train("apply")
def apply(msg: Message, context: Context) -> Message:
    from medhe.fl import methods
    from medhe.flower.keys import client_crypto

    t0 = time.perf_counter()
    r = int(msg.content["config"]["round"])
    cfg = _expect_step(context, round_=r, step="apply", after="values")
    P, spec = _params(cfg), methods.get(cfg["method"])
    w = st.get_vectors(context.state, "medhe.model")["w"]
    pending = st.get_vectors(context.state, "medhe.pending")
    pc = context.state["medhe.pending-config"]
    crypto = client_crypto(spec, P, _key_file(context, cfg))
    mean, info = roles.decode(spec, P, crypto, st.record_blobs(msg.content["sum"]),
                              num_values=int(pc["num-values"]), bound=float(pc["bound"]),
                              num_summed=int(msg.content["config"]["num-summed"]), union=pending.get("union"),
                              size=int(w.size))
    w = (w + mean).astype(np.float32)
    st.put_vectors(context.state, "medhe.model", w=w)
    if spec.alignment == "global":
        st.put_vectors(context.state, "medhe.last-update", u=mean)
    for name in ("medhe.pending", "medhe.pending-config"):
        del context.state[name]
    context.state["medhe.run"] = ConfigRecord({**cfg, "round": r, "step": "apply"})
    metrics = {**info, "client_seconds": time.perf_counter() - t0}
    if int(context.node_config["partition-id"]) == 0:
        part = _partition(context, cfg)
        metrics.update(_evaluate(P, _bundle(P, part, int(cfg["seed"])), part, w))
    records = {"config": ConfigRecord({"digest": _digest(w)}), "metrics": MetricRecord(metrics)}
    if "export" in msg.content:  # the last round: the final model (only if the run exports it)
        records.update(_export(cfg, w))
    if "next" in msg.content:  # the next round's first step rides on this message (one hop less)
        nxt = _encode(context, msg.content["next"])
        records.update({f"next-{k}": v for k, v in nxt.items()})
    return _reply(msg, **records)


def _export(cfg: dict, w: np.ndarray) -> dict:
    if str(cfg.get("export-model", "false")) != "true":
        raise PermissionError("this run does not export the model (run config export-model=false)")
    return {"model": ArrayRecord({"w": st.vector_array(w)})}


@app.query("weights")
def weights(msg: Message, context: Context) -> Message:
    return _reply(msg, **_export(_cfg(context), st.get_vectors(context.state, "medhe.model")["w"]))
