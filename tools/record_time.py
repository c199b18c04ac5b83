"""Write a measured wall time as JSON, with the number of cores the process may use.

    python tools/record_time.py results/quick/repro_time.json 843 --key pipeline_s stages_run=40 stages_total=41

Called by ``tools/repro.sh`` when the pipeline finishes (``make test RECORD=1`` writes
``results/test_time.json`` from ``tests/conftest.py``); the README's ``times`` block reads these files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def usable_cpus() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one), not the host's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("seconds", type=float)
    ap.add_argument("--key", default="seconds", help="name of the time field")
    ap.add_argument("extra", nargs="*", metavar="NAME=INT", help="further integer fields")
    args = ap.parse_intermixed_args(argv)
    record = {args.key: args.seconds, "cpus": usable_cpus()}
    for item in args.extra:
        name, _, value = item.partition("=")
        record[name] = int(value)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
