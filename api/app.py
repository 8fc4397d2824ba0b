"""The FastAPI application factory; nothing is built at import."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.auth_middleware import KeyFirstMiddleware
from api.body_limits import BodyLimitMiddleware
from api.errors import install_error_handlers
from api.metrics import ApiMetrics, RequestTimingMiddleware
from api.metrics import router as metrics_router
from api.pages import admin as admin_pages
from api.pages import admin_rules as admin_rules_pages
from api.pages import admin_users as admin_users_pages
from api.pages import auth as auth_pages
from api.pages import champions as champion_pages
from api.pages import champions_admin as champion_admin_pages
from api.pages import channels as channel_pages
from api.pages import oidc as oidc_pages
from api.pages import overview as overview_page
from api.pages import public as public_page
from api.pages import theme as theme_page
from api.pages import triage as triage_page
from api.pages.common import STATIC_DIR, is_page_path, make_templates
from api.pages.errors import page_error
from api.rate_limits import RateLimitMiddleware, RateLimits
from api.request_ids import RequestIdMiddleware
from api.routes import (
    champions,
    channels,
    deliveries,
    feedback,
    health,
    jira_webhook,
    rules,
    themes,
    vitality,
    webhooks,
)
from api.routes import published as published_routes
from api.security_headers import SecurityHeadersMiddleware
from core import __version__
from core.db import WalCheckpointer
from core.intake.group_commit import WebhookIntake
from core.logs import configure_logging
from core.loop import FeedbackLoop
from core.settings import Settings, get_settings

SWITCH_INTERVAL_S = 0.001


def create_app(settings: Settings, loop: FeedbackLoop | None = None) -> FastAPI:
    """An app over its own FeedbackLoop (engine, plugins); the schema is migrated before it serves."""
    feedback_loop = loop or FeedbackLoop(settings, serving=True)
    feedback_loop.migrate()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        checkpointer = WalCheckpointer(feedback_loop.engine) if loop is None else None
        if checkpointer is not None:
            checkpointer.start()
        yield
        if checkpointer is not None:
            checkpointer.stop()
        if loop is None:  # we made it, we close it
            feedback_loop.close()

    app = FastAPI(title="feedbackloop", version=__version__, lifespan=lifespan,
                  description="Customer feedback in, themes out, owners told.")
    app.state.loop = feedback_loop
    # One intake per app: its group commits and channel cache belong to this app's engine.
    app.state.webhook_intake = WebhookIntake(feedback_loop)
    app.state.metrics = ApiMetrics(feedback_loop)
    install_error_handlers(app)
    for module in (health, feedback, themes, webhooks, channels, deliveries, rules, jira_webhook, champions,
                   vitality):
        app.include_router(module.router)
    app.include_router(metrics_router)
    app.include_router(published_routes.router)
    install_workspace(app, feedback_loop)
    # Innermost, so it runs after the key check: a keyed /api/v1 body is read up to its limit (413 beyond)
    # before anything parses it. (FastAPI's own max_body_size answers a declared oversize body with a plain
    # text 413, not the one error shape, so the limit is ours.)
    app.add_middleware(BodyLimitMiddleware, max_bytes=feedback_loop.settings.api_max_body_bytes)
    # Around it: /api/v1 answers 401 before a body is read (the rate limits outside it see
    # those 401s); the caller it finds rides in the request scope to the route dependencies.
    app.add_middleware(KeyFirstMiddleware, loop=feedback_loop)
    # Added last, so they run first: a request over its budget is refused before any other work, and every
    # answer, a 429 too, carries the security headers.
    app.add_middleware(RateLimitMiddleware, settings=feedback_loop.settings)
    app.add_middleware(SecurityHeadersMiddleware,
                       docs_paths=(app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url))
    app.add_middleware(RequestTimingMiddleware, metrics=app.state.metrics)  # the whole answer's time
    # Outermost: every answer carries its request id (a 429 too) and is logged under it.
    app.add_middleware(RequestIdMiddleware, settings=feedback_loop.settings)
    return app


def install_workspace(app: FastAPI, feedback_loop: FeedbackLoop) -> None:
    """The signed-in workspace: its pages, their static files, HTML errors and the sign-in budget."""
    app.state.templates = make_templates()
    app.state.page_error = page_error
    app.state.is_page_path = is_page_path
    app.state.sign_in_limits = RateLimits(feedback_loop.settings)
    for module in (auth_pages, oidc_pages, overview_page, theme_page, triage_page, admin_pages, admin_rules_pages,
                   admin_users_pages, public_page, champion_pages, channel_pages, champion_admin_pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def app_factory() -> FastAPI:
    """The served app, built by uvicorn from the environment's settings (``feedbackloop serve``)."""
    settings = get_settings()
    configure_logging(settings)  # in each server process, after uvicorn set up its own loggers
    app = create_app(settings)
    # Everything loaded so far lives as long as the process: moving it out of the collector's sight
    # keeps full collections short, which would otherwise show up as latency spikes under load.
    gc.freeze()
    # Storage and enrichment run in threads beside the event loop; with CPython's default 5 ms switch
    # interval every hand-back of the GIL to the loop can wait that long, several times per request, so
    # a cheap request (/healthz) took ~60 ms while a big batch was enriched. 1 ms keeps the loop responsive
    # for a small cost in the threads' throughput (bench/RESULTS.md, "Event loop under load").
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return app
