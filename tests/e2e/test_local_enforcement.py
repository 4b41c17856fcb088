"""The local stack refuses what AWS refuses: hostile uploads, unsigned and foreign-signed bucket
access, forged and malformed tokens. Each refused request is counted in the robustness summary."""

from __future__ import annotations

import base64
import gzip
import io
import json
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import requests
from e2e_support import on_shared_stack, shared_local_stack
from test_robustness import COUNTS

from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
from frontend.api_client import BackdropClient, CognitoLogin

pytestmark = pytest.mark.slow
OTHER_USER = "mallory@example.com"
OTHER_PASSWORD = "Mallory-local-2026!"


@pytest.fixture(scope="module")
def shared_stack() -> Iterator[LocalStack]:
    """One stack for the module: every test only tries what must be refused (its own victim's
    upload is new), and a refusal that failed fails that test."""
    with shared_local_stack("enforce") as local:
        local.create_user(OTHER_USER, OTHER_PASSWORD)
        yield local


@pytest.fixture
def stack(shared_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    with on_shared_stack(shared_stack, monkeypatch) as local:
        yield local


def _login(stack: LocalStack, user: str, password: str) -> CognitoLogin:
    login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
    login.sign_in(user, password)
    return login


def _png(size: int = 2000) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    return data + b"\0" * max(0, size - len(data))


def _grant(client: BackdropClient, size: int = 2000, content_type: str = "image/png") -> dict[str, Any]:
    return client.create_uploads([{"name": "x.png", "contentType": content_type, "size": size}])["uploads"][0]


def _post(upload: dict[str, Any], fields: dict[str, str], data: bytes, content_type: str = "image/png") -> Any:
    return requests.post(upload["url"], data=fields, files={"file": ("x.png", data, content_type)}, timeout=30)


def _refused(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert f"<Code>{code}</Code>" in response.text or f'"{code}"' in response.text, response.text[:300]
    COUNTS["refused"] += 1


@pytest.fixture
def victim(stack: LocalStack) -> dict[str, Any]:
    """The demo user's original, uploaded properly: what the hostile user goes after."""
    client = BackdropClient(stack.api_url, _login(stack, DEMO_USER, DEMO_PASSWORD).id_token)
    data = _png()
    upload = _grant(client)
    assert _post(upload, upload["fields"], data).status_code == 204
    return {"key": upload["fields"]["key"], "data": data, "client": client}


def _original(stack: LocalStack, key: str) -> bytes:
    return stack.client("s3").get_object(Bucket=stack.outputs["bucket"], Key=key)["Body"].read()


def test_presigned_post_policy_is_enforced(stack: LocalStack, victim: dict[str, Any]) -> None:
    mallory = BackdropClient(stack.api_url, _login(stack, OTHER_USER, OTHER_PASSWORD).id_token)
    own = _grant(mallory)
    # Mallory's own grant, with the key changed to the victim's original: refused, original intact
    _refused(_post(own, {**own["fields"], "key": victim["key"]}, b"overwritten"), 403, "AccessDenied")
    assert _original(stack, victim["key"]) == victim["data"]
    # another key in Mallory's own space is not in the policy either
    _refused(_post(own, {**own["fields"], "key": own["fields"]["key"] + ".html"}, _png()), 403, "AccessDenied")
    # a bigger file than the policy's range (the API never grants more than 15 MiB)
    _refused(_post(own, own["fields"], b"\0" * (16 * 1024 * 1024)), 400, "EntityTooLarge")
    # an empty file
    _refused(_post(own, own["fields"], b""), 400, "EntityTooSmall")
    # another content type than the one granted
    html = {**own["fields"], "Content-Type": "text/html"}
    _refused(_post(own, html, b"<script>alert(1)</script>", "text/html"), 403, "AccessDenied")
    # a field the policy does not cover (making the object public)
    _refused(_post(own, {**own["fields"], "acl": "public-read"}, _png()), 403, "AccessDenied")
    # the policy itself widened: its signature no longer matches
    policy = json.loads(base64.b64decode(own["fields"]["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not (isinstance(c, dict) and "key" in c)]
    widened = base64.b64encode(json.dumps(policy).encode()).decode()
    _refused(_post(own, {**own["fields"], "policy": widened, "key": victim["key"]}, b"x"), 403, "SignatureDoesNotMatch")
    assert _original(stack, victim["key"]) == victim["data"]
    # the grant itself still works for what it was made for
    assert _post(own, own["fields"], _png()).status_code == 204


def test_expired_grants_and_links_are_refused(stack: LocalStack, victim: dict[str, Any]) -> None:
    client = victim["client"]
    upload = _grant(client)
    view_url = stack.client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": stack.outputs["bucket"], "Key": victim["key"]}, ExpiresIn=60
    )
    assert requests.get(view_url, timeout=10).content == victim["data"]
    checker = stack._moto.gateway.checker
    real_clock = checker.clock
    checker.clock = lambda: real_clock() + 3600  # an hour later
    try:
        _refused(_post(upload, upload["fields"], _png()), 403, "AccessDenied")
        _refused(requests.get(view_url, timeout=10), 403, "AccessDenied")
    finally:
        checker.clock = real_clock
    # a valid link with its path changed to another object
    other = view_url.replace(victim["key"].rsplit("/", 1)[1], "0" * 32 + ".png")
    _refused(requests.get(other, timeout=10), 403, "SignatureDoesNotMatch")


def test_bucket_access_needs_the_stacks_own_signature(stack: LocalStack, victim: dict[str, Any]) -> None:
    import boto3
    from botocore.config import Config

    bucket_url = f"{stack.endpoint}/{stack.outputs['bucket']}"
    _refused(requests.get(bucket_url, timeout=10), 403, "AccessDenied")  # list, unsigned
    _refused(requests.get(f"{bucket_url}/{victim['key']}", timeout=10), 403, "AccessDenied")
    _refused(requests.put(f"{bucket_url}/{victim['key']}", data=b"x", timeout=10), 403, "AccessDenied")
    _refused(requests.delete(f"{bucket_url}/{victim['key']}", timeout=10), 403, "AccessDenied")
    # signed, but with credentials anyone knows (moto's interpreter key, the test suite's)
    for access, secret in (("ak", "sk"), ("testing", "testing"), (stack.credentials.access_key, "guessed")):
        s3 = boto3.client(
            "s3",
            endpoint_url=stack.endpoint,
            region_name=stack.region,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            aws_session_token=stack.credentials.session_token,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        with pytest.raises(s3.exceptions.ClientError) as caught:
            s3.list_objects_v2(Bucket=stack.outputs["bucket"])
        assert caught.value.response["Error"]["Code"] in ("InvalidAccessKeyId", "SignatureDoesNotMatch")
        COUNTS["refused"] += 1
    # moto's own control API (reset, dump) is closed once the stack is up
    _refused(requests.post(f"{stack.endpoint}/moto-api/reset", timeout=10), 403, "AccessDenied")
    _refused(requests.get(f"{stack.endpoint}/moto-api/data.json", timeout=10), 403, "AccessDenied")
    assert _original(stack, victim["key"]) == victim["data"]


def test_cognito_admin_calls_and_sign_up_need_iam(stack: LocalStack) -> None:
    def call(action: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(
            stack.endpoint,
            data=json.dumps(body),
            headers={
                "X-Amz-Target": f"AWSCognitoIdentityProviderService.{action}",
                "Content-Type": "application/x-amz-json-1.1",
            },
            timeout=10,
        )

    pool = stack.outputs["user_pool_id"]
    _refused(call("AdminCreateUser", {"UserPoolId": pool, "Username": "eve@example.com"}), 403, "AccessDenied")
    _refused(call("ListUsers", {"UserPoolId": pool}), 403, "AccessDenied")
    sign_up = {"ClientId": stack.outputs["client_id"], "Username": "eve@example.com", "Password": "Eve-local-2026!"}
    _refused(call("SignUp", sign_up), 400, "NotAuthorizedException")


def _moto_published_key() -> Any:
    from joserfc.jwk import RSAKey

    raw = resources.files("moto.cognitoidp").joinpath("resources/jwks-private.json.gz").read_bytes()
    return RSAKey.import_key(json.loads(gzip.decompress(raw)))


def _token(key: Any, claims: dict[str, Any]) -> str:
    from joserfc import jwt

    return jwt.encode({"alg": "RS256", "kid": "dummy"}, claims, key)


def test_tokens_are_signed_with_a_key_of_this_run(stack: LocalStack, victim: dict[str, Any]) -> None:
    real = _login(stack, DEMO_USER, DEMO_PASSWORD).id_token()
    claims = json.loads(base64.urlsafe_b64decode(real.split(".")[1] + "=="))
    url = f"{stack.api_url}/jobs"
    assert requests.get(url, headers={"Authorization": real}, timeout=10).status_code == 200
    # the same claims signed with the key moto publishes: refused
    forged = _token(_moto_published_key(), claims)
    response = requests.get(url, headers={"Authorization": forged}, timeout=10)
    assert response.status_code == 401
    COUNTS["refused"] += 1
    # signed with this run's key but malformed: an answer (401), never a dropped connection
    now = int(time.time())
    base = {k: v for k, v in claims.items() if k != "sub"}
    for bad in (
        base,  # no sub
        {**base, "sub": 12345},  # not a string
        {**claims, "sub": "../../victim"},  # not a user id
        {**claims, "token_use": "access"},
        {**claims, "exp": now - 10},
        {**claims, "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"},
    ):
        response = requests.get(url, headers={"Authorization": _token(stack.token_key, bad)}, timeout=10)
        assert response.status_code == 401, (bad, response.status_code, response.text)
        COUNTS["refused"] += 1
    # the public JWKS is this run's key, not moto's
    jwks = requests.get(f"{stack.endpoint}/{stack.outputs['user_pool_id']}/.well-known/jwks.json", timeout=10).json()
    assert jwks["keys"][0]["n"] == stack.token_key.as_dict(private=False)["n"]
    assert jwks["keys"][0]["n"] != _moto_published_key().as_dict(private=False)["n"]
