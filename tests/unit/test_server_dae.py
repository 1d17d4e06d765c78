"""Dynamic Authorization with several workers: the supervisor's table asks every worker, each acts on
its own sessions, and the answer joins theirs (docs/scaling.md, "Workers")."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from pysstp.aaa.dae import Change, Selector
from pysstp.server.dae import WorkerSessions, act_on_request


@dataclass
class Worker:
    """A worker's own sessions, answering the supervisor as :func:`act_on_request` does."""

    sessions: dict[str, str]
    """Acct-Session-Id -> user."""
    acted: list[tuple[Selector, Change | None, str]] = field(default_factory=list)

    async def act(self, selector: Selector, change: Change | None, reason: str) -> list[str]:
        self.acted.append((selector, change, reason))
        return [sid for sid, user in self.sessions.items() if selector.user in (None, user)]

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        return await act_on_request(self, request)


async def gone(_request: dict[str, Any]) -> dict[str, Any]:
    raise ConnectionError("the worker has died")


async def test_every_worker_acts_on_its_own_sessions_and_the_answer_joins_them() -> None:
    first, second = Worker({"a1": "alice", "b1": "bob"}), Worker({"a2": "alice"})
    table = WorkerSessions(lambda: [first.ask, gone, second.ask])
    selector = Selector(user="alice", address=IPv4Address("10.77.0.2"), calling_station="192.0.2.7")
    assert await table.act(selector, None, "by radclient") == ["a1", "a2"]
    # The request arrives whole on each worker: a disconnect (no change) with its reason.
    assert first.acted == second.acted == [(selector, None, "by radclient")]


async def test_a_coa_reaches_the_workers_with_its_change() -> None:
    worker = Worker({"b1": "bob"})
    table = WorkerSessions(lambda: [worker.ask])
    change = Change(session_timeout=30, idle_timeout=None)
    assert await table.act(Selector(session_id="b1"), change, "coa") == ["b1"]
    assert worker.acted == [(Selector(session_id="b1"), change, "coa")]


async def test_no_worker_holding_the_session_is_no_session() -> None:
    assert await WorkerSessions(lambda: [Worker({}).ask, gone]).act(Selector(user="carol"), None, "") == []
