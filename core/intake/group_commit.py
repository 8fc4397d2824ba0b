"""The server's webhook intake: deliveries are committed in groups, each answered after its commit.

Each request parks its delivery and waits. A drain task takes everything parked (up to ``MAX_BATCH``)
and hands it to one writer thread, which verifies and parses each delivery with its channel's plugin,
enriches and stores the batch in one transaction; back on the event loop, only after the commit, every
sender gets its answer. Deliveries that arrive while a batch is being stored wait for the next one, so
under load batches grow and commits stay few: one commit per batch instead of per delivery is what lets
SQLite keep up.

Everything that can take long (a plugin's parsing, sentiment on long texts, a bulk deletion, waiting
for SQLite's write lock held by another process) happens in that thread, never on the event loop:
``/healthz`` and every other request are answered while a big delivery is stored. One thread, not a
pool: the batches are written in arrival order, and a single writer is what SQLite allows anyway. If a
batch fails as a whole, each delivery is retried in its own transaction, so a bad delivery fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.db import as_storage_unavailable
from core.errors import FeedbackloopError
from core.intake.batch import store_batch
from core.intake.channels import (
    ChannelConfig,
    WebhookOutcome,
    channel_config,
    prepare_delivery,
    store_with_retries,
    with_answer,
)
from core.loop import FeedbackLoop
from core.types import IntakeResult

MAX_BATCH = 512
LINGER_S = 0.005
# How long a channel's configuration is reused; a channel removed by another process (the CLI)
# stops receiving within this time, one removed through this server's API at once.
CONFIG_TTL_S = 2.0

log = logging.getLogger(__name__)

Answer = WebhookOutcome | BaseException


@dataclass
class _Pending:
    channel: str
    headers: Mapping[str, str]
    body: bytes
    future: asyncio.Future[WebhookOutcome]
    request_id: str | None = None

    def done(self, result: Answer) -> None:
        """Answer the sender, then log the answer; on the event loop only (asyncio futures are not thread-safe)."""
        if not self.future.done():  # else the sender went away; what it sent is stored all the same
            if isinstance(result, BaseException):
                self.future.set_exception(result)
            else:
                self.future.set_result(result)
        try:
            log_answer(self, result)
        except Exception:  # a log line must never keep the rest of the batch from its answers
            log.exception("webhook answer not logged")


class WebhookIntake:
    def __init__(self, loop: FeedbackLoop, max_batch: int = MAX_BATCH) -> None:
        self.loop = loop
        self.max_batch = max_batch
        self._parked: list[_Pending] = []
        self._drainer: asyncio.Task[None] | None = None
        self._configs: dict[str, tuple[float, ChannelConfig]] = {}
        # The writer thread starts with the first batch and ends when the intake is collected.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-writer")

    async def receive(self, channel: str, headers: Mapping[str, str], body: bytes,
                      request_id: str | None = None) -> WebhookOutcome:
        """The delivery's outcome once it is committed; raises WebhookRejected or InvalidItem.

        ``request_id`` is kept on the items the delivery creates or edits (core/logs.py)."""
        event_loop = asyncio.get_running_loop()
        future: asyncio.Future[WebhookOutcome] = event_loop.create_future()
        self._parked.append(_Pending(channel, headers, body, future, request_id))
        if self._drainer is None or self._drainer.done():
            self._drainer = event_loop.create_task(self._drain())
        return await future

    def forget_channels(self) -> None:
        """Drop cached channel configurations (after a channel is added or removed in this process)."""
        self._configs = {}

    async def _drain(self) -> None:
        """Store what is parked, batch after batch, until nothing is left; one batch in the writer at a time."""
        # Linger a moment so that deliveries arriving close together share one commit.
        await asyncio.sleep(LINGER_S)
        event_loop = asyncio.get_running_loop()
        while self._parked:
            batch, self._parked = self._parked[:self.max_batch], self._parked[self.max_batch:]
            try:
                answers = await event_loop.run_in_executor(self._writer, self.process, batch)
            except asyncio.CancelledError:  # the server is stopping: no sender is told "stored", so they resend
                for pending in (*batch, *self._parked):
                    pending.future.cancel()
                raise
            except Exception as error:  # never leave a sender waiting for an answer
                log.exception("webhook batch failed")
                answers = [as_storage_unavailable(error)] * len(batch)
            for pending, answer in zip(batch, answers, strict=True):
                pending.done(answer)

    def _config(self, name: str) -> ChannelConfig:
        now = time.monotonic()
        cached = self._configs.get(name)
        if cached is not None and now - cached[0] < CONFIG_TTL_S:
            return cached[1]
        config = channel_config(self.loop, name)
        self._configs[name] = (now, config)
        return config

    def process(self, batch: list[_Pending]) -> list[Answer]:
        """Each delivery's answer, in the batch's order; runs in the writer thread and touches no future."""
        answers: list[Answer | None] = [None] * len(batch)
        accepted: list[tuple[int, str, IntakeResult]] = []
        for index, pending in enumerate(batch):
            try:
                config = self._config(pending.channel)
                result = prepare_delivery(self.loop, config, pending.headers, pending.body, pending.request_id)
            except Exception as error:  # the database away (channel lookup): 503, the sender retries
                answers[index] = as_storage_unavailable(error)
                continue
            if result.ignored is not None:
                answers[index] = WebhookOutcome(ignored=result.ignored, report=None, answer=result.answer)
            else:
                accepted.append((index, config.name, result))
        if accepted:
            for index, answer in self._store(accepted):
                answers[index] = answer
        return [answer if answer is not None else RuntimeError("delivery not processed") for answer in answers]

    def _store(self, accepted: list[tuple[int, str, IntakeResult]]) -> list[tuple[int, Answer]]:
        try:
            with self.loop.session() as session:
                outcomes = store_batch(self.loop, session, [(name, result) for _, name, result in accepted])
        except Exception:
            log.warning("batch of %d deliveries failed; storing them one by one", len(accepted), exc_info=True)
            return [(index, self._store_alone(name, result)) for index, name, result in accepted]
        return [(index, with_answer(outcome, result))
                for (index, _, result), outcome in zip(accepted, outcomes, strict=True)]

    def _store_alone(self, name: str, result: IntakeResult) -> Answer:
        try:
            return with_answer(store_with_retries(self.loop, name, result), result)
        except Exception as error:  # a database that is down or restarting: 503 with Retry-After, not a 500
            return as_storage_unavailable(error)


def log_answer(pending: _Pending, answer: Answer) -> None:
    """One line per delivery once it is answered: stored (with the items it created or changed), or refused."""
    fields = {"request_id": pending.request_id, "channel": pending.channel}
    if isinstance(answer, BaseException):
        status = answer.status_code if isinstance(answer, FeedbackloopError) else 500
        log.info("webhook.rejected", extra={**fields, "status": status, "reason": str(answer)})
        return
    if answer.ignored is not None:
        log.info("webhook.ignored", extra={**fields, "reason": answer.ignored})
        return
    report = answer.report
    # Not "created": LogRecord has an attribute of that name, which extra= may not overwrite.
    counts = {"redelivery": answer.redelivery, "new_items": report.created if report else 0,
              "updated_items": report.updated if report else 0,
              "duplicate_items": report.duplicates if report else 0}
    # No item ids: the bulk INSERT does not return them (RETURNING cost a third of its speed); the items keep the
    # request id, and the worker's lines pair the two.
    log.info("webhook.stored", extra={**fields, **counts})
