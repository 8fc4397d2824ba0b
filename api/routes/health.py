"""``/healthz`` (the process answers and the database too) and ``/readyz`` (ready for traffic: what it
depends on is reachable, each named with its state)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import LoopDep, SessionDep
from core.pipeline_state import check_dependencies

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    """Liveness and database reachability."""
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz", responses={503: {"description": "a dependency is unreachable"}})
def readyz(loop: LoopDep) -> JSONResponse:
    """Readiness: 200 when the database (and the broker, when one is configured) answer; 503 naming which not."""
    checks = check_dependencies(loop)
    ready = all(state in ("ok", "not configured") for state in checks.values())
    return JSONResponse({"status": "ready" if ready else "unready", "checks": checks},
                        status_code=200 if ready else 503, headers={} if ready else {"Retry-After": "5"})
