"""The FastAPI application factory; nothing is built at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.routes import channels, dashboard, deliveries, feedback, health, jira_webhook, rules, themes, webhooks
from core import __version__
from core.db import WalCheckpointer
from core.loop import FeedbackLoop
from core.settings import Settings


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
    for module in (health, feedback, themes, webhooks, channels, dashboard):
        app.include_router(module.router)
    for module in (deliveries, rules, jira_webhook):
        app.include_router(module.router)
    return app
