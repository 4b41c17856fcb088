"""Put Backdrop's error shape on API Gateway's own answers (its Gateway Responses).

`chalice deploy` overwrites the REST API from its swagger each time, which may reset Gateway
Responses (docs/aws-notes.md#n49-api-gateway-gateway-responses), so the deploy applies them after
every `chalice deploy` and then redeploys the stage.
What each response type answers is chalicelib/api/http_errors.py's GATEWAY_RESPONSES; the local
stack's gateway answers the same way.
"""

from __future__ import annotations

from typing import Any

from chalicelib.api.http_errors import GATEWAY_RESPONSES, GatewayResponse


def response_parameters(cors_origin: str | None) -> dict[str, str]:
    params = {"gatewayresponse.header.Content-Type": "'application/json'"}
    if cors_origin:  # a browser must be able to read the error, too
        params["gatewayresponse.header.Access-Control-Allow-Origin"] = f"'{cors_origin}'"
        params["gatewayresponse.header.Access-Control-Allow-Headers"] = "'Authorization,Content-Type'"
    return params


def put_request(rest_api_id: str, response: GatewayResponse, cors_origin: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "restApiId": rest_api_id,
        "responseType": response.response_type,
        "responseParameters": response_parameters(cors_origin),
        "responseTemplates": {"application/json": response.template()},
    }
    if response.status is not None:
        request["statusCode"] = str(response.status)
    return request


def apply(apigateway: Any, rest_api_id: str, stage: str, cors_origin: str | None = None) -> list[str]:
    """Put every Gateway Response on the API and redeploy `stage`; returns the response types."""
    applied = []
    for response in GATEWAY_RESPONSES:
        apigateway.put_gateway_response(**put_request(rest_api_id, response, cors_origin))
        applied.append(response.response_type)
    apigateway.create_deployment(
        restApiId=rest_api_id, stageName=stage, description="Backdrop gateway responses ({code, message, details})"
    )
    return applied
