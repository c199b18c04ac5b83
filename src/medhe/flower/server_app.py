"""The MedHE ServerApp (Flower 1.42 Message API): the aggregator's round loop.

Flower's ``FedAvg`` averages plaintext arrays, so it cannot aggregate ciphertexts, and a ``union``
round needs more than one exchange; the ServerApp's ``main`` therefore drives its own loop with the
grid's ``send_and_receive``:

* set-up: every site reports its number of records; partition 0 sends the public setup bytes (a
  CKKS context without keys, or the BFV parameters), from which the server role's aggregator
  (:func:`medhe.fl.server.make_aggregator`) is built; the clip-bound role
  (:func:`medhe.fl.server.make_clip_server`) needs no setup. The aggregation weights follow from the
  sizes (public, as in-process);
* per round: ``train.encode`` (the public :class:`~medhe.fl.plan.RoundPlan` down; the clients' norms up
  once if an adaptive clip bound must be calibrated, then ``train.clip`` with the bound down; the unclipped
  bits up under adaptive clipping; index sets up under ``union``), ``train.values`` (union down, value
  messages up), ``train.apply`` (the sum of every block down). The server only adds, for every method of
  :data:`medhe.fl.methods.METHODS`. The next round's ``encode`` rides on ``apply`` (and the final model,
  if exported, on the last ``apply``), so a ``union`` round costs two hops after the first.

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

from medhe.flower import state as st
from medhe.flower.client_app import split_blocks

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
    from medhe.fl import methods
    from medhe.fl.client import read_bound
    from medhe.fl.server import make_aggregator, make_clip_server
    from medhe.fl.simulate import _make_accountant, aggregation_weights

    wall0 = time.perf_counter()
    raw = json.loads(Path(config["params-file"]).read_text())
    P = params.load_dict(raw)
    spec = methods.get(str(config["method"]))
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
    if len({str(c["digest"]) for c in info.values()}) != 1:
        raise RoundFailed("the sites built different initial models (same seed and parameters expected)")
    first = replies[by_pid[0]]
    size = int(info[by_pid[0]]["num-params"])
    head = int(info[by_pid[0]]["head-size"])
    setup = st.record_blobs(first.content["setup"])
    if setup:
        ledger.add(setup[0], round_=0, client=0, direction="up", category="context")
    aggregator = make_aggregator(spec, P, setup[0] if setup else None, size=size,
                                 head_size=None if head < 0 else head)
    clip = make_clip_server(spec, P)
    weights = aggregation_weights(spec, P, sizes)
    accountant = _make_accountant(spec, P)
    rounds = Rounds(spec, P, seed=seed, weights=weights, clip=clip)
    base = {"method": spec.name, "seed": seed, "engine": "flower"}
    history = [{**base, "round": 0, **dict(first.content["metrics"]), "bytes_up_per_client": 0.0,
                "bytes_down_per_client": 0.0, "model_change_l2": 0.0}]

    # ---- rounds: encode(1); per round [clip], [values (union)], apply(r) carrying encode(r + 1) or the export
    export = run_cfg["export-model"] == "true"
    replies = link.exchange({nid: RecordDict({"config": rounds.config(1)}) for nid in nodes}, "train.encode",
                            round_=1)
    step = {link.pid_of[nid]: dict(m.content) for nid, m in replies.items()}
    final, statements = None, []
    for r in range(1, P.train.rounds + 1):
        t_round = time.perf_counter()
        t_agg = 0.0
        client_metrics = {p: dict(c["metrics"]) for p, c in step.items()}
        norms = [client_metrics[p]["sent_norm_before_clip"] for p in range(n)]
        row: dict[str, Any] = {"sent_norm_before_clip": float(np.mean(norms))}
        if spec.clip:
            if "clip" in step[0] and rounds.bound is None:  # calibrate the adaptive bound from the norms
                msgs = [st.record_blobs(step[p]["clip"])[0] for p in range(n)]
                for p, m in enumerate(msgs):
                    ledger.add(m, round_=r, client=p, direction="up", category="clip")
                t = time.perf_counter()
                down = clip.calibrate(msgs, clients=list(range(n)))
                t_agg += time.perf_counter() - t
                for p in range(n):
                    ledger.add(down, round_=r, client=p, direction="down", category="clip")
                rounds.bound = read_bound(down)
                replies = link.exchange({nid: RecordDict({"config": rounds.config(r)}) for nid in nodes},
                                        "train.clip", round_=r)
                step = {link.pid_of[nid]: dict(m.content) for nid, m in replies.items()}
            bound = rounds.bound
            row.update(_clip_row(norms, bound))
            if clip.adaptive is not None:  # the unclipped bits up, the next bound down
                bits = [st.record_blobs(step[p]["clip"])[0] for p in range(n)]
                for p, m in enumerate(bits):
                    ledger.add(m, round_=r, client=p, direction="up", category="clip")
                down = clip.step(bits, clients=list(range(n)))
                for p in range(n):
                    ledger.add(down, round_=r, client=p, direction="down", category="clip")
                rounds.bound = read_bound(down)
        index_msgs = [st.record_blobs(step[p]["index"])[0] for p in range(n)] if "index" in step[0] else None
        own = index_msgs is not None and aggregator.alignment == "own"
        if index_msgs is not None:
            t = time.perf_counter()
            union_msg = aggregator.union(index_msgs, clients=list(range(n)))
            t_agg += time.perf_counter() - t
        if index_msgs is not None and not own:
            for p, m in enumerate(index_msgs):
                ledger.add(m, round_=r, client=p, direction="up", category="index")
            for p in range(n):
                ledger.add(union_msg, round_=r, client=p, direction="down", category="index")
            down = RecordDict({"config": ConfigRecord({"round": r}), "union": st.blobs_record([union_msg])})
            replies = link.exchange({nid: down for nid in nodes}, "train.values", round_=r)
            step = {link.pid_of[nid]: dict(m.content) for nid, m in replies.items()}
        blocks = [split_blocks(st.record_blobs(step[p]["values"]), step[p]["blocks"]) for p in range(n)]
        if any([b for b, _ in blk] != [b for b, _ in blocks[0]] for blk in blocks):
            raise RoundFailed(f"round {r}: the sites sent different blocks")
        sums, bounds, counts = [], [], []
        for j, (block, _) in enumerate(blocks[0]):
            category = _category(aggregator, block)
            sent = [blocks[p][j][1] for p in range(n)]
            for p in range(n):
                if own:
                    ledger.add(index_msgs[p], round_=r, client=p, direction="up", category="index")
                ledger.add(sent[p], round_=r, client=p, direction="up", category=category)
            t = time.perf_counter()
            agg = aggregator.aggregate(sent, clients=list(range(n)), block=block)
            t_agg += time.perf_counter() - t
            for p in range(n):
                if own:  # [support index set, values]
                    ledger.add(agg[0], round_=r, client=p, direction="down", category="index")
                    ledger.add(agg[1:], round_=r, client=p, direction="down", category=category)
                else:
                    ledger.add(agg, round_=r, client=p, direction="down", category=category)
            sums.extend(agg)
            counts.append(len(agg))
            bounds.extend(block)
        last = r == P.train.rounds
        down = {"config": ConfigRecord({"round": r}), "sum": st.blobs_record(sums),
                "blocks": ConfigRecord({"bounds": [int(b) for b in bounds], "counts": counts})}
        if last:
            down["last"] = ConfigRecord({"round": r})
        else:
            down["next"] = rounds.config(r + 1)
        contents = {nid: RecordDict(down) for nid in nodes}
        if last and export:
            contents[by_pid[0]] = RecordDict({**down, "export": ConfigRecord({"model": True})})
        replies = link.exchange(contents, "train.apply", round_=r)
        applied = {link.pid_of[nid]: m.content for nid, m in replies.items()}
        digests = {p: str(c["config"]["digest"]) for p, c in applied.items()}
        if len(set(digests.values())) != 1:
            raise RoundFailed(f"round {r}: the sites hold different models after applying the sum: {digests}")
        finished = {p: dict(c["metrics"]) for p, c in applied.items()}
        row = {**base, "round": r, **_round_metrics(client_metrics, finished, n),
               "bytes_up_per_client": ledger.per_client_round(round_=r, direction="up"),
               "bytes_down_per_client": ledger.per_client_round(round_=r, direction="down"), **row,
               "time_round": time.perf_counter() - t_round, "time_aggregate": t_agg,
               "server_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        for cat, b in ledger.breakdown(round_=r, direction="up").items():
            row[f"bytes_up_{cat}"] = b / n
        if accountant is not None:
            from medhe.fl.simulate import _epsilon_columns

            row.update(_epsilon_columns(accountant, spec, P, row))
        if spec.record_dp:
            row["epsilon_record_max"] = max(client_metrics[p]["epsilon_record"] for p in range(n))
        history.append(row)
        if not last:
            step = {link.pid_of[nid]: {k[len("next-"):]: v for k, v in m.content.items() if k.startswith("next-")}
                    for nid, m in replies.items()}
        else:
            if export:
                final = st.array_vector(applied[0]["model"]["w"])
            statements = [json.loads(applied[p]["record-dp"]["statement"]) for p in range(n)
                          if "record-dp" in applied[p]]

    record = {"engine": "flower", "flower_version": _flwr_version(), "method": spec.name, "method_spec": spec.__dict__,
              "seed": seed, "params": P.to_dict(), "params_digest": P.digest(), "client_sizes": sizes,
              "aggregation_weights": weights, "num_params": size, "rounds": P.train.rounds,
              "wall_time_s": time.perf_counter() - wall0, "bytes_setup": ledger.total(round_=0),
              "bytes_ledger_total": ledger.total(),
              "flower_bytes_total": int(sum(w["flower_bytes_down"] + w["flower_bytes_up"] for w in link.wire)),
              "environment": records.environment()}
    by_site = {int(c["partition-id"]): str(c["noise-source"]) for c in info.values()}
    record["privacy"] = {"noise_source_by_site": by_site, "noise_sources": _noise_sources(set(by_site.values()))}
    if accountant is not None:
        from medhe.fl.simulate import privacy_record

        record["privacy"] = {**privacy_record(P, spec, seed=seed, sizes=sizes, rounds=P.train.rounds,
                                              accountant=accountant), **record["privacy"]}
        if "secure" in by_site.values():  # the statement's seeded source is not what these sites used
            record["privacy"]["noise_source"] = "per site, see noise_source_by_site and noise_sources"
    if statements:
        from medhe.fl.simulate import record_level_summary

        record["privacy_record_level"] = record_level_summary(statements)
    _write(config.get("out-dir"), history=history, ledger=ledger, wire=link.wire, record=record, final=final)
    return record


class Rounds:
    """The server's public per-round values: the :class:`~medhe.fl.plan.RoundPlan` (as the in-process engine
    builds it) and the clip bound, as the round's config record."""

    def __init__(self, spec, P, *, seed: int, weights: list[float], clip) -> None:
        self.spec, self.P, self.seed, self.weights = spec, P, seed, [float(w) for w in weights]
        self.bound: float | None = None if clip.needs_norms else float(clip.value)

    def plan(self, r: int):
        from medhe.fl.plan import RoundPlan
        from medhe.fl.simulate import _noise_fn

        noise = _noise_fn(self.spec, self.P, seed=self.seed, round_=r, weights=self.weights)
        # the quantising transports size their range by the round's bound (the fixed C when nothing clips)
        clip_bound = None
        if self.spec.encryption != "none":
            clip_bound = float(self.bound) if self.spec.clip else float(self.P.dp.clip_norm)
        return RoundPlan(round=r, clients=list(range(len(self.weights))), weights=self.weights, clip_bound=clip_bound,
                         noise=RoundPlan.noise_dict(noise), seed=0 if noise is None else int(noise.seed))

    def config(self, r: int) -> ConfigRecord:
        """Round ``r``'s config: the plan and the bound once known (else the clients send their norms first)."""
        if self.spec.clip and self.bound is None:
            return ConfigRecord({"round": r})
        out = {"round": r, "plan": self.plan(r).to_json()}
        if self.spec.clip:
            out["clip-bound"] = float(self.bound)
        return ConfigRecord(out)


def _clip_row(norms: list[float], bound: float) -> dict[str, float]:
    from medhe.clipping import clip_fraction_removed

    return {"clip_norm": float(bound),
            "clip_removed_frac": float(np.mean([clip_fraction_removed(x, bound) for x in norms])),
            "clipped_clients_frac": float(np.mean([x > bound for x in norms]))}


def _category(aggregator, block: tuple[int, int]) -> str:
    """The ledger category of a block's value messages (the head's blocks are ciphertexts under ``split``)."""
    if aggregator.kind == "split":
        return aggregator.encrypted.value_category if block[1] <= aggregator.head_size \
            else aggregator.plain.value_category
    return aggregator.value_category


def _round_metrics(trained: dict[int, dict], finished: dict[int, dict], n: int) -> dict[str, float]:
    """The history columns of a round from the sites' replies, as the in-process engine forms them: means
    over sites of the training figures, partition 0's public facts and test metrics, quantisation
    fractions averaged over the sites that had values."""
    from medhe.fl.engines.inprocess import merge_client_info

    out = {k: float(np.mean([trained[p][k] for p in range(n)])) for k in ("density", "train_loss", "update_norm")}
    out.update(merge_client_info([{k: v for k, v in finished[p].items() if k != "client_seconds"} for p in range(n)]))
    return out


def _noise_sources(names: set[str]) -> dict[str, str]:
    """What each noise source named in the run is (the run record states it)."""
    from medhe.fl.secure_noise import SOURCE

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
