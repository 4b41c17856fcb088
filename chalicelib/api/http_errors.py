"""One error shape for every answer of the API: `{"code", "message", "details"}`.

Backdrop's own errors already have it (`BackdropError.to_dict`). Two other layers answer errors
around the app's handlers, and are shaped here from the same vocabulary (contracts.ErrorCode):

- **Chalice** answers some requests itself, as `{"Code", "Message"}`: a method the route does
  not have (405), a content type it does not take (415), a binary answer without a matching
  Accept (400), a `ChaliceViewError` and its own 500. app.py's HTTP middleware passes each answer
  through `reshape_chalice_error`.
- **API Gateway** answers before the Lambda runs: the Cognito authorizer's 401, an unknown route
  (403 "Missing Authentication Token" by default; 404 here), throttling, a body over 10 MB,
  its 29 s timeout, its own 5xx. `GATEWAY_RESPONSES` are the REST API's Gateway Responses: the
  deploy puts them on the API (backend/gateway_responses.py) and the local stack's gateway
  answers the same way (backend/local/gateway.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from chalicelib.core.contracts import ErrorCode
from chalicelib.core.errors import error_body

# Chalice's error names (its ChaliceViewError subclasses and error_response codes) → Backdrop's.
CHALICE_ERROR_CODES: Final = {
    "BadRequest": ErrorCode.BAD_REQUEST,
    "BadRequestError": ErrorCode.BAD_REQUEST,
    "UnauthorizedError": ErrorCode.UNAUTHORIZED,
    "ForbiddenError": ErrorCode.FORBIDDEN,
    "NotFoundError": ErrorCode.NOT_FOUND,
    "MethodNotAllowedError": ErrorCode.METHOD_NOT_ALLOWED,
    "RequestTimeoutError": ErrorCode.GATEWAY_TIMEOUT,
    "ConflictError": ErrorCode.CONFLICT,
    "UnprocessableEntityError": ErrorCode.VALIDATION_FAILED,
    "TooManyRequestsError": ErrorCode.RATE_LIMITED,
    "UnsupportedMediaType": ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    "InternalServerError": ErrorCode.INTERNAL_ERROR,
}
# When a status is all there is to go on.
STATUS_CODES: Final = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.SERVICE_BUSY,
    504: ErrorCode.GATEWAY_TIMEOUT,
}
INTERNAL_MESSAGE: Final = "something went wrong on our side"


def code_for_status(status: int) -> ErrorCode:
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    return ErrorCode.INTERNAL_ERROR if status >= 500 else ErrorCode.BAD_REQUEST


def reshape_chalice_error(status: int, body: Any) -> dict[str, Any] | None:
    """The `{code, message, details}` form of an error body Chalice wrote itself (`{"Code",
    "Message"}`), or None when the body is already Backdrop's (or not an error)."""
    if status < 400:
        return None
    if isinstance(body, dict) and "code" in body and "message" in body:
        return None if "details" in body else {**body, "details": []}
    if isinstance(body, dict) and "Code" in body:
        code = CHALICE_ERROR_CODES.get(str(body["Code"])) or code_for_status(status)
        message = str(body.get("Message") or body["Code"])
        if code is ErrorCode.INTERNAL_ERROR:
            message = INTERNAL_MESSAGE  # never a stack trace or an internal name
        return error_body(code, message)
    return error_body(code_for_status(status), INTERNAL_MESSAGE if status >= 500 else str(body or "")[:500])


@dataclass(frozen=True)
class GatewayResponse:
    """One API Gateway response type, answered in Backdrop's shape."""

    response_type: str
    code: ErrorCode
    status: int | None  # what the client sees; None: API Gateway's own status (the DEFAULT_* catch-alls)
    message: str | None = None  # None: API Gateway's own message ($context.error.message)

    def template(self) -> str:
        """The response's mapping template (Velocity): API Gateway's message is quoted for
        JSON by `$context.error.messageString`."""
        message = json.dumps(self.message) if self.message is not None else "$context.error.messageString"
        return f'{{"code":"{self.code.value}","message":{message},"details":[]}}'

    def body(self, gateway_message: str) -> dict[str, Any]:
        """What the template renders to, given API Gateway's message (for the local stack)."""
        return error_body(self.code, self.message if self.message is not None else gateway_message)


GATEWAY_RESPONSES: Final = (
    GatewayResponse(
        "UNAUTHORIZED",
        ErrorCode.UNAUTHORIZED,
        401,
        "sign in first: this route needs a valid Cognito ID token in the Authorization header",
    ),
    GatewayResponse("EXPIRED_TOKEN", ErrorCode.UNAUTHORIZED, 401, "the token has expired: sign in again"),
    GatewayResponse("ACCESS_DENIED", ErrorCode.FORBIDDEN, 403),
    GatewayResponse("INVALID_SIGNATURE", ErrorCode.FORBIDDEN, 403),
    GatewayResponse("WAF_FILTERED", ErrorCode.FORBIDDEN, 403),
    # API Gateway says 403 "Missing Authentication Token" for a route that does not exist
    GatewayResponse("MISSING_AUTHENTICATION_TOKEN", ErrorCode.NOT_FOUND, 404, "no such route: see GET /openapi.json"),
    GatewayResponse("RESOURCE_NOT_FOUND", ErrorCode.NOT_FOUND, 404, "no such route: see GET /openapi.json"),
    GatewayResponse("THROTTLED", ErrorCode.RATE_LIMITED, 429, "too many requests: wait a moment and retry"),
    GatewayResponse("QUOTA_EXCEEDED", ErrorCode.RATE_LIMITED, 429),
    GatewayResponse("REQUEST_TOO_LARGE", ErrorCode.PAYLOAD_TOO_LARGE, 413, "the request is larger than 10 MB"),
    GatewayResponse("UNSUPPORTED_MEDIA_TYPE", ErrorCode.UNSUPPORTED_MEDIA_TYPE, 415),
    GatewayResponse("BAD_REQUEST_BODY", ErrorCode.BAD_REQUEST, 400),
    GatewayResponse("BAD_REQUEST_PARAMETERS", ErrorCode.BAD_REQUEST, 400),
    GatewayResponse(
        "INTEGRATION_TIMEOUT", ErrorCode.GATEWAY_TIMEOUT, 504, "the API did not answer within 29 s: try again"
    ),
    GatewayResponse("INTEGRATION_FAILURE", ErrorCode.INTERNAL_ERROR, 502, INTERNAL_MESSAGE),
    # every other 4xx and 5xx API Gateway may answer keeps its status and gets this shape
    GatewayResponse("DEFAULT_4XX", ErrorCode.BAD_REQUEST, None),
    GatewayResponse("DEFAULT_5XX", ErrorCode.INTERNAL_ERROR, None, INTERNAL_MESSAGE),
)


def gateway_response(response_type: str) -> GatewayResponse:
    for response in GATEWAY_RESPONSES:
        if response.response_type == response_type:
            return response
    raise KeyError(response_type)
