"""The server's webhook intake: deliveries are committed in groups, each answered after its commit.

Each request parks its delivery and waits. A flush, scheduled on the event loop behind the requests
that are already runnable, takes everything parked (up to ``MAX_BATCH``), verifies and parses each
with its channel's plugin, stores the batch in one transaction and, only after the commit, answers
every sender. One commit per batch instead of per delivery is what lets SQLite keep up.

The flush runs on the event loop itself rather than in a writer thread: with a CPU-busy writer
thread, CPython's GIL hand-offs stall the event loop for milliseconds per request (measured: 3x
fewer deliveries/s). The price is that the loop is busy while a batch is stored (a few ms), and that
``handle_webhook`` of a channel plugin must not block on the network; on SQLite, a long write
transaction in another process (a big ``ingest``) also holds the server up until it commits. If a
batch fails as a whole, each delivery is retried in its own transaction, so a bad delivery fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from core.intake.batch import store_batch
from core.intake.channels import (
    ChannelConfig,
    WebhookOutcome,
    channel_config,
    prepare_delivery,
    store_with_retries,
)
from core.intake.ingest import pseudonym_key
from core.loop import FeedbackLoop
from core.types import IntakeResult

MAX_BATCH = 512
LINGER_S = 0.005
# How long a channel's configuration is reused; a channel removed by another process (the CLI)
# stops receiving within this time, one removed through this server's API at once.
CONFIG_TTL_S = 2.0

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    channel: str
    headers: Mapping[str, str]
    body: bytes
    future: asyncio.Future[WebhookOutcome]

    def done(self, result: WebhookOutcome | BaseException) -> None:
        if self.future.done():  # the sender went away; what it sent is stored all the same
            return
        if isinstance(result, BaseException):
            self.future.set_exception(result)
        else:
            self.future.set_result(result)


class WebhookIntake:
    def __init__(self, loop: FeedbackLoop, max_batch: int = MAX_BATCH) -> None:
        self.loop = loop
        self.max_batch = max_batch
        self._parked: list[_Pending] = []
        self._flush_scheduled = False
        self._configs: dict[str, tuple[float, ChannelConfig]] = {}
        self._pseudonym_key: bytes | None = None

    async def receive(self, channel: str, headers: Mapping[str, str], body: bytes) -> WebhookOutcome:
        """The delivery's outcome once it is committed; raises WebhookRejected or InvalidItem."""
        event_loop = asyncio.get_running_loop()
        future: asyncio.Future[WebhookOutcome] = event_loop.create_future()
        self._parked.append(_Pending(channel, headers, body, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Linger a moment so that deliveries arriving close together share one commit.
            event_loop.call_later(LINGER_S, self._flush)
        return await future

    def forget_channels(self) -> None:
        """Drop cached channel configurations (after a channel is added or removed in this process)."""
        self._configs = {}

    def _flush(self) -> None:
        batch, self._parked = self._parked[:self.max_batch], self._parked[self.max_batch:]
        self._flush_scheduled = bool(self._parked)
        if self._parked:
            asyncio.get_running_loop().call_soon(self._flush)
        try:
            self.process(batch)
        except BaseException as error:  # never leave a sender waiting for an answer
            log.exception("webhook batch failed")
            for pending in batch:
                pending.done(error)

    def _config(self, name: str) -> ChannelConfig:
        now = time.monotonic()
        cached = self._configs.get(name)
        if cached is not None and now - cached[0] < CONFIG_TTL_S:
            return cached[1]
        config = channel_config(self.loop, name)
        self._configs[name] = (now, config)
        return config

    def process(self, batch: list[_Pending]) -> None:
        accepted: list[tuple[_Pending, str, IntakeResult]] = []
        for pending in batch:
            try:
                config = self._config(pending.channel)
                result = prepare_delivery(self.loop, config, pending.headers, pending.body)
            except Exception as error:
                pending.done(error)
                continue
            if result.ignored is not None:
                pending.done(WebhookOutcome(ignored=result.ignored, report=None))
            else:
                accepted.append((pending, config.name, result))
        if not accepted:
            return
        try:
            with self.loop.session() as session:
                if self._pseudonym_key is None:
                    self._pseudonym_key = pseudonym_key(session)
                outcomes = store_batch(self.loop, session, [(name, result) for _, name, result in accepted],
                                       key=self._pseudonym_key)
        except Exception:
            log.warning("batch of %d deliveries failed; storing them one by one", len(accepted), exc_info=True)
            for pending, name, result in accepted:
                try:
                    outcome = store_with_retries(self.loop, name, result)
                except Exception as error:
                    pending.done(error)
                    continue
                pending.done(outcome)
            return
        for (pending, _, _), outcome in zip(accepted, outcomes, strict=True):
            pending.done(outcome)
