"""The environment every Flower/Ray process the project starts runs under: nothing calls out.

Flower 1.42 and Ray 2.55 reach the network by default in four ways; each switch below turns one off
(read from the installed sources: ``flwr/supercore/telemetry.py``, ``flwr/supercore/update_check.py``,
``flwr/supercore/superexec/dependency_installer.py``, ``ray/_common/usage/usage_lib.py``):

* Flower telemetry: an HTTPS POST per event (start/stop of a SuperLink, SuperNode, simulation) unless
  ``FLWR_TELEMETRY_ENABLED=0`` (https://flower.ai/docs/telemetry.html);
* Flower's update check: ``flower-superlink``, ``flower-supernode`` and ``flower-superexec`` ask
  ``api.flower.ai`` for a newer release in a background thread unless ``FLWR_DISABLE_UPDATE_CHECK=1``;
* Flower's runtime installation of app dependencies (``uv sync`` of the app's pyproject.toml into a
  fresh environment, from a package index): on by default for a SuperLink's own SuperExec unless
  ``FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1`` (the launcher also passes
  ``--disable-runtime-dependency-installation``); ``UV_OFFLINE=1`` and ``PIP_NO_INDEX=1`` make any
  installation that still runs fail instead of downloading;
* Ray usage statistics (https://docs.ray.io/en/latest/cluster/usage-stats.html): a report to
  ``usage-stats.ray.io`` every hour unless ``RAY_USAGE_STATS_ENABLED=0``; ``RAY_USAGE_STATS_PROMPT_ENABLED=0``
  silences the prompt. Flower starts Ray without its dashboard (``include_dashboard=False``).

Model and data loading stay offline too (``HF_HUB_OFFLINE=1``, ``HF_DATASETS_OFFLINE=1``,
``TRANSFORMERS_OFFLINE=1``): nothing downloads at run time. ``FLWR_HOME`` keeps Flower's state
(SuperNode keys, update-check cache, ``flwr run`` logs) in a folder of the caller's choosing instead
of ``~/.flwr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

QUIET_ENV: dict[str, str] = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "UV_OFFLINE": "1",
    "PIP_NO_INDEX": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_PROMPT_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
"""Variable -> value for every switch above (see the module docstring for what each one stops)."""


def flower_env(base: Mapping[str, str] | None = None, *, flwr_home: str | Path | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with every call-out switched off.

    Args:
        base: the environment to start from; its values for the switches are overridden.
        flwr_home: Flower's state folder (``FLWR_HOME``); None leaves ``base``'s choice.

    >>> env = flower_env({"PATH": "/bin", "FLWR_TELEMETRY_ENABLED": "1"})
    >>> env["FLWR_TELEMETRY_ENABLED"], env["RAY_USAGE_STATS_ENABLED"], env["PATH"]
    ('0', '0', '/bin')
    """
    env = dict(os.environ if base is None else base)
    env.update(QUIET_ENV)
    if flwr_home is not None:
        env["FLWR_HOME"] = str(flwr_home)
    return env


def apply_to_this_process(*, flwr_home: str | Path | None = None) -> None:
    """Set the switches in ``os.environ`` (before flwr or ray is imported: Flower reads
    ``FLWR_TELEMETRY_ENABLED`` at import time)."""
    os.environ.update(flower_env({}, flwr_home=flwr_home))
