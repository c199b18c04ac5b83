"""A Flower Grid that delivers each message straight to the MedHE ClientApp in this process.

No Ray, no SuperLink, no serialisation: the ServerApp's round loop (:func:`medhe.flower.server_app.run`)
and the ClientApp's handlers run as in a federation, each site with its own ``Context`` (and
``context.state``), so a test can run every method through both apps in seconds.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from flwr.app import Context, Message, RecordDict


class DirectGrid:
    """``push_messages`` calls the ClientApp at once; ``pull_messages`` returns its replies."""

    def __init__(self, client_app, num_sites: int, *, node_config: dict | None = None) -> None:
        self.app = client_app
        self.contexts = {100 + p: Context(run_id=1, node_id=100 + p,
                                          node_config={"partition-id": p, "num-partitions": num_sites,
                                                       **(node_config or {})},
                                          state=RecordDict(), run_config={})
                         for p in range(num_sites)}
        self._ids = itertools.count()
        self._replies: dict[str, Message] = {}
        self.log: list[tuple[str, int]] = []

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def push_messages(self, messages) -> list[str]:
        ids = []
        for m in messages:
            mid = f"m{next(self._ids)}"
            m.metadata.__dict__["_message_id"] = mid  # the SuperLink's job
            node = m.metadata.dst_node_id
            self.log.append((m.metadata.message_type, node))
            self._replies[mid] = self.app(m, self.contexts[node])
            ids.append(mid)
        return ids

    def pull_messages(self, ids) -> list[Message]:
        return [self._replies.pop(i) for i in list(ids) if i in self._replies]


def run(P, *, method: str, seed: int, work: str | Path, **config) -> Path:
    """One run of ``method`` through the ServerApp and ClientApp code; results in ``work/out``."""
    from medhe.flower import server_app, simulation
    from medhe.flower.client_app import app

    from flwr.supercore.task_identity import TaskIdentity

    work = Path(work)
    cfg = simulation.prepare(P, method=method, seed=seed, work=work)
    grid = DirectGrid(app, P.data.num_clients)
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0  # what a ServerApp process has
    try:
        server_app.run(grid, {**cfg, "out-dir": str(work / "out"), "export-model": "true", **config})
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved
    return work / "out"
