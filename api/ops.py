"""Operations endpoints: liveness and readiness (issue 4 adds metrics here).

Neither needs a key: load balancers and orchestrators call them.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.errors import DEFAULT_RETRY_AFTER, error_response, error_responses
from api.schemas import Health, Readiness, Workers
from service.errors import TransientError
from service.public import rfc3339
from service.registry import utcnow

router = APIRouter(tags=["operations"])

BrokerProbe = Callable[[], bool]


@router.get("/healthz", summary="The process is alive", response_model=Health)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    summary="Database, storage, broker and workers are there",
    description="`200` when every dependency answers and a worker beat recently (or the "
    "API started less than `ready_without_workers_seconds` ago), else "
    "`503 service.not_ready` naming what is missing. The body reports the workers: how "
    "many are alive, their newest heartbeat, the oldest queued avatar's wait.",
    response_model=Readiness,
    responses=error_responses("service.not_ready", "api_error"),
)
async def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    checks = dict(await run_in_threadpool(services.check_ready))
    broker_ready: BrokerProbe | None = request.app.state.broker_ready
    if broker_ready is not None:
        checks["broker"] = await run_in_threadpool(broker_ready)
    down = sorted(name for name, ok in checks.items() if not ok)
    problems = [f"{', '.join(down)} unreachable"] if down else []
    if not checks["database"]:
        return _not_ready(request, problems)
    try:
        workers = await run_in_threadpool(services.workers)
    except TransientError:  # it answers, but its tables do not (not migrated, locked)
        return _not_ready(request, [*problems, "the registry cannot be read"])
    seen = max(filter(None, (workers.last_heartbeat_at, request.app.state.started_at)))
    absent = (utcnow() - seen).total_seconds()
    checks["workers"] = absent <= services.settings.ready_without_workers_seconds
    if not checks["workers"]:
        problems.append(f"no worker seen for {absent:.0f} s")
    if problems:
        return _not_ready(request, problems)
    report = Workers(
        alive=workers.alive,
        last_heartbeat_at=(
            rfc3339(workers.last_heartbeat_at) if workers.last_heartbeat_at is not None else None
        ),
        oldest_queued_seconds=(
            round(workers.oldest_queued_seconds, 3)
            if workers.oldest_queued_seconds is not None
            else None
        ),
    )
    return JSONResponse(Readiness(checks=checks, workers=report).model_dump())


def _not_ready(request: Request, problems: list[str]) -> JSONResponse:
    return error_response(
        request,
        503,
        {"code": "service.not_ready", "message": f"Not ready: {'; '.join(problems)}."},
        retry_after=DEFAULT_RETRY_AFTER,
    )
