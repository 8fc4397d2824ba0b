"""The baseline for the intake benchmark: a FastAPI endpoint that answers 202 and does nothing else."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse


def create_bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/webhooks/{channel}", status_code=202)
    async def accept(channel: str) -> JSONResponse:
        return JSONResponse({"status": "accepted"}, status_code=202)

    return app
