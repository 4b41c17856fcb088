"""Serve the Chalice app on 127.0.0.1 with ID tokens verified as API Gateway's Cognito authorizer does.

`chalice local` decodes any token without checking it
(docs/aws-notes.md#n22-chalice-does-not-verify-tokens-locally). Here every route with
the Cognito authorizer needs a token whose RS256 signature verifies against the local user
pool's JWKS, that has not expired, whose issuer is the pool, whose audience is the app client
whose token_use is "id" and that names its user (`sub`, exactly a UUID as Cognito's are); otherwise the answer is 401, as API
Gateway's would be. The local stack signs its pool's tokens with a key made per run
(backend/local/aws_gateway.py), so a token signed with moto's published key is refused too.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import requests
from chalice import CognitoUserPoolAuthorizer
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    LocalChalice,
    LocalDevServer,
    LocalGateway,
    LocalGatewayAuthorizer,
    LocalGatewayException,
    NotAuthorizedError,
    create_local_server,
)

from chalicelib.api.auth import COGNITO_SUB_RE
from chalicelib.api.http_errors import gateway_response


class CognitoTokenVerifier:
    def __init__(self, jwks_url: str, issuer: str, audience: str, clock: Any = time.time) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.clock = clock
        self._keys: Any = None
        self._lock = threading.Lock()

    def _key_set(self) -> Any:
        from joserfc.jwk import KeySet

        with self._lock:
            if self._keys is None:
                self._keys = KeySet.import_key_set(requests.get(self.jwks_url, timeout=10).json())
            return self._keys

    def claims(self, token: str) -> dict[str, Any]:
        """Verified claims, or ValueError saying why the token is refused."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        token = token.removeprefix("Bearer ").strip()
        try:
            decoded = jwt.decode(token, self._key_set(), algorithms=["RS256"])
            registry = jwt.JWTClaimsRegistry(
                now=int(self.clock()),
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                token_use={"essential": True, "value": "id"},
                exp={"essential": True},
                sub={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"token refused: {type(exc).__name__}: {exc}") from exc
        if not isinstance(decoded.claims.get("sub"), str):
            raise ValueError("token refused: sub is not a string")
        if not COGNITO_SUB_RE.fullmatch(decoded.claims["sub"]):  # the whole string: no "<uuid>\n"
            raise ValueError("token refused: sub is not a Cognito user id (a UUID)")
        return dict(decoded.claims)


class VerifyingAuthorizer(LocalGatewayAuthorizer):
    def __init__(self, app_object: Any, verifier: CognitoTokenVerifier) -> None:
        super().__init__(app_object)
        self.verifier = verifier

    def authorize(self, raw_path: str, lambda_event: dict[str, Any], lambda_context: Any) -> Any:
        route = self._route_for_event(lambda_event)
        if route is None or not isinstance(route.authorizer, CognitoUserPoolAuthorizer):
            return lambda_event, lambda_context
        headers = {k.lower(): v for k, v in (lambda_event.get("headers") or {}).items()}
        token = headers.get("authorization")
        if not token:
            raise NotAuthorizedError({"x-amzn-ErrorType": "UnauthorizedException"}, b'{"message":"Unauthorized"}')
        try:
            claims = self.verifier.claims(token)
        except Exception as exc:  # whatever is wrong with a token, the answer is 401, never a dropped connection
            raise NotAuthorizedError(
                {"x-amzn-ErrorType": "UnauthorizedException"}, b'{"message":"Unauthorized"}'
            ) from exc
        lambda_event = self._update_lambda_event(
            lambda_event, {"context": {"claims": claims}, "principalId": claims.get("cognito:username", claims["sub"])}
        )
        return lambda_event, lambda_context


# What API Gateway answers itself, shaped by the REST API's Gateway Responses (chalicelib/api/http_errors.py)
_LOCAL_GATEWAY_ERRORS = {401: "UNAUTHORIZED", 403: "MISSING_AUTHENTICATION_TOKEN"}


def gateway_error(status: int, body: bytes | None) -> tuple[int, bytes]:
    """The status and body API Gateway sends, with Backdrop's Gateway Responses, for one of the
    local gateway's own errors (401 from the authorizer, 403 for a route that does not exist)."""
    try:
        message = str(json.loads(body or b"{}").get("message") or "")
    except ValueError:
        message = ""
    response = gateway_response(_LOCAL_GATEWAY_ERRORS.get(status, "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"))
    return response.status or status, json.dumps(response.body(message)).encode()


class _Handler(ChaliceRequestHandler):
    verifier: CognitoTokenVerifier

    def _send_error_response(self, error: LocalGatewayException) -> None:
        status, body = gateway_error(error.CODE, error.body)
        self._send_http_response(status, {**error.headers, "Content-Type": "application/json"}, body)

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Config) -> None:
        self.local_gateway = LocalGateway(app_object, config)
        self.local_gateway._authorizer = VerifyingAuthorizer(app_object, self.verifier)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def log_message(self, format: str, *args: Any) -> None:  # the base class's parameter name
        pass  # quiet: the stack prints its own progress


def serve(
    app_object: Any, verifier: CognitoTokenVerifier, host: str, port: int
) -> tuple[LocalDevServer, threading.Thread]:
    """Start the API server in a daemon thread; returns (server, thread)."""
    handler = type("VerifyingHandler", (_Handler,), {"verifier": verifier})
    config = Config.create(chalice_stage="local", app_name="backdrop")
    # create_local_server rebases the app's class once; a second stack in the same process reuses it
    if isinstance(app_object, LocalChalice):
        server = LocalDevServer(app_object, config, host, port)
    else:
        server = create_local_server(app_object, config, host, port)
    server.server.RequestHandlerClass = functools.partial(handler, app_object=app_object, config=config)  # type: ignore[assignment]
    thread = threading.Thread(target=server.server.serve_forever, name="backdrop-api", daemon=True)
    thread.start()
    return server, thread
