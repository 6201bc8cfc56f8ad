"""The OpenAPI document: complete, with the error envelope on every error status."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from service.codes import CODES

pytestmark = pytest.mark.anyio

SUCCESS = {"200", "201", "202", "204", "302", "304"}


async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or the component its `$ref` names."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = doc["components"]["schemas"][ref.removeprefix("#/components/schemas/")]
    return found


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    ]


async def test_every_avatar_endpoint_is_documented(client: httpx.AsyncClient) -> None:
    doc = await openapi(client)
    assert {(m, p) for m, p, _ in operations(doc)} >= {
        ("POST", "/v1/avatars/upload-face"),
        ("GET", "/v1/avatars/{avatar_id}"),
        ("DELETE", "/v1/avatars/{avatar_id}"),
        ("GET", "/v1/avatars"),
        ("GET", "/v1/avatars/{avatar_id}/image"),
        ("POST", "/v1/sessions"),
        ("GET", "/v1/sessions/{session_id}"),
        ("POST", "/v1/sessions/{session_id}/stop"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
    }


async def test_every_error_status_is_the_envelope_with_examples_of_known_codes(
    client: httpx.AsyncClient,
) -> None:
    doc = await openapi(client)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, op in operations(doc):
        responses = op["responses"]
        for status, response in responses.items():
            assert response["headers"]["X-Request-Id"]["schema"]["type"] == "string"
            if status in SUCCESS:
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}, (
                method,
                path,
                status,
            )
            for code, example in content["examples"].items():
                assert CODES[code].status == int(status)
                assert example["value"]["error"]["code"] == code
        if path.startswith("/v1/"):
            assert {"401", "500", "503"} <= set(responses), (method, path)
            assert op["security"] == [{"ApiKey": []}, {"Bearer": []}]


async def test_upload_face_documents_both_bodies_and_every_result(
    client: httpx.AsyncClient,
) -> None:
    doc = await openapi(client)
    op = doc["paths"]["/v1/avatars/upload-face"]["post"]
    content = op["requestBody"]["content"]
    form = resolve(doc, content["multipart/form-data"]["schema"])
    assert form["properties"]["file"]["format"] == "binary"
    assert set(resolve(doc, content["application/json"]["schema"])["properties"]) == {
        "image",
        "name",
        "user_exclusive",
        "metadata",
    }
    assert {"200", "201", "202", "400", "413", "415", "422", "503"} <= set(op["responses"])
    assert "Location" in op["responses"]["202"]["headers"]
    codes_422 = set(op["responses"]["422"]["content"]["application/json"]["examples"])
    assert {"face.none", "face.multiple", "request.invalid_field"} <= codes_422
    wait = next(p for p in op["parameters"] if p["name"] == "wait")
    assert (wait["schema"]["minimum"], wait["schema"]["maximum"]) == (0, 30)


async def test_docs_render(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text and "/openapi.json" in response.text


async def test_every_reference_resolves(client: httpx.AsyncClient) -> None:
    """A `$ref` into nowhere (pydantic's `#/$defs/...` in a hand-written body) stops
    a client generator from making the operation."""
    doc = await openapi(client)
    text = json.dumps(doc)
    assert "#/$defs/" not in text and '"$defs"' not in text
    named = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert named <= set(doc["components"]["schemas"])
    session_body = doc["paths"]["/v1/sessions"]["post"]["requestBody"]["content"]
    assert resolve(doc, session_body["application/json"]["schema"])["title"] == (
        "CreateSessionRequest"
    )


async def test_operation_ids_are_the_routes_names(client: httpx.AsyncClient) -> None:
    ids = {(m, p): op["operationId"] for m, p, op in operations(await openapi(client))}
    assert ids[("POST", "/v1/avatars/upload-face")] == "uploadFace"
    assert ids[("GET", "/v1/avatars/{avatar_id}")] == "getAvatar"
    assert ids[("POST", "/v1/sessions")] == "createSession"
    assert len(set(ids.values())) == len(ids)
    assert all(re.fullmatch(r"[a-z]+([A-Z][a-z]+)*", op_id) for op_id in ids.values())


async def test_nested_objects_and_timestamps_are_typed(client: httpx.AsyncClient) -> None:
    schemas = (await openapi(client))["components"]["schemas"]
    face = schemas["Face"]["properties"]
    assert face["pose"] == {"$ref": "#/components/schemas/Pose"}
    assert set(schemas["Pose"]["properties"]) == {"yaw", "pitch", "roll"}
    assert schemas["Pose"]["properties"]["yaw"]["type"] == "number"
    assert face["landmarks"] == {"$ref": "#/components/schemas/Landmarks"}
    assert face["quality"] == {"$ref": "#/components/schemas/Quality"}
    avatar = schemas["Avatar"]["properties"]
    assert avatar["created_at"]["format"] == "date-time"
    assert {"type": "string", "format": "date-time"} in avatar["ready_at"]["anyOf"]
    assert schemas["Session"]["properties"]["started_at"]["format"] == "date-time"


async def test_the_202_example_is_an_unfinished_avatar(client: httpx.AsyncClient) -> None:
    op = (await openapi(client))["paths"]["/v1/avatars/upload-face"]["post"]
    example = op["responses"]["202"]["content"]["application/json"]["example"]
    assert example["status"] == "queued" and example.get("images") is None
