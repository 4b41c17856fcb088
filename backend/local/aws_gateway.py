"""The local stack's AWS endpoint: moto behind the checks AWS itself makes.

moto answers any request, signed or not, and ignores presigned-POST policies: on the local stack
a user could change the key in their own upload grant and overwrite someone else's original,
upload 16 MiB or text/html, list the bucket without credentials, or mint tokens with moto's
published signing key. This WSGI layer sits in front of moto's app, on the same port (there is
no unchecked door beside it), and refuses what AWS refuses:

- every request must carry a valid Signature Version 4 made with the stack's own credentials,
  generated per run (an Authorization header, a presigned URL within its expiry, or a
  presigned-POST policy);
- a presigned POST must match its policy: signature, expiry, bucket, every form field covered
  by a condition (exact, `eq`, `starts-with`), and the file within `content-length-range`;
- the only unsigned calls are Cognito's public user APIs (sign in, refresh, ...), as on AWS, and
  self sign-up is refused because the deployed pool is admin-create-only;
- the user pool's JWKS is the per-run key's, and moto signs the pool's tokens with that key;
- moto's own control API (/moto-api) closes once the stack is provisioned.

What AWS checks and moto skips: docs/aws-notes.md#n41-s3-post-policies-and-sigv4-and-what-moto-skips
and docs/aws-notes.md#n42-moto-cognito-token-signing-key. Used by the local stack only; nothing
here is deployed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_CLOCK_SKEW_S = 15 * 60  # S3 and the other services: RequestTimeTooSkewed beyond 15 minutes
# Fields a POST form may carry without a policy condition (S3's POST policy rules).
POST_FIELDS_WITHOUT_CONDITION = frozenset({"policy", "x-amz-signature", "file"})
# Cognito user-pool APIs that AWS serves without SigV4 (they carry a password or a token instead).
PUBLIC_COGNITO_ACTIONS = frozenset(
    {
        "InitiateAuth",
        "RespondToAuthChallenge",
        "GetUser",
        "ChangePassword",
        "ForgotPassword",
        "ConfirmForgotPassword",
        "GlobalSignOut",
        "RevokeToken",
        "GetUserAttributeVerificationCode",
        "VerifyUserAttribute",
    }
)
# Public on AWS too, but the deployed pool sets AllowAdminCreateUserOnly: AWS answers NotAuthorized.
ADMIN_CREATE_ONLY_ACTIONS = frozenset({"SignUp", "ConfirmSignUp", "ResendConfirmationCode"})
COGNITO_TARGET_PREFIX = "AWSCognitoIdentityProviderService."
JWKS_PATH_RE = re.compile(r"^/(?P<pool>[\w-]+_[0-9A-Za-z]+)/\.well-known/jwks\.json$")
OPENID_PATH_RE = re.compile(r"^/[\w-]+_[0-9A-Za-z]+/\.well-known/openid-configuration$")


@dataclass(frozen=True)
class Credentials:
    """The stack's AWS credentials: random per run, so nobody outside the process can sign."""

    access_key: str
    secret_key: str
    session_token: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(
            access_key="ASIA" + secrets.token_hex(8).upper(),
            secret_key=secrets.token_urlsafe(30),
            session_token=secrets.token_urlsafe(48),
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "AWS_SECURITY_TOKEN": self.session_token,  # botocore reads this older name first
        }


class Refused(Exception):
    """A request AWS would refuse: HTTP status, AWS error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


# ------------------------------------------------------------------------------------ SigV4


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(raw_query: str, drop: Iterable[str] = ()) -> str:
    """SigV4's canonical query string from the query as sent: each name and value decoded and
    re-encoded the AWS way, sorted; `drop` names are left out (X-Amz-Signature)."""
    dropped = set(drop)
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name, value = unquote(name), unquote(value)
        if name not in dropped:
            pairs.append((_uri_encode(name), _uri_encode(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_uri(raw_path: str, service: str) -> str:
    """S3 signs the path as sent; the other services sign it normalized and encoded again."""
    if service == "s3":
        return raw_path or "/"
    from botocore.utils import normalize_url_path

    return quote(normalize_url_path(raw_path or "/"), safe="/~")


def _trim(value: str) -> str:
    return " ".join(value.split())


@dataclass(frozen=True)
class SignedRequest:
    """What a SigV4 check needs from an HTTP request, with header names in lower case."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]
    body: bytes | None = None

    def canonical_request(self, service: str, signed_headers: list[str], payload_hash: str, drop: Iterable[str]) -> str:
        lines = [self.method.upper(), canonical_uri(self.raw_path, service), canonical_query(self.raw_query, drop)]
        for name in signed_headers:
            if name not in self.headers:
                raise Refused(403, "SignatureDoesNotMatch", f"the signed header {name!r} is missing")
            lines.append(f"{name}:{_trim(self.headers[name])}")
        lines += ["", ";".join(signed_headers), payload_hash]
        return "\n".join(lines)


@dataclass(frozen=True)
class Scope:
    access_key: str
    date: str
    region: str
    service: str

    @classmethod
    def parse(cls, credential: str) -> Scope:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise Refused(400, "AuthorizationHeaderMalformed", f"the credential {credential!r} is malformed")
        return cls(*parts[:4])

    @property
    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def _timestamp(value: str) -> float:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise Refused(403, "AccessDenied", f"X-Amz-Date {value!r} is not a date") from exc


class SigV4Checker:
    """Verifies Signature Version 4 (header and presigned-URL forms) against one credential."""

    def __init__(self, credentials: Credentials, clock: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        self.clock = clock

    def _check_identity(self, scope: Scope, token: str | None) -> None:
        if not hmac.compare_digest(scope.access_key, self.credentials.access_key):
            raise Refused(403, "InvalidAccessKeyId", "the AWS access key id does not exist in our records")
        if token is not None and not hmac.compare_digest(token, self.credentials.session_token):
            raise Refused(403, "InvalidToken", "the security token included in the request is invalid")
        if token is None and self.credentials.session_token:
            raise Refused(403, "InvalidToken", "these credentials need their security token")

    def _expect(self, request: SignedRequest, scope: Scope, amz_date: str, signed: list[str], payload: str) -> str:
        drop = ("X-Amz-Signature",)
        canonical = request.canonical_request(scope.service, signed, payload, drop)
        string_to_sign = "\n".join([ALGORITHM, amz_date, scope.text, hashlib.sha256(canonical.encode()).hexdigest()])
        key = signing_key(self.credentials.secret_key, scope.date, scope.region, scope.service)
        return _sign(key, string_to_sign)

    def check_header(self, request: SignedRequest) -> Scope:
        """Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."""
        header = request.headers.get("authorization", "")
        algorithm, _, rest = header.partition(" ")
        if algorithm != ALGORITHM:
            raise Refused(400, "InvalidRequest", "only AWS Signature Version 4 (AWS4-HMAC-SHA256) is accepted")
        fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
        if not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
            raise Refused(400, "AuthorizationHeaderMalformed", "the Authorization header is malformed")
        scope = Scope.parse(fields["Credential"])
        self._check_identity(scope, request.headers.get("x-amz-security-token"))
        amz_date = request.headers.get("x-amz-date", "")
        if abs(self.clock() - _timestamp(amz_date)) > MAX_CLOCK_SKEW_S:
            raise Refused(403, "RequestTimeTooSkewed", "the request time is too far from the server time")
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed:
            raise Refused(403, "SignatureDoesNotMatch", "the host header must be signed")
        payload = request.headers.get("x-amz-content-sha256")
        body_hash = hashlib.sha256(request.body or b"").hexdigest() if request.body is not None else None
        if payload is None:
            if body_hash is None:
                raise Refused(403, "SignatureDoesNotMatch", "the payload could not be hashed")
            payload = body_hash
        elif re.fullmatch(r"[0-9a-f]{64}", payload) and body_hash is not None and payload != body_hash:
            raise Refused(400, "XAmzContentSHA256Mismatch", "the body does not match x-amz-content-sha256")
        expected = self._expect(request, scope, amz_date, signed, payload)
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise Refused(403, "SignatureDoesNotMatch", "the request signature does not match")
        return scope

    def check_query(self, request: SignedRequest) -> Scope:
        """A presigned URL: X-Amz-Credential, -Date, -Expires, -SignedHeaders, -Signature in the query."""
        params = {}
        for part in request.raw_query.split("&"):
            name, _, value = part.partition("=")
            params[unquote(name)] = unquote(value)
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise Refused(400, "AuthorizationQueryParametersError", "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
        scope = Scope.parse(params.get("X-Amz-Credential", ""))
        self._check_identity(scope, params.get("X-Amz-Security-Token"))
        amz_date = params.get("X-Amz-Date", "")
        try:
            expires = int(params.get("X-Amz-Expires", ""))
        except ValueError as exc:
            raise Refused(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be a number") from exc
        if not 1 <= expires <= 7 * 24 * 3600:
            raise Refused(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be 1 s to 7 days")
        if self.clock() > _timestamp(amz_date) + expires:
            raise Refused(403, "AccessDenied", "Request has expired")
        signed = params.get("X-Amz-SignedHeaders", "").split(";")
        payload = UNSIGNED_PAYLOAD if scope.service == "s3" else hashlib.sha256(request.body or b"").hexdigest()
        expected = self._expect(request, scope, amz_date, signed, payload)
        if not hmac.compare_digest(expected, params.get("X-Amz-Signature", "")):
            raise Refused(403, "SignatureDoesNotMatch", "the request signature does not match")
        return scope

    # -------------------------------------------------------------------------- POST policy

    def check_post(self, bucket: str, fields: Mapping[str, str], file_size: int) -> None:
        """A browser-style POST upload against its signed policy, as S3 checks it."""
        lower = {name.lower(): value for name, value in fields.items()}
        for required in ("policy", "x-amz-signature", "x-amz-credential", "x-amz-date", "x-amz-algorithm"):
            if required not in lower:
                raise Refused(400, "InvalidArgument", f"the POST form has no {required} field")
        if lower["x-amz-algorithm"] != ALGORITHM:
            raise Refused(400, "InvalidArgument", "x-amz-algorithm must be AWS4-HMAC-SHA256")
        scope = Scope.parse(lower["x-amz-credential"])
        self._check_identity(scope, lower.get("x-amz-security-token"))
        key = signing_key(self.credentials.secret_key, scope.date, scope.region, scope.service)
        if not hmac.compare_digest(_sign(key, lower["policy"]), lower["x-amz-signature"]):
            raise Refused(403, "SignatureDoesNotMatch", "the policy signature does not match")
        try:
            policy = json.loads(base64.b64decode(lower["policy"], validate=True))
            expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
            conditions = policy["conditions"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Refused(400, "InvalidPolicyDocument", "the policy is not a valid POST policy") from exc
        if self.clock() > expiration.timestamp():
            raise Refused(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        values = {**lower, "bucket": bucket}
        covered: set[str] = set()
        for condition in conditions:
            covered.add(_check_condition(condition, values, file_size))
        for name in lower:
            if name not in POST_FIELDS_WITHOUT_CONDITION and not name.startswith("x-ignore-") and name not in covered:
                raise Refused(403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {name}")


def _check_condition(condition: Any, values: Mapping[str, str], file_size: int) -> str:
    """One policy condition against the form; returns the field it covers."""

    def failed() -> Refused:
        return Refused(
            403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}"
        )

    if isinstance(condition, dict) and len(condition) == 1:
        ((name, expected),) = condition.items()
        name = name.lower()
        if values.get(name) != expected:
            raise failed()
        return name
    if isinstance(condition, list) and len(condition) == 3:
        operator, name, expected = condition
        operator = str(operator).lower()
        if operator == "content-length-range":
            if file_size < int(name):
                raise Refused(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
            if file_size > int(expected):
                raise Refused(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            return "content-length-range"
        if isinstance(name, str) and name.startswith("$"):
            field = name[1:].lower()
            value = values.get(field)
            if value is None:
                raise failed()
            if operator == "eq" and value == expected:
                return field
            if operator == "starts-with" and isinstance(expected, str) and value.startswith(expected):
                return field
            raise failed()
    raise Refused(400, "InvalidPolicyDocument", f"unsupported policy condition {json.dumps(condition)}")


# ------------------------------------------------------------------------------------ WSGI


def _header(environ: Mapping[str, Any], name: str) -> str | None:
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].lower().replace("_", "-"): str(value) for key, value in environ.items() if key.startswith("HTTP_")
    }
    for name in ("content-type", "content-length"):
        value = _header(environ, name)
        if value:
            headers[name] = value
    return headers


def _raw_path(environ: Mapping[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", "/"))
    if "://" in raw.split("?", 1)[0]:  # absolute-form request target
        raw = "/" + raw.split("://", 1)[1].split("/", 1)[-1]
    return raw.split("?", 1)[0]


def _read_body(environ: dict[str, Any]) -> bytes:
    """The whole body, put back so moto can read it too."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


class LocalAwsGateway:
    """WSGI middleware: refuses what AWS would refuse, passes the rest to moto."""

    def __init__(self, app: Callable[..., Any], credentials: Credentials, clock: Callable[[], float] = time.time):
        self.app = app
        self.checker = SigV4Checker(credentials, clock)
        self.sealed = False
        self._jwks: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.refused: list[tuple[str, str, str]] = []  # (method, path, code): what the stack refused

    def seal(self) -> None:
        """Close moto's control API: after provisioning nobody may reset or dump the stack."""
        self.sealed = True

    def publish_jwks(self, pool_id: str, jwks: Mapping[str, Any]) -> None:
        self._jwks[pool_id] = json.dumps(jwks).encode()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            served = self._check(environ)
        except Refused as refusal:
            with self._lock:
                self.refused.append((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), refusal.code))
            return self._refuse(environ, refusal, start_response)
        if served is not None:
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(served)))])
            return [served]
        return self.app(environ, start_response)

    def _check(self, environ: dict[str, Any]) -> bytes | None:
        """None to pass the request on, bytes to answer it here; Refused to refuse it."""
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if path.startswith("/moto-api"):
            if self.sealed:
                raise Refused(403, "AccessDenied", "moto's control API is closed once the local stack is up")
            return None
        jwks = JWKS_PATH_RE.match(path)
        if jwks and method == "GET":
            if jwks.group("pool") in self._jwks:
                return self._jwks[jwks.group("pool")]
            raise Refused(404, "ResourceNotFoundException", "no such user pool")
        if OPENID_PATH_RE.match(path) and method == "GET":
            return None
        if method == "OPTIONS":  # a CORS preflight carries no credentials anywhere
            return None
        raw_query = environ.get("QUERY_STRING", "")
        if environ.get("HTTP_AUTHORIZATION"):
            body = _read_body(environ)
            self.checker.check_header(SignedRequest(method, _raw_path(environ), raw_query, _headers(environ), body))
            return None
        if "X-Amz-Signature=" in raw_query:
            self.checker.check_query(SignedRequest(method, _raw_path(environ), raw_query, _headers(environ), b""))
            return None
        if method == "POST" and (environ.get("CONTENT_TYPE") or "").startswith("multipart/form-data"):
            self._check_post(environ)
            return None
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        if target.startswith(COGNITO_TARGET_PREFIX):
            action = target[len(COGNITO_TARGET_PREFIX) :]
            if action in PUBLIC_COGNITO_ACTIONS:
                return None
            if action in ADMIN_CREATE_ONLY_ACTIONS:
                raise Refused(400, "NotAuthorizedException", "SignUp is not permitted for this user pool")
        raise Refused(403, "AccessDenied", "Access Denied: the request is not signed")

    def _check_post(self, environ: dict[str, Any]) -> None:
        from werkzeug.formparser import parse_form_data

        body = _read_body(environ)
        bucket = _raw_path(environ).strip("/").split("/", 1)[0]
        if not bucket:
            bucket = (environ.get("HTTP_HOST") or "").split(".", 1)[0]  # virtual-hosted style
        copy = {**environ, "wsgi.input": io.BytesIO(body)}
        _, form, files = parse_form_data(copy)
        upload = files.get("file")
        if upload is None:
            raise Refused(400, "InvalidArgument", "the POST form has no file field")
        size = len(upload.read())
        self.checker.check_post(unquote(bucket), dict(form.items()), size)

    @staticmethod
    def _refuse(environ: Mapping[str, Any], refusal: Refused, start_response: Callable[..., Any]) -> list[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:  # JSON protocols (Cognito, DynamoDB, Step Functions, ...)
            body = json.dumps({"__type": refusal.code, "message": refusal.message}).encode()
            headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", refusal.code)]
        else:  # S3 and the query protocols read an XML error
            body = (
                "<?xml version='1.0' encoding='UTF-8'?>"
                f"<Error><Code>{refusal.code}</Code><Message>{_xml(refusal.message)}</Message></Error>"
            ).encode()
            headers = [("Content-Type", "application/xml")]
        reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(refusal.status, "Error")
        start_response(f"{refusal.status} {reason}", [*headers, ("Content-Length", str(len(body)))])
        return [body]


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------------ server


class LocalAwsServer:
    """moto's server app behind LocalAwsGateway, on one threaded port (like ThreadedMotoServer)."""

    def __init__(self, host: str, port: int, credentials: Credentials) -> None:
        self.host = host
        self.port = port
        self.credentials = credentials
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalAwsServer:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        self.gateway = LocalAwsGateway(DomainDispatcherApplication(create_backend_app), self.credentials)
        self._server = make_server(
            self.host, self.port, self.gateway, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="backdrop-local-aws", daemon=True)
        self._thread.start()
        return self

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


# ------------------------------------------------------------------------------------ tokens


def new_token_key() -> Any:
    """An RSA key for the user pool's tokens, made for this run only (joserfc RSAKey)."""
    from joserfc.jwk import RSAKey

    return RSAKey.generate_key(2048, private=True)


def public_jwks(key: Any, kid: str) -> dict[str, Any]:
    return {"keys": [{**key.as_dict(private=False), "kid": kid, "alg": "RS256", "use": "sig"}]}


# moto's create_jwt writes this kid in every token header; the key behind it is the per-run key.
MOTO_TOKEN_KID = "dummy"


def install_pool_key(pool_id: str, region: str, account_id: str, key: Any) -> None:
    """Make moto sign this pool's tokens with `key` instead of the key it ships publicly
    (moto 5.2.5: CognitoIdpUserPool.json_web_key; pinned with the other hooks)."""
    from moto.cognitoidp.models import cognitoidp_backends

    from backend.local.sfn_hooks import _check_version

    _check_version()
    pool = cognitoidp_backends[account_id][region].user_pools[pool_id]
    if not hasattr(pool, "json_web_key"):
        raise RuntimeError("moto's user pool has no json_web_key: re-check install_pool_key against this moto")
    pool.json_web_key = key
