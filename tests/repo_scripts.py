"""Import the repository's scripts (``tools/``, ``benchmarks/``) as modules, for their tests.

The scripts are run by path (``python tools/x.py``), not installed, so their tests load them by path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load(relpath: str) -> ModuleType:
    """The module of the script at ``relpath`` (from the repository root), registered in ``sys.modules``
    under its file name so that dataclasses and pickling resolve it."""
    path = ROOT / relpath
    if not path.is_file():
        raise FileNotFoundError(f"no script {relpath!r} under the repository root {ROOT}")
    name = path.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
