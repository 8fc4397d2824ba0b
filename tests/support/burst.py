"""Bursts of requests against a real server for the SIGKILL durability tests (API and webhooks).

Several clients, each on its own keep-alive connection, send queued requests one after another. For
every 2xx it records the items the request carried, and checks right then, from another database
connection, that they are committed: an answer that came before its commit shows up here even when no
kill happens to land in that moment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine, bindparam, text


@dataclass(frozen=True)
class Post:
    """One request: where it goes, its body, the external ids of the items it carries, and whether it
    re-sends an earlier request."""

    path: str
    content: bytes
    ids: tuple[str, ...]
    resent: bool = False
    delivery: str | None = None


def stored_counts(engine: Engine, channel: str) -> Counter[str]:
    """How often each external id of the channel is stored."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT external_id, count(*) FROM feedback_items WHERE channel = :channel "
                                       "GROUP BY external_id"), {"channel": channel})
        return Counter({external_id: int(count) for external_id, count in rows})


def missing(engine: Engine, channel: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` another connection does not see committed now."""
    query = text("SELECT external_id FROM feedback_items WHERE channel = :channel AND external_id IN :ids")
    with engine.connect() as connection:
        found = connection.execute(query.bindparams(bindparam("ids", expanding=True)),
                                   {"channel": channel, "ids": list(ids)}).scalars()
        return set(ids) - set(found)


@dataclass
class Burst:
    """Sends posts over ``clients`` connections; what was acknowledged, and whether it was committed by then."""

    port: int
    engine: Engine
    channel: str
    headers_for: Callable[[Post], dict[str, str]]
    clients: int = 8
    acked: set[str] = field(default_factory=set)
    answered_before_commit: set[str] = field(default_factory=set)
    statuses: Counter[int | str] = field(default_factory=Counter)

    async def client(self, http: httpx.AsyncClient, queue: asyncio.Queue[Post]) -> None:
        while not queue.empty():
            post = queue.get_nowait()
            try:
                response = await http.post(post.path, content=post.content, headers=self.headers_for(post))
            except httpx.TransportError:
                self.statuses["connection lost"] += 1
                return  # the server went away: this client stops, as one would until the server is back
            self.statuses[response.status_code] += 1
            if 200 <= response.status_code < 300:
                self.answered_before_commit |= await asyncio.to_thread(missing, self.engine, self.channel, post.ids)
                self.acked.update(post.ids)

    async def kill_when_acked(self, count: int, server: subprocess.Popen[bytes]) -> None:
        while len(self.acked) < count:
            await asyncio.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)

    async def _send(self, posts: Sequence[Post], kill: tuple[int, subprocess.Popen[bytes]] | None) -> None:
        queue: asyncio.Queue[Post] = asyncio.Queue()
        for post in posts:
            queue.put_nowait(post)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=60,
                                     limits=httpx.Limits(max_connections=self.clients)) as http:
            clients = [asyncio.create_task(self.client(http, queue)) for _ in range(self.clients)]
            killer = asyncio.create_task(self.kill_when_acked(*kill)) if kill else None
            await asyncio.gather(*clients)
            if killer is not None and not killer.done():
                killer.cancel()
                raise AssertionError(f"the burst ended before the kill: {self.statuses}")

    def send(self, posts: Sequence[Post], kill_after: int | None = None,
             server: subprocess.Popen[bytes] | None = None) -> Burst:
        """Send every post; with ``kill_after``, SIGKILL ``server`` once that many items are acknowledged."""
        kill = (kill_after, server) if kill_after is not None and server is not None else None
        asyncio.run(self._send(posts, kill))
        return self
