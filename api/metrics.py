"""``GET /metrics`` in Prometheus's text format, for a key with the ``metrics`` scope.

Each app has its own registry (nothing is made at import, and two apps in one process count apart).
Counters and latencies are this process's; queue depths, the outbox's states, failing deliveries and the
worker's embedding throughput are read from the database at each scrape (``core.pipeline_state``,
``core.themes.embedding``), so every process reports the same.
Labels are bounded: a request's route template (never its raw path), a webhook's channel only when the
channel exists.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import requires
from api.errors import error_responses
from core.auth.api_keys import ApiCaller
from core.loop import FeedbackLoop
from core.pipeline_state import read_pipeline_state
from core.themes.embedding import THROUGHPUT_WINDOW, recent_throughput

router = APIRouter(tags=["health"])
# From a cheap /healthz (about a millisecond) to a big batch or a slow page.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PipelineCollector(Collector):
    """Gauges read from the database when Prometheus scrapes."""

    def __init__(self, loop: FeedbackLoop) -> None:
        self.loop = loop

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.loop.session() as session:
            state = read_pipeline_state(session)
            throughput = recent_throughput(session)
        depth = GaugeMetricFamily("feedbackloop_queue_depth", "Work waiting, per queue", labels=["queue"])
        oldest = GaugeMetricFamily("feedbackloop_queue_oldest_seconds",
                                   "How long the oldest waiting work of each queue has waited", labels=["queue"])
        for name, queue in sorted(state.queues.items()):
            depth.add_metric([name], queue.depth)
            oldest.add_metric([name], queue.oldest_age_s or 0.0)
        outbox = GaugeMetricFamily("feedbackloop_outbox_deliveries", "Deliveries per state", labels=["state"])
        for delivery_state, count in sorted(state.deliveries_by_state.items()):
            outbox.add_metric([delivery_state], count)
        failing = GaugeMetricFamily("feedbackloop_failing_deliveries",
                                    "Deliveries whose last attempt failed, per target type", labels=["target_type"])
        for target_type, count in sorted(state.failing_deliveries_by_target.items()):
            failing.add_metric([target_type], count)
        unthemed = GaugeMetricFamily("feedbackloop_items_without_theme", "Embedded items in no theme")
        unthemed.add_metric([], state.items_without_theme)
        # The worker embeds, so its batches (core/themes/embedding.py) are read here from the database.
        embedding = GaugeMetricFamily(
            "feedbackloop_embedding_texts_per_second",
            f"Texts embedded per second inside the embedder, over each model's last {THROUGHPUT_WINDOW} batches",
            labels=["model"])
        for figure in throughput:
            embedding.add_metric([figure.model], figure.texts_per_second)
        yield from (depth, oldest, outbox, failing, unthemed, embedding)


class ApiMetrics:
    """One app's registry and the series the API itself counts."""

    def __init__(self, loop: FeedbackLoop) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "feedbackloop_http_request_duration_seconds", "Time to answer a request, by route and status",
            ["method", "route", "status"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.webhook_deliveries = Counter(
            "feedbackloop_webhook_deliveries", "Webhook deliveries by channel and outcome",
            ["channel", "outcome"], registry=self.registry)
        self.registry.register(PipelineCollector(loop))

    def count_webhook(self, channel: str | None, outcome: str) -> None:
        self.webhook_deliveries.labels(channel=channel or "unknown", outcome=outcome).inc()


def route_template(scope: Scope) -> str:
    """The matched route's path template, so ``/themes/7`` and ``/themes/8`` are one series."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "/static" if str(scope.get("path", "")).startswith("/static/") else "unmatched"


class RequestTimingMiddleware:
    """Times every HTTP request from its first byte in to its answer's start."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.metrics.request_seconds.labels(method=scope["method"], route=route_template(scope),
                                                status=str(status["code"])).observe(time.perf_counter() - started)


def app_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


MetricsKey = Annotated[ApiCaller, Depends(requires("metrics"))]


@router.get("/metrics", operation_id="metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **error_responses(401, 403)})
def metrics(_caller: MetricsKey, request: Request) -> Response:
    """Prometheus text exposition: request latency, webhook outcomes, queues, the outbox."""
    return Response(generate_latest(app_metrics(request).registry), media_type=CONTENT_TYPE_LATEST)
