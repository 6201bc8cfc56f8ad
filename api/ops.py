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
from api.schemas import Health, Readiness

router = APIRouter(tags=["operations"])

BrokerProbe = Callable[[], bool]


@router.get("/healthz", summary="The process is alive", response_model=Health)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    summary="Database, storage and broker are reachable",
    description="`200` when every dependency answers, else `503 service.not_ready` naming "
    "the ones that did not.",
    response_model=Readiness,
    responses=error_responses("service.not_ready", "api_error"),
)
async def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    checks = dict(await run_in_threadpool(services.check_ready))
    broker_ready: BrokerProbe | None = request.app.state.broker_ready
    if broker_ready is not None:
        checks["broker"] = await run_in_threadpool(broker_ready)
    down = sorted(name for name, ok in checks.items() if not ok)
    if down:
        return error_response(
            request,
            503,
            {"code": "service.not_ready", "message": f"Not ready: {', '.join(down)} unreachable."},
            retry_after=DEFAULT_RETRY_AFTER,
        )
    return JSONResponse(Readiness(checks=checks).model_dump())
