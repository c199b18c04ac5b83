"""The MedHE ServerApp (Flower 1.42 Message API): the aggregator's round loop.

Flower's ``FedAvg`` averages plaintext arrays, so it cannot aggregate ciphertexts, and a ``union``
round needs more than one exchange; the ServerApp's ``main`` therefore drives its own loop with the
grid's ``send_and_receive``:

* set-up: every site reports its number of records; partition 0 sends the public setup bytes (a
  CKKS context without keys, or the BFV parameters), from which the :class:`~medhe.flower.roles.ServerAggregator`
  is built. The aggregation weights follow from the sizes (public, as in-process);
* per round: ``train.encode`` (index sets up under ``union``), ``train.values`` (union down,
  ciphertexts up), ``train.apply`` (the sum down). The server only adds. The next round's
  ``encode`` rides on ``apply`` (and the final model, if exported, on the last ``apply``), so a
  ``union`` round costs two hops after the first.

Every medhe payload (index sets, union, ciphertexts, setup) is counted in a
:class:`medhe.comm.ByteLedger` exactly as the in-process engine counts it; Flower's own serialised
objects (message heads, records, array chunks; content-addressed, so an identical broadcast is stored
once) are counted apart in ``wire.csv``.

Faults: a site that does not answer within ``step-timeout`` seconds, or answers with an error, fails
the round, and the run stops with an error naming the partition (:class:`RoundFailed`). Completing the
round over the sites that answered is not done: their noise shares were calibrated to ``n`` sites
(the sum would carry less noise than the accountant assumes), and the sites that answered have already
moved their quantisation error into their residuals and would need their sent values back.

Run config (``[tool.flwr.app.config]`` or ``--run-config``): ``params-file`` (JSON of the parameters),
``method``, ``seed``, ``out-dir``, ``export-model`` ("true": fetch the final model from partition 0),
``noise-source`` ("seeded": reproducible as in-process; "secure": OS CSPRNG), ``step-timeout``,
``nodes-timeout``, ``dump-messages`` (a folder: every record of every message, for inspection);
``sim-data-dir`` and ``sim-key-file`` only for simulation, where every virtual site
shares the machine.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from medhe.flower import roles
from medhe.flower import state as st

app = ServerApp()


class RoundFailed(RuntimeError):
    """A step of a round did not complete at every site; names the partitions."""


@app.main()
def main(grid: Grid, context) -> None:
    """``method`` may name several methods, comma-separated: run in turn, results in ``out-dir/<method>``."""
    config = dict(context.run_config)
    names = [m.strip() for m in str(config["method"]).split(",") if m.strip()]
    for name in names:
        out = config.get("out-dir")
        if len(names) > 1 and out:
            out = str(Path(out) / name)
        dump = config.get("dump-messages")
        if len(names) > 1 and dump:
            dump = str(Path(dump) / name)
        run(grid, {**config, "method": name, "out-dir": out, "dump-messages": dump})


POLL_SECONDS = 0.25  # Flower's own send_and_receive sleeps 3 s between pulls


def send_and_receive(grid: Grid, messages: list[Message], *, timeout: float,
                     liveness_every: float = 2.0) -> tuple[dict[int, Message], list[int]]:
    """:meth:`Grid.send_and_receive` with a short poll interval. Returns the replies by destination node
    (matched on the message they answer: an error reply the SuperLink writes for an unavailable node
    comes from the SuperLink, not from the node) and, early, the destination nodes that went offline
    while their reply was pending (a SuperNode stopped or restarted: its ``context.state`` is gone, so
    waiting for its reply is pointless)."""
    dst = [m.metadata.dst_node_id for m in messages]
    ids = list(grid.push_messages(messages))
    pending = dict(zip(ids, dst))
    end = time.monotonic() + timeout
    next_check = time.monotonic() + liveness_every
    out: dict[int, Message] = {}
    while pending and time.monotonic() < end:
        got = list(grid.pull_messages(list(pending)))
        for m in got:
            node = pending.pop(m.metadata.reply_to_message_id, None)
            if node is not None:
                out[node] = m
        if pending and time.monotonic() >= next_check:
            online = set(grid.get_node_ids())
            gone = sorted({n for n in pending.values() if n not in online})
            if gone:
                return out, gone
            next_check = time.monotonic() + liveness_every
        if pending:
            time.sleep(POLL_SECONDS)
    return out, []


def object_bytes(msg: Message) -> int:
    """Bytes of Flower's serialised objects of ``msg`` (head, records, array chunks), deduplicated."""
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    return sum(len(o.deflate()) for o in get_all_nested_objects(msg).values())


class _Link:
    """Sends one step to the sites, collects every reply or fails; counts Flower's bytes."""

    def __init__(self, grid: Grid, *, timeout: float, dump: str | Path | None = None) -> None:
        self.grid = grid
        self.timeout = timeout
        self.pid_of: dict[int, int] = {}
        self.wire: list[dict[str, Any]] = []
        self.dump = None if not dump else Path(dump)

    def _dump(self, msg: Message, *, round_: int, step: str, direction: str, node: int) -> None:
        """Every record of ``msg`` as files (``dump-messages``): what a test inspects for key material."""
        if self.dump is None or not msg.has_content():
            return
        self.dump.mkdir(parents=True, exist_ok=True)
        stem = f"r{round_}-{step}-{direction}-n{self.pid_of.get(node, node)}"
        for name, record in msg.content.items():
            if hasattr(record, "keys") and all(hasattr(record[k], "data") for k in record.keys()):
                for k in record.keys():
                    (self.dump / f"{stem}-{name}-{k}.bin").write_bytes(record[k].data)
            else:
                (self.dump / f"{stem}-{name}.json").write_text(json.dumps(dict(record), default=str))

    def exchange(self, contents: dict[int, RecordDict], message_type: str, *, round_: int) -> dict[int, Message]:
        msgs = [Message(content, dst_node_id=nid, message_type=message_type, group_id=str(round_))
                for nid, content in contents.items()]
        sent = sum(object_bytes(m) for m in msgs)
        t = time.perf_counter()
        replies, gone = send_and_receive(self.grid, msgs, timeout=self.timeout)
        seconds = time.perf_counter() - t
        name = lambda nid: self.pid_of.get(nid, f"node {nid}")  # noqa: E731
        if gone:
            raise RoundFailed(f"round {round_}, step {message_type!r}: partition(s) {[name(n) for n in gone]} went "
                              "offline before answering (SuperNode stopped or restarted: its context.state, with its "
                              "model and error-feedback residual, is lost). The run stops; start it again")
        missing = [name(n) for n in contents if n not in replies]
        errors = {name(n): m.error.reason for n, m in replies.items() if m.has_error()}
        if missing or errors:
            what = ([f"no reply from partition(s) {missing} within {self.timeout} s"] if missing else []) + \
                ([f"errors from {errors}"] if errors else [])
            raise RoundFailed(f"round {round_}, step {message_type!r}: {'; '.join(what)}. The round is abandoned: "
                              "completing it over the sites that answered would release less DP noise than "
                              "calibrated")
        for m in msgs:
            self._dump(m, round_=round_, step=message_type, direction="down", node=m.metadata.dst_node_id)
        for nid, m in replies.items():
            self._dump(m, round_=round_, step=message_type, direction="up", node=nid)
        received = sum(object_bytes(m) for m in replies.values())
        self.wire.append({"round": round_, "step": message_type, "sites": len(msgs), "flower_bytes_down": sent,
                          "flower_bytes_up": received, "seconds": seconds})
        return replies


def _wait_for_nodes(grid: Grid, n: int, timeout: float) -> list[int]:
    t0 = time.monotonic()
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n:
            return nodes
        if time.monotonic() - t0 > timeout:
            raise RoundFailed(f"only {len(nodes)} of {n} sites connected within {timeout} s")
        time.sleep(0.5)


def run(grid: Grid, config: dict[str, Any]) -> dict[str, Any]:
    """The whole run (see the module docstring); writes ``out-dir`` and returns the run record."""
    from medhe import comm, params, records
    from medhe.ckks.sparse import decode_index_set, encode_index_set, union_index_sets
    from medhe.fl import methods
    from medhe.fl.simulate import _epsilon_columns, _make_accountant, aggregation_weights

    wall0 = time.perf_counter()
    raw = json.loads(Path(config["params-file"]).read_text())
    P = params.load_dict(raw)
    spec = methods.get(str(config["method"]))
    roles.check_supported(spec, P)
    seed = int(config.get("seed", P.seed))
    n = P.data.num_clients
    link = _Link(grid, timeout=float(config.get("step-timeout", 600)), dump=config.get("dump-messages"))
    nodes = _wait_for_nodes(grid, n, float(config.get("nodes-timeout", 120)))[:n]
    run_cfg = {"params-json": json.dumps(raw), "method": spec.name, "seed": seed,
               "noise-source": str(config.get("noise-source", "seeded")),
               "export-model": str(config.get("export-model", "false")).lower()}
    for k in ("sim-data-dir", "sim-key-file"):
        if config.get(k):
            run_cfg[k] = str(config[k])
    ledger = comm.ByteLedger()

    # ---- set-up
    replies = link.exchange({nid: RecordDict({"config": ConfigRecord(run_cfg)}) for nid in nodes}, "query.setup",
                            round_=0)
    info = {nid: m.content["config"] for nid, m in replies.items()}
    link.pid_of = {nid: int(c["partition-id"]) for nid, c in info.items()}
    pids = sorted(link.pid_of.values())
    if pids != list(range(n)):
        raise RoundFailed(f"the sites hold partitions {pids}, expected 0..{n - 1} (node config partition-id)")
    by_pid = {p: nid for nid, p in link.pid_of.items()}
    sizes = [int(info[by_pid[p]]["num-examples"]) for p in range(n)]
    digests = {str(c["digest"]) for c in info.values()}
    if len(digests) != 1:
        raise RoundFailed("the sites built different initial models (same seed and parameters expected)")
    first = replies[by_pid[0]]
    setup = st.record_blobs(first.content["setup"])[0]
    if spec.encryption != "none":
        ledger.add(setup, round_=0, client=0, direction="up", category="context")
    aggregator = roles.ServerAggregator(spec, P, setup)
    weights = aggregation_weights(spec, P, sizes)
    accountant = _make_accountant(spec, P)
    base = {"method": spec.name, "seed": seed, "engine": "flower"}
    history = [{**base, "round": 0, **dict(first.content["metrics"]), "bytes_up_per_client": 0.0,
                "bytes_down_per_client": 0.0}]
    value_cat = "update" if spec.encryption == "none" else "ciphertext"
    round_cfg = lambda r: ConfigRecord({"round": r, "weights": [float(x) for x in weights]})  # noqa: E731

    # ---- rounds: encode(1); per round [values (union)], apply(r) carrying encode(r + 1) or the export
    export = run_cfg["export-model"] == "true"
    replies = link.exchange({nid: RecordDict({"config": round_cfg(1)}) for nid in nodes}, "train.encode", round_=1)
    first_step = {nid: dict(m.content) for nid, m in replies.items()}
    final = None
    for r in range(1, P.train.rounds + 1):
        t_round = time.perf_counter()
        t_agg = 0.0
        client_metrics = {link.pid_of[nid]: dict(c["metrics"]) for nid, c in first_step.items()}
        step = {nid: c for nid, c in first_step.items()}  # records with "index" or "values"
        if roles.needs_union(spec, P):
            sets = []
            for p in range(n):
                msg = st.record_blobs(step[by_pid[p]]["index"])[0]
                ledger.add(msg, round_=r, client=p, direction="up", category="index")
                sets.append(decode_index_set(msg))
            t = time.perf_counter()
            union_msg = encode_index_set(union_index_sets(sets), length=int(info[by_pid[0]]["num-params"]))
            t_agg += time.perf_counter() - t
            for p in range(n):
                ledger.add(union_msg, round_=r, client=p, direction="down", category="index")
            down = RecordDict({"config": round_cfg(r), "union": st.blobs_record([union_msg])})
            replies = link.exchange({nid: down for nid in nodes}, "train.values", round_=r)
            step = {nid: dict(m.content) for nid, m in replies.items()}
            for nid, c in step.items():
                client_metrics[link.pid_of[nid]].update(dict(c["metrics"]))
        uploads = []
        for p in range(n):
            blobs = st.record_blobs(step[by_pid[p]]["values"])
            ledger.add(blobs, round_=r, client=p, direction="up", category=value_cat)
            uploads.append(blobs)
        t = time.perf_counter()
        total = aggregator.aggregate(uploads, clients=list(range(n)))
        t_agg += time.perf_counter() - t
        for p in range(n):
            ledger.add(total, round_=r, client=p, direction="down", category=value_cat)
        down = {"config": ConfigRecord({"round": r, "num-summed": n}), "sum": st.blobs_record(total)}
        last = r == P.train.rounds
        if not last:
            down["next"] = round_cfg(r + 1)
        contents = {nid: RecordDict(down) for nid in nodes}
        if last and export:
            contents[by_pid[0]] = RecordDict({**down, "export": ConfigRecord({"model": True})})
        replies = link.exchange(contents, "train.apply", round_=r)
        digests = {link.pid_of[nid]: str(m.content["config"]["digest"]) for nid, m in replies.items()}
        if len(set(digests.values())) != 1:
            raise RoundFailed(f"round {r}: the sites hold different models after applying the sum: {digests}")
        row = {**base, "round": r, **dict(replies[by_pid[0]].content["metrics"]),
               "bytes_up_per_client": ledger.per_client_round(round_=r, direction="up"),
               "bytes_down_per_client": ledger.per_client_round(round_=r, direction="down"),
               "density": float(np.mean([m["density"] for m in client_metrics.values()])),
               "train_loss": float(np.mean([m["train_loss"] for m in client_metrics.values()])),
               "time_round": time.perf_counter() - t_round, "time_aggregate": t_agg,
               "server_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        for key in ("quant_bound", "encrypted_values_per_client"):
            if key in client_metrics[0]:
                row[key] = client_metrics[0][key]
        if accountant is not None:
            row.update(_epsilon_columns(accountant, spec, P, row))
        history.append(row)
        if not last:
            first_step = {nid: {k[len("next-"):]: v for k, v in m.content.items() if k.startswith("next-")}
                          for nid, m in replies.items()}
        elif export:
            final = st.array_vector(replies[by_pid[0]].content["model"]["w"])

    record = {"engine": "flower", "flower_version": _flwr_version(), "method": spec.name, "seed": seed,
              "params": P.to_dict(), "params_digest": P.digest(), "client_sizes": sizes,
              "aggregation_weights": weights, "num_params": int(info[by_pid[0]]["num-params"]),
              "rounds": P.train.rounds, "wall_time_s": time.perf_counter() - wall0,
              "bytes_setup": ledger.total(round_=0), "bytes_ledger_total": ledger.total(),
              "flower_bytes_total": int(sum(w["flower_bytes_down"] + w["flower_bytes_up"] for w in link.wire)),
              "privacy": {"noise_source_by_site": {int(c["partition-id"]): str(c["noise-source"])
                                                   for c in info.values()},
                          "noise_sources": _noise_sources({str(c["noise-source"]) for c in info.values()})},
              "environment": records.environment()}
    _write(config.get("out-dir"), history=history, ledger=ledger, wire=link.wire, record=record, final=final)
    return record


def _noise_sources(names: set[str]) -> dict[str, str]:
    """What each noise source named in the run is (the run record states it)."""
    from medhe.flower.secure_noise import SOURCE

    known = {"seeded": "numpy generator seeded by (seed, 'dp-noise', client, round): reproducible, so anyone "
                       "who knows the seed can recompute a site's share", "secure": SOURCE}
    return {n: known.get(n, "unknown") for n in sorted(names)}


def _flwr_version() -> str:
    from importlib.metadata import version

    return version("flwr")


def _write(out_dir, *, history, ledger, wire, record, final) -> None:
    if not out_dir:
        return
    from medhe import records

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records.write_csv(out / "history.csv", history)
    records.write_csv(out / "bytes.csv", ledger.rows or [{"round": 0, "bytes": 0}])
    records.write_csv(out / "wire.csv", wire)
    records.write_json(out / "run.json", record)
    if final is not None:
        np.save(out / "final_weights.npy", final)
