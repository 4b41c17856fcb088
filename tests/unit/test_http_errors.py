"""Every error answer has one shape: Chalice's own errors and API Gateway's are reshaped."""

from __future__ import annotations

import json

import pytest

from backend.gateway_responses import put_request
from backend.local.gateway import gateway_error
from chalicelib.api.http_errors import GATEWAY_RESPONSES, gateway_response, reshape_chalice_error
from chalicelib.core.contracts import ErrorCode


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (405, {"Code": "MethodNotAllowedError", "Message": "Unsupported method: PUT"}, "METHOD_NOT_ALLOWED"),
        (
            415,
            {"Code": "UnsupportedMediaType", "Message": "Unsupported media type: text/plain"},
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (400, {"Code": "BadRequestError", "Message": "Error Parsing JSON"}, "BAD_REQUEST"),
        (404, {"Code": "NotFoundError", "Message": "nope"}, "NOT_FOUND"),
        (418, {"Code": "SomethingNew", "Message": "teapot"}, "BAD_REQUEST"),
    ],
)
def test_chalice_errors_get_backdrops_shape(status: int, body: dict, code: str) -> None:
    assert reshape_chalice_error(status, body) == {"code": code, "message": body["Message"], "details": []}


def test_chalice_internal_errors_never_leak_their_text() -> None:
    shaped = reshape_chalice_error(500, {"Code": "InternalServerError", "Message": "KeyError: 'secret_table'"})
    assert shaped == {"code": "INTERNAL_ERROR", "message": "something went wrong on our side", "details": []}
    traceback_text = reshape_chalice_error(500, "Traceback (most recent call last): ...")
    assert traceback_text["code"] == "INTERNAL_ERROR" and "Traceback" not in traceback_text["message"]


def test_backdrops_own_errors_and_successes_are_left_alone() -> None:
    own = {"code": "NOT_FOUND", "message": "no job x", "details": []}
    assert reshape_chalice_error(404, own) is None
    assert reshape_chalice_error(200, {"Code": "x"}) is None
    assert reshape_chalice_error(400, {"code": "BAD_REQUEST", "message": "m"}) == {
        "code": "BAD_REQUEST",
        "message": "m",
        "details": [],
    }


@pytest.mark.parametrize("response", GATEWAY_RESPONSES, ids=lambda r: r.response_type)
def test_each_gateway_response_renders_to_the_error_shape(response) -> None:
    # API Gateway replaces $context.error.messageString with its message as a quoted JSON string
    rendered = response.template().replace("$context.error.messageString", json.dumps('Say "hi"'))
    body = json.loads(rendered)
    assert set(body) == {"code", "message", "details"} and body["details"] == []
    assert body["code"] in {c.value for c in ErrorCode}
    assert body == response.body('Say "hi"')


def test_catch_all_gateway_responses_keep_api_gateways_status() -> None:
    assert "statusCode" not in put_request("api1", gateway_response("DEFAULT_4XX"), None)
    assert "statusCode" not in put_request("api1", gateway_response("DEFAULT_5XX"), None)
    missing = put_request("api1", gateway_response("MISSING_AUTHENTICATION_TOKEN"), "https://app.example.com")
    assert missing["statusCode"] == "404"
    assert (
        missing["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
        == "'https://app.example.com'"
    )


def test_the_local_gateway_answers_as_the_deployed_gateway_responses_do() -> None:
    status, body = gateway_error(401, b'{"message":"Unauthorized"}')
    assert status == 401 and json.loads(body)["code"] == "UNAUTHORIZED"
    status, body = gateway_error(403, b'{"message": "Missing Authentication Token"}')
    assert (status, json.loads(body)) == (
        404,
        {"code": "NOT_FOUND", "message": "no such route: see GET /openapi.json", "details": []},
    )
