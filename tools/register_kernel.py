"""Register the project's Jupyter kernel, ``medhe``, inside the running environment (``--sys-prefix``).

The notebooks name this kernel, so ``jupyter lab`` started from ``.venv`` finds it, and nothing is
written to the user's home. The kernel's own log is silenced (level CRITICAL): every stage of
``make repro`` would otherwise print its start-up warning (it talks to its client over unencrypted
local TCP) and, at shutdown, the interrupt that jupyter_client always sends before stopping a kernel.
Errors in a notebook's cells are not in this log: papermill reports them and fails the stage.

    .venv/bin/python tools/register_kernel.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ipykernel.kernelspec import install

NAME = "medhe"
DISPLAY_NAME = "medhe (Python 3.11)"


def register(*, prefix: str) -> Path:
    """Install the kernel spec under ``<prefix>/share/jupyter/kernels/medhe``; returns its kernel.json."""
    folder = Path(install(kernel_name=NAME, display_name=DISPLAY_NAME, prefix=prefix))
    spec_file = folder / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["argv"] = [a for a in spec["argv"] if not a.startswith("--IPKernelApp.log_level")]
    spec["argv"].append("--IPKernelApp.log_level=CRITICAL")
    spec_file.write_text(json.dumps(spec, indent=1) + "\n")
    return spec_file


def main() -> int:
    print(f"kernel {NAME!r} registered: {register(prefix=sys.prefix)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
