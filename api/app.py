"""The FastAPI application factory; nothing is built at import."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import channels, dashboard, deliveries, feedback, health, jira_webhook, rules, themes, webhooks
from core import __version__
from core.db import WalCheckpointer
from core.intake.group_commit import WebhookIntake
from core.loop import FeedbackLoop
from core.settings import Settings, get_settings


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
    install_error_handlers(app)
    for module in (health, feedback, themes, webhooks, channels, dashboard, deliveries, rules, jira_webhook):
        app.include_router(module.router)
    return app


def app_factory() -> FastAPI:
    """The served app, built by uvicorn from the environment's settings (``feedbackloop serve``)."""
    app = create_app(get_settings())
    # Everything loaded so far lives as long as the process: moving it out of the collector's sight
    # keeps full collections short, which would otherwise show up as latency spikes under load.
    gc.freeze()
    return app
