"""The MedHE ClientApp (Flower 1.42 Message API): one site's side of the protocol.

Every step runs the client role of :mod:`medhe.fl.client`, the code the in-process engine runs
(:class:`~medhe.fl.client.Client` for training state, a :class:`~medhe.fl.client.ClientCodec` from
:func:`~medhe.fl.client.make_codec` for the round), so every method of :data:`medhe.fl.methods.METHODS`
runs here and the same seed gives the same model. Handlers, routed by message type
(``<category>.<action>``):

* ``query.setup``: read the run's parameters from the message, load this site's partition
  (node config ``data-file``) and key (``key-file``), build the initial model from the run seed;
  reply with the number of training records, the model size and the classifier head's size (public:
  the architecture); partition 0 also sends the codec's public setup message (a key-less CKKS
  context or the BFV parameters) and the initial model's test metrics;
* ``train.encode`` (the round's config: ``round``, and ``plan`` and ``clip-bound`` when the server
  knows the round's clip bound): local training (DP-SGD under record-level DP), top-k with error
  feedback (:meth:`~medhe.fl.client.Client.prepare`, at the public mask under ``global`` alignment).
  If the method clips adaptively and the bound is not calibrated yet, reply with the update's norm
  (one float32, category ``clip``); else clip and *begin* (below);
* ``train.clip`` (the plan and the calibrated bound): clip and *begin*;
* *begin*: :meth:`~medhe.fl.client.ClientCodec.begin` with the public :class:`~medhe.fl.plan.RoundPlan`;
  reply with the unclipped bit (adaptive clipping) and, under ``union`` alignment, the index set;
  otherwise with the value messages of every block (and, under ``own``, the index set too);
* ``train.values`` (``union``; the union of the index sets): align, weight, noise share, quantise,
  encrypt; reply with the value messages of every block;
* ``train.apply`` (the server's sum, block by block): decrypt, finish the round
  (:meth:`~medhe.fl.client.ClientCodec.finish`), feed the quantisation error back into the residual,
  apply the mean update; reply with a digest of the new weights (the server checks that every site
  holds the same model) and the round's public facts; partition 0 adds the test metrics. The next
  round's ``encode`` rides on the same message (record ``next``; replies ``next-*``), and after the
  last round the final model (record ``export``) and the record-level DP statement, saving a hop each;
* ``query.weights``: the final weights, only if the run asks for them (``export-model``; tests and
  experiments compare models; in a real deployment the model stays at the sites).

All state lives in ``context.state`` (:mod:`medhe.flower.state`): the model, the
:meth:`~medhe.fl.client.Client.state_dict` (residual, EMA threshold, DP-SGD accountant) and, within
a round, the codec's :meth:`~medhe.fl.client.ClientCodec.round_state`. A client refuses a step whose
state is missing or out of order (e.g. the SuperNode restarted between rounds and lost it), which
fails the run with a message naming the site, instead of continuing from a fresh residual or model.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

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


def _digest(w: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(w, dtype=np.float32).tobytes()).hexdigest()


def _evaluate(P, bundle, part, w) -> dict[str, float]:
    from medhe import model

    model.set_flat(bundle.module, w)
    x = bundle.encode(part.x_test)
    return {k: float(v) for k, v in model.evaluate(bundle.module, x, part.y_test,
                                                   batch_size=P.train.eval_batch_size).items()}


def _reply(msg: Message, **records) -> Message:
    return Message(RecordDict(records), reply_to=msg)


class _Site:
    """One message's view of the site: parameters, method, key, and the roles rebuilt from ``context.state``."""

    def __init__(self, context: Context, cfg: dict | None = None) -> None:
        from medhe.fl import methods

        self.context = context
        self.cfg = _cfg(context) if cfg is None else cfg
        self.P = _params(self.cfg)
        self.spec = methods.get(self.cfg["method"])
        self.seed = int(self.cfg["seed"])
        self.pid = int(context.node_config["partition-id"])

    @property
    def state(self):
        return self.context.state

    def partition(self):
        return _partition(self.context, self.cfg)

    def keys(self):
        from medhe.flower.keys import client_keys

        return client_keys(self.spec, self.P, _key_file(self.context, self.cfg))

    def weights(self) -> np.ndarray:
        return st.get_vectors(self.state, "medhe.model")["w"]

    def head(self) -> np.ndarray | None:
        return st.get_vectors(self.state, "medhe.head").get("head")

    def codec(self):
        """This site's codec; the round's state so far restored from ``context.state``."""
        from medhe.fl.client import make_codec

        codec = make_codec(self.spec, self.P, self.keys(), client=self.pid, size=int(self.cfg["num-params"]),
                           num_clients=self.P.data.num_clients, head=self.head())
        codec.secure_noise = self.cfg["noise-source"] == "secure"
        saved = st.get_tree(self.state, "medhe.round")
        if saved is not None:
            codec.load_round_state(saved)
        return codec

    def client(self, num_examples: int):
        """The site's :class:`~medhe.fl.client.Client` with its state between rounds."""
        from medhe.fl.client import Client

        client = Client(self.pid, np.arange(num_examples), spec=self.spec, P=self.P, size=int(self.cfg["num-params"]))
        saved = st.get_tree(self.state, "medhe.client")
        if saved is not None:
            client.load_state_dict(saved)
        return client

    def set_step(self, round_: int, step: str) -> None:
        self.cfg.update({"round": round_, "step": step})
        self.state["medhe.run"] = ConfigRecord(self.cfg)

    def expect(self, *, round_: int, step: str, after: tuple[str, ...], state_round: int | None = None) -> None:
        """Refuse ``step`` of ``round_`` unless the site finished one of ``after`` in round ``state_round``
        (default ``round_``; :class:`StateLost`)."""
        want = round_ if state_round is None else state_round
        if int(self.cfg["round"]) != want or self.cfg["step"] not in after:
            raise StateLost(f"partition {self.pid}: {step} step of round {round_} but its state is at round "
                            f"{self.cfg['round']} step {self.cfg['step']!r}; refusing")


# ---------------------------------------------------------------------------- handlers


@app.query("setup")
def setup(msg: Message, context: Context) -> Message:
    from medhe import model
    from medhe.fl import methods
    from medhe.fl.client import make_codec

    cfg = dict(msg.content["config"])
    forced = str(context.node_config.get("noise-source", "")).strip()
    if forced:  # a site may insist on secure noise; the run record says what each site used
        cfg["noise-source"] = forced
    P = _params(cfg)
    spec = methods.get(cfg["method"])
    part = _partition(context, cfg)
    bundle = _bundle(P, part, int(cfg["seed"]))
    w = model.get_flat(bundle.module)
    head = None
    if spec.encrypted_part == "head":
        from medhe.fl.split_transport import head_indices

        head = head_indices(bundle.module)
    cfg.update({"num-params": int(w.size), "round": 0, "step": "setup"})
    st.drop(context.state, "medhe.client", "medhe.round", "medhe.pending", "medhe.last-update", "medhe.head",
            "medhe.model0")
    context.state["medhe.run"] = ConfigRecord(cfg)
    site = _Site(context, cfg)
    codec = make_codec(spec, P, site.keys(), client=part.partition_id, size=int(w.size),
                       num_clients=P.data.num_clients, head=head)
    st.put_vectors(context.state, "medhe.model", w=w)
    if head is not None:
        st.put_vectors(context.state, "medhe.head", head=head)
    out = {"partition-id": part.partition_id, "num-examples": part.num_examples, "num-params": int(w.size),
           "head-size": -1 if head is None else int(head.size), "noise-source": cfg["noise-source"],
           "digest": _digest(w)}
    records: dict = {"config": ConfigRecord(out)}
    if part.partition_id == 0:
        setup_msg = codec.setup_message()
        records["setup"] = st.blobs_record([] if setup_msg is None else [setup_msg])
        records["metrics"] = MetricRecord(_evaluate(P, bundle, part, w))
        st.put_vectors(context.state, "medhe.model0", w=w)  # model_change_l2, reported by partition 0
    return _reply(msg, **records)


@app.train("encode")
def encode(msg: Message, context: Context) -> Message:
    return _reply(msg, **_encode(context, msg.content["config"]))


def _encode(context: Context, round_config) -> dict:
    """Train, sparsify; then the norm (adaptive bound not calibrated) or, clipped, :func:`_begin`'s reply."""
    from medhe import model
    from medhe.fl.simulate import _global_mask

    t0 = time.perf_counter()
    site = _Site(context)
    r = int(round_config["round"])
    site.expect(round_=r, step="encode", after=("setup", "apply"), state_round=r - 1)
    P, spec = site.P, site.spec
    part = site.partition()
    bundle = _bundle(P, part, site.seed)
    w = site.weights()
    client = site.client(part.num_examples)
    model.set_flat(bundle.module, w)
    stats = model.train_local(bundle.module, bundle.encode(part.x_train), part.y_train, epochs=P.train.local_epochs,
                              batch_size=P.train.batch_size, lr=P.train.lr, seed=site.seed, client=site.pid,
                              round_=r, private=client.private)
    delta = model.get_flat(bundle.module) - w
    last = st.get_vectors(site.state, "medhe.last-update").get("u")
    mask = _global_mask(spec, P, seed=site.seed, round_=r, size=int(w.size), last_update=last)
    payload, info = client.prepare(delta, mask=mask)
    st.put_tree(site.state, "medhe.client", client.state_dict())
    metrics = {**{k: float(v) for k, v in info.items()}, **{k: float(v) for k, v in stats.items()}}
    if client.private is not None:
        metrics["epsilon_record"] = float(client.private.epsilon())
    st.put_tree(site.state, "medhe.pending", {"values": payload.values, "indices": payload.indices,
                                              "norm": info["sent_norm_before_clip"], "metrics": metrics})
    site.set_step(r, "encode")
    if spec.clip and "clip-bound" not in round_config:
        from medhe.fl.client import norm_message

        return {"clip": st.blobs_record([norm_message(info["sent_norm_before_clip"])]),
                "metrics": MetricRecord({**metrics, "client_seconds": time.perf_counter() - t0})}
    return _begin(site, round_config, t0=t0)


@app.train("clip")
def clip(msg: Message, context: Context) -> Message:
    t0 = time.perf_counter()
    site = _Site(context)
    site.expect(round_=int(msg.content["config"]["round"]), step="clip", after=("encode",))
    return _reply(msg, **_begin(site, msg.content["config"], t0=t0))


def _begin(site: _Site, round_config, *, t0: float) -> dict:
    """Clip at the round's bound, begin the round with the plan; the index set (``union``) or the values."""
    from medhe.fl.client import unclipped_bit_message
    from medhe.fl.plan import RoundPlan
    from medhe.fl.transport import Payload

    r = int(round_config["round"])
    pending = st.get_tree(site.state, "medhe.pending")
    payload = Payload(values=pending["values"], indices=pending["indices"])
    metrics = dict(pending["metrics"])
    records: dict = {}
    if site.spec.clip:
        from medhe.fl.client import Client

        bound = float(round_config["clip-bound"])
        payload = Client.clip(payload, bound=bound)
        if site.spec.clip_mode == "adaptive":
            records["clip"] = st.blobs_record([unclipped_bit_message(float(pending["norm"]), bound)])
    st.drop(site.state, "medhe.pending")
    plan = RoundPlan.from_json(str(round_config["plan"]))
    codec = site.codec()
    index_msg = codec.begin(plan, payload)
    if index_msg is not None and codec.alignment == "union":
        records["index"] = st.blobs_record([index_msg])
        step = "begin"
    else:
        if index_msg is not None:  # own: the index set travels with the values
            records["index"] = st.blobs_record([index_msg])
        codec.receive_union(None)
        records.update(_value_records(codec))
        step = "values"
    st.put_tree(site.state, "medhe.round", codec.round_state())
    site.set_step(r, step)
    metrics["client_seconds"] = time.perf_counter() - t0
    records["metrics"] = MetricRecord(metrics)
    return records


def _value_records(codec) -> dict:
    """Every block's value messages as one record, with the blocks and their message counts."""
    blobs, counts, bounds = [], [], []
    for start, stop in codec.blocks():
        msgs = codec.encode(start, stop)
        blobs.extend(msgs)
        counts.append(len(msgs))
        bounds.extend([int(start), int(stop)])
    return {"values": st.blobs_record(blobs), "blocks": ConfigRecord({"bounds": bounds, "counts": counts})}


def split_blocks(blobs: list[bytes], blocks) -> list[tuple[tuple[int, int], list[bytes]]]:
    """The ``(start, stop)`` and messages of each block of a :func:`_value_records` reply."""
    bounds, counts = [int(x) for x in blocks["bounds"]], [int(c) for c in blocks["counts"]]
    if len(bounds) != 2 * len(counts) or sum(counts) != len(blobs):
        raise ValueError(f"{len(blobs)} messages do not split into blocks {bounds} with counts {counts}")
    out, i = [], 0
    for b, c in enumerate(counts):
        out.append(((bounds[2 * b], bounds[2 * b + 1]), blobs[i:i + c]))
        i += c
    return out


@app.train("values")
def values(msg: Message, context: Context) -> Message:
    t0 = time.perf_counter()
    site = _Site(context)
    r = int(msg.content["config"]["round"])
    site.expect(round_=r, step="values", after=("begin",))
    codec = site.codec()
    codec.receive_union(st.record_blobs(msg.content["union"])[0])
    records = _value_records(codec)
    st.put_tree(site.state, "medhe.round", codec.round_state())
    site.set_step(r, "values")
    return _reply(msg, **records, metrics=MetricRecord({"client_seconds": time.perf_counter() - t0}))


@app.train("apply")
def apply(msg: Message, context: Context) -> Message:
    t0 = time.perf_counter()
    site = _Site(context)
    r = int(msg.content["config"]["round"])
    site.expect(round_=r, step="apply", after=("values",))
    codec = site.codec()
    parts = [codec.decode(start, stop, blobs)
             for (start, stop), blobs in split_blocks(st.record_blobs(msg.content["sum"]), msg.content["blocks"])]
    res = codec.finish(np.concatenate(parts) if len(parts) != 1 else parts[0])
    part = site.partition()
    client = site.client(part.num_examples)
    client.absorb(res.feedback)  # quantisation error back into the error-feedback residual
    st.put_tree(site.state, "medhe.client", client.state_dict())
    w = (site.weights() + res.mean_update).astype(np.float32)
    st.put_vectors(site.state, "medhe.model", w=w)
    if site.spec.alignment == "global":
        st.put_vectors(site.state, "medhe.last-update", u=res.mean_update)
    st.drop(site.state, "medhe.round")
    site.set_step(r, "apply")
    metrics = {k: float(v) for k, v in res.info.items()}
    if site.pid == 0:
        w0 = st.get_vectors(site.state, "medhe.model0")["w"]
        metrics["model_change_l2"] = float(np.linalg.norm(w.astype(np.float64) - w0))
        metrics.update(_evaluate(site.P, _bundle(site.P, part, site.seed), part, w))
    metrics["client_seconds"] = time.perf_counter() - t0
    records = {"config": ConfigRecord({"digest": _digest(w)}), "metrics": MetricRecord(metrics)}
    if "export" in msg.content:  # the last round: the final model (only if the run exports it)
        records.update(_export(site.cfg, w))
    if "last" in msg.content and client.private is not None:
        records["record-dp"] = ConfigRecord({"statement": json.dumps(client.private.statement(), default=str)})
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
