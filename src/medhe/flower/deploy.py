"""Flower's deployment engine on one machine: a SuperLink and one SuperNode per site, as processes.

:class:`LocalFederation` starts ``flower-superlink`` and ``flower-supernode`` processes (each in its
own process group, under :func:`medhe.flower.env.flower_env`), and on exit stops every group it
started (SIGTERM, then SIGKILL). :meth:`LocalFederation.run` submits the MedHE app with ``flwr run``
and waits for it. Flower 1.42 serves the Fleet, Control and Runtime APIs of a SuperLink over one HTTP
port (``--host``/``--port``); the older per-API address flags are deprecated. Each SuperNode also
serves a Runtime API for its ClientApp processes on its own port and starts a fresh ClientApp process
for every message (state survives in ``context.state``, which the SuperNode keeps).

This launcher uses ``--insecure`` (plain HTTP on localhost). Across sites, run the SuperLink with
``--ssl-ca-certfile``, ``--ssl-certfile`` and ``--ssl-keyfile`` and each SuperNode with
``--root-certificates`` (see ``docs/deploy.md``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from medhe.flower.env import flower_env

APP_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "medhe-flower"
version = "1.0.0"
description = "MedHE on Flower: the app code lives in the installed medhe package"
license = "MIT"
dependencies = []

[tool.flwr.app]
publisher = "medhe"

[tool.flwr.app.components]
serverapp = "medhe.flower.server_app:app"
clientapp = "medhe.flower.client_app:app"

[tool.flwr.app.config]
params-file = ""
method = "medhe"
seed = 42
out-dir = ""
export-model = "false"
noise-source = "secure"
step-timeout = 600
nodes-timeout = 120
dump-messages = ""
"""


def write_app(folder: str | Path) -> Path:
    """The Flower app folder ``flwr run`` packages: a pyproject.toml naming medhe's ServerApp and ClientApp."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(APP_PYPROJECT)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


class LocalFederation:
    """A SuperLink and ``len(sites)`` SuperNodes on localhost (``--insecure``); a context manager.

    Args:
        sites: per site, its node config (``partition-id``, ``num-partitions``, ``data-file``, ``key-file``, ...).
        home: a folder for Flower's state (``FLWR_HOME``), the app folder and the process logs.
        pythonpath: prepended to every process's PYTHONPATH (where ``medhe`` is importable from).
    """

    def __init__(self, sites: list[dict[str, Any]], *, home: str | Path, pythonpath: str | None = None) -> None:
        self.sites = sites
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = flower_env(flwr_home=self.home / "flwr-home")
        src = pythonpath or str(Path(__file__).resolve().parents[2])
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (src, self.env.get("PYTHONPATH", "")) if p)
        # the SuperLink starts `flower-superexec` (and it `flwr-serverapp`) from PATH
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")])
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}

    # ---------------------------------------------------------------- processes

    def _start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process; a restart appends
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=self.home)
        log.close()
        self.procs[name] = proc
        return proc

    def start_superlink(self) -> None:
        self._start("superlink", [_bin("flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
                                  "--host", "127.0.0.1", "--port", str(self.port)])
        self._wait_port(self.port, what="SuperLink")

    def start_supernode(self, i: int) -> subprocess.Popen:
        cfg = " ".join(f"{k}={_toml_value(v)}" for k, v in self.sites[i].items())
        return self._start(f"supernode-{i}", [
            _bin("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{self.port}",
            "--port", str(free_port()), "--node-config", cfg])

    def descendants(self) -> list[int]:
        """PIDs of every live process started by this federation, at any depth (SuperExec and the
        app processes detach with setsid, outside the launcher's process groups)."""
        import psutil

        out = []
        for proc in self.procs.values():
            try:
                p = psutil.Process(proc.pid)
                out += [p.pid] + [c.pid for c in p.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return out

    def stop(self, name: str, *, grace: float = 10.0) -> None:
        """Stop one process and every process it started (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        import psutil

        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            tree = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                # the group may hold children (ClientApp / ServerApp processes) after the leader exits
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
            break
        for child in tree:  # descendants detached with setsid
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=5)

    def __enter__(self) -> "LocalFederation":
        try:
            self.start_superlink()
            for i in range(len(self.sites)):
                self.start_supernode(i)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for name in list(self.procs)[::-1]:
            self.stop(name)

    def __exit__(self, *exc) -> None:
        self.close()

    def _wait_port(self, port: int, *, what: str, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if any(p.poll() is not None for p in self.procs.values()):
                break
            time.sleep(0.3)
        raise RuntimeError(f"{what} did not come up on port {port}; logs in {self.home}")

    # ---------------------------------------------------------------- runs

    def restart_supernode(self, i: int) -> None:
        """Stop site ``i``'s SuperNode and start it again (a new process: its context.state is gone)."""
        self.stop(f"supernode-{i}")
        self.start_supernode(i)

    def run(self, run_config: dict[str, Any], *, timeout: float = 900) -> subprocess.CompletedProcess:
        """``flwr run`` the MedHE app with ``run_config`` and wait until it ends (``--stream``)."""
        app = write_app(self.home / "app")
        flwr_home = Path(self.env["FLWR_HOME"])
        flwr_home.mkdir(parents=True, exist_ok=True)
        (flwr_home / "config.toml").write_text(
            f'[superlink]\ndefault = "medhe-local"\n\n[superlink.medhe-local]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n')
        overrides = " ".join(f"{k}={_toml_value(v)}" for k, v in run_config.items())
        cmd = [_bin("flwr"), "run", str(app), "medhe-local", "--run-config", overrides, "--stream"]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.home,
                              start_new_session=True)
