"""Run a MedHE method on Flower's simulation engine (Ray backend), in a child process.

:func:`run` prepares a work folder (the parameters as JSON, one data file per client, the clients'
key file), then starts ``python -m medhe.flower.simulation <folder>`` under :func:`medhe.flower.env.flower_env`
(no telemetry, update checks, usage stats or runtime installs) and waits. The child calls
``flwr.simulation.run_simulation`` with the MedHE ServerApp and ClientApp; the ServerApp writes
``history.csv``, ``bytes.csv`` (the medhe ledger), ``wire.csv`` (Flower's serialised bytes per step)
and ``run.json`` into the output folder. A child process keeps Ray (and its ~20 s start-up, its
worker processes and its memory) out of the caller, and its exit ends every Ray process it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from medhe.params import Params


def prepare(P: Params, *, method: str, seed: int, work: str | Path) -> dict[str, str]:
    """Write the parameters, the partitions and the key file into ``work``; return the run config."""
    from medhe.fl import methods
    from medhe.flower.keys import write_key_file
    from medhe.flower.partitions import write_partitions

    spec = methods.get(method)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    params_file = work / "params.json"
    params_file.write_text(json.dumps(P.to_dict()))
    write_partitions(P, seed=seed, folder=work / "data")
    key = write_key_file(spec, P, work / f"{spec.encryption}.key")
    return {"params-file": str(params_file), "method": method, "seed": seed, "sim-data-dir": str(work / "data"),
            "sim-key-file": "" if key is None else str(key)}


def run(P: Params, *, methods: list[str | dict], seed: int | None = None, out_dir: str | Path,
        num_cpus: int = 2, export_model: bool = True, dump_messages: bool = False, timeout: float = 1800,
        extra: dict | None = None, fault: dict | None = None) -> Path:
    """Run each of ``methods`` in turn for ``P.train.rounds`` rounds on ``P.data.num_clients`` virtual
    sites, in one simulation (one Ray start-up); results in ``out_dir/<label>/``. Returns ``out_dir``.

    Args:
        methods: method names, or dicts ``{"label": ..., "method": ..., <run config overrides>}``.
        dump_messages: write every record of every message to ``out_dir/<label>/messages/``.
        extra: run config entries for every run (e.g. ``noise-source``).
        fault: test hook, ``{"seed": s, "partition": p, "round": r, "step": "train.values"}``: the site of
            partition p raises in that step of round r of the run whose seed is s (a site dropping out).

    Raises:
        RuntimeError: if the simulation fails (its log tail is in the message); runs before the failing
            one have written their results.
    """
    from medhe.flower.env import flower_env

    seed = P.seed if seed is None else seed
    out_dir = Path(out_dir)
    configs = []
    for entry in methods:
        entry = {"method": entry, "label": entry} if isinstance(entry, str) else dict(entry)
        label, method = entry.pop("label"), entry.pop("method")
        run_seed = int(entry.pop("seed", seed))
        configs.append({**prepare(P, method=method, seed=run_seed, work=out_dir / label / "work"),
                        "out-dir": str(out_dir / label), "export-model": "true" if export_model else "false",
                        "dump-messages": str(out_dir / label / "messages") if dump_messages else "",
                        **(extra or {}), **entry})
    spec_file = out_dir / "simulation.json"
    spec_file.write_text(json.dumps({"configs": configs, "num_supernodes": P.data.num_clients,
                                     "num_cpus": num_cpus, "fault": fault}))
    env = flower_env(flwr_home=out_dir / "flwr-home")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    log_path = out_dir / "simulation.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "medhe.flower.simulation", str(spec_file)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        peak = _watch(proc, timeout=timeout)
    try:  # anything the child started (setsid: Ray processes) that is still alive goes with it
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    (out_dir / "peak_rss.json").write_text(json.dumps({"peak_rss_mb_all_processes": peak}))
    text = log_path.read_text()
    if proc.returncode != 0 or not all(Path(c["out-dir"], "run.json").exists() for c in configs):
        raise RuntimeError(f"Flower simulation of {[c['method'] for c in configs]!r} failed "
                           f"(exit {proc.returncode}):\n" + text[-4000:])
    return out_dir


def _watch(proc: subprocess.Popen, *, timeout: float, every: float = 0.5) -> float:
    """Wait for ``proc``; return the peak summed RSS (MiB) of it and its descendants (Ray workers
    included). On timeout, kill its process group and raise."""
    import time

    import psutil

    peak, t0 = 0.0, time.monotonic()
    while proc.poll() is None:
        try:
            root = psutil.Process(proc.pid)
            tree = [root, *root.children(recursive=True)]
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            peak = max(peak, rss / 2**20)
        except psutil.NoSuchProcess:
            pass
        if time.monotonic() - t0 > timeout:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise RuntimeError(f"Flower simulation did not finish within {timeout} s")
        time.sleep(every)
    return peak


def _child(spec_file: str) -> None:
    """Inside the child: run_simulation with the config baked into the ServerApp."""
    from medhe.flower.env import apply_to_this_process

    apply_to_this_process()
    spec = json.loads(Path(spec_file).read_text())
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from medhe.flower import server_app
    from medhe.flower.client_app import app as client_app

    sapp = ServerApp()
    failure: list[BaseException] = []

    @sapp.main()
    def _main(grid, context) -> None:
        try:
            for config in spec["configs"]:  # every method in turn; set-up resets each site's state
                server_app.run(grid, {**config, **dict(context.run_config)})
        except BaseException as err:  # run_simulation logs and swallows ServerApp errors
            failure.append(err)
            raise

    n_cpus = int(spec["num_cpus"])
    backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
               "init_args": {"num_cpus": n_cpus, "include_dashboard": False, "logging_level": "error",
                             "log_to_driver": True}}
    if spec.get("fault"):
        client_app = _with_fault(client_app, spec["fault"])
    run_simulation(server_app=sapp, client_app=client_app, num_supernodes=int(spec["num_supernodes"]),
                   backend_config=backend)
    if failure:
        print(f"medhe ServerApp failed: {type(failure[0]).__name__}: {failure[0]}", file=sys.stderr)
        sys.exit(1)


class SiteDropped(ConnectionError):
    """Raised by the fault hook: the site stops answering in this step."""


def _with_fault(client_app, fault: dict):
    """``client_app`` with every handler behind a mod that makes one site fail one step (test hook)."""
    from flwr.clientapp import ClientApp

    def drop(msg, context, call_next):
        run = context.state["medhe.run"] if "medhe.run" in context.state else {}
        if (int(context.node_config["partition-id"]) == int(fault["partition"])
                and msg.metadata.message_type == fault["step"] and int(run.get("seed", -1)) == int(fault["seed"])
                and int(msg.content["config"]["round"]) == int(fault["round"])):
            raise SiteDropped(f"partition {fault['partition']} dropped out (fault injected)")
        return call_next(msg, context)

    app = ClientApp()
    for name, handler in client_app._registered_funcs.items():  # noqa: SLF001 - the same handlers, wrapped
        app._registered_funcs[name] = (lambda h: lambda msg, ctx: drop(msg, ctx, h))(handler)  # noqa: SLF001
    return app


if __name__ == "__main__":
    _child(sys.argv[1])
