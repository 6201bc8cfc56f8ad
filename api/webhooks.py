"""The webhook endpoints of an account: register, list, get (with its recent
deliveries), delete. What is sent, how it is signed and retried is
service/webhooks.py's; the README shows how a receiver verifies a delivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import AccountDep, ServicesDep
from api.errors import KEYED_ROUTE_CODES, error_responses
from api.schemas import Timestamp
from service.domain import DeliveryStatus
from service.public import endpoint_json
from service.webhooks import EventType

router = APIRouter(prefix="/v1/webhook_endpoints", tags=["webhooks"])

ENDPOINT_ID_EXAMPLE = "whep_01JD3Z9B2C4D5E6F7G8H9J0K1M"
EndpointIdPath = Annotated[
    str, Path(description="The webhook endpoint's id.", examples=[ENDPOINT_ID_EXAMPLE])
]
_location_header = {
    "Location": {"description": "The endpoint's URL.", "schema": {"type": "string"}}
}


class CreateWebhookEndpoint(BaseModel):
    """The body of POST /v1/webhook_endpoints."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2048,
        description="Where events are POSTed: an http(s) URL whose host resolves to public "
        "addresses only (the image URL rules; `400 webhook.url_forbidden` otherwise). "
        "Checked again at every delivery.",
        examples=["https://example.com/hooks/avatar-prep"],
    )
    events: list[EventType] | None = Field(
        None,
        min_length=1,
        description="The event types to receive; all of them when omitted.",
        examples=[[EventType.AVATAR_READY, EventType.AVATAR_FAILED]],
    )
    description: str | None = Field(None, max_length=200, examples=["production"])


class WebhookEndpoint(BaseModel):
    """A registered endpoint (its secret is shown only at creation)."""

    model_config = ConfigDict(extra="allow")

    object: str = Field(examples=["webhook_endpoint"])
    id: str = Field(examples=[ENDPOINT_ID_EXAMPLE])
    url: str
    events: list[EventType]
    description: str | None
    created_at: Timestamp


class CreatedWebhookEndpoint(WebhookEndpoint):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64 of 32 bytes), shown only here: "
        "keep it to verify `webhook-signature`.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookEndpointList(BaseModel):
    object: str = Field(examples=["list"])
    data: list[WebhookEndpoint]
    has_more: bool


class WebhookDelivery(BaseModel):
    """One event sent (or being sent) to one endpoint."""

    id: str = Field(examples=["dlv_01JD3Z9B2C4D5E6F7G8H9J0K1M"])
    event_id: str = Field(
        description="The `webhook-id` header of every attempt.",
        examples=["evt_01JD3Z9B2C4D5E6F7G8H9J0K1M"],
    )
    event_type: EventType
    status: DeliveryStatus = Field(
        description="`pending` (due at `next_attempt_at`), `delivered` (a 2xx answer) or "
        "`exhausted` (every attempt failed)."
    )
    attempts: int
    last_error: str | None = Field(examples=["HTTP 500."])
    last_attempt_at: Timestamp | None
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    created_at: Timestamp


class WebhookEndpointDetail(WebhookEndpoint):
    recent_deliveries: list[WebhookDelivery] = Field(
        description="Its last 20 deliveries, newest first."
    )


@router.post(
    "",
    summary="Register a webhook endpoint",
    description="Events of this account (`avatar.ready`, `avatar.failed`, `session.started`, "
    "`session.ended`) are POSTed to `url`, signed as Standard Webhooks signs them "
    "(`webhook-id`, `webhook-timestamp`, `webhook-signature`), retried with exponential "
    "backoff until a 2xx answer or the last attempt. The `secret` is returned only here.",
    status_code=201,
    response_model=CreatedWebhookEndpoint,
    responses={
        201: {"description": "The endpoint, with its secret.", "headers": _location_header},
        **error_responses(
            "webhook.url_invalid",
            "webhook.url_forbidden",
            "webhook.too_many",
            "request.malformed_body",
            "request.invalid_field",
            *KEYED_ROUTE_CODES,
        ),
    },
)
async def create_webhook_endpoint(
    body: CreateWebhookEndpoint, account: AccountDep, services: ServicesDep
) -> JSONResponse:
    endpoint = await run_in_threadpool(
        lambda: services.webhooks.create_endpoint(
            account.id, body.url, events=body.events, description=body.description
        )
    )
    return JSONResponse(
        endpoint_json(endpoint),
        status_code=201,
        headers={"Location": f"/v1/webhook_endpoints/{endpoint.id}"},
    )


@router.get(
    "",
    summary="List this account's webhook endpoints",
    response_model=WebhookEndpointList,
    responses=error_responses(*KEYED_ROUTE_CODES),
)
async def list_webhook_endpoints(account: AccountDep, services: ServicesDep) -> JSONResponse:
    endpoints = await run_in_threadpool(services.webhooks.list_endpoints, account.id)
    data = [endpoint_json(e) for e in endpoints]
    return JSONResponse({"object": "list", "data": data, "has_more": False})


@router.get(
    "/{endpoint_id}",
    summary="Get a webhook endpoint and its recent deliveries",
    response_model=WebhookEndpointDetail,
    responses=error_responses("webhook.not_found", *KEYED_ROUTE_CODES),
)
async def get_webhook_endpoint(
    endpoint_id: EndpointIdPath, account: AccountDep, services: ServicesDep
) -> JSONResponse:
    endpoint = await run_in_threadpool(services.webhooks.get_endpoint, account.id, endpoint_id)
    return JSONResponse(endpoint_json(endpoint))


@router.delete(
    "/{endpoint_id}",
    summary="Delete a webhook endpoint",
    description="Nothing more is sent to it, pending retries included.",
    status_code=204,
    response_class=Response,
    responses=error_responses("webhook.not_found", *KEYED_ROUTE_CODES),
)
async def delete_webhook_endpoint(
    endpoint_id: EndpointIdPath, account: AccountDep, services: ServicesDep
) -> Response:
    await run_in_threadpool(services.webhooks.delete_endpoint, account.id, endpoint_id)
    return Response(status_code=204)
