"""The OpenAPI document: generated from the code, valid OpenAPI 3.1, one operation per route of
app.py and no other, examples and live answers of every route true to their schemas."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
from builders import BUCKET, SCENE_REGION
from chalice.test import Client
from harness import write_job_images
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

import app as backdrop_app
from backend import openapi as openapi_command
from chalicelib.api import openapi
from chalicelib.api import responses as answer_models
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus

DOC = openapi.document(backdrop_app.app.routes)


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": DOC["components"]})


def _model_of(schema: dict[str, Any]) -> Any:
    """The response model an answer's schema was generated from (None: the OpenAPI document itself)."""
    return answer_models.BY_NAME.get(schema["$ref"].rsplit("/", 1)[-1])


def _ref_schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problems(schema: dict[str, Any], value: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(schema).iter_errors(value)]


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOC)
    assert DOC["openapi"] == "3.1.0"


def test_the_committed_document_is_the_generated_one() -> None:
    assert openapi_command.DOC_PATH.read_text() == openapi_command.generated(), (
        "docs/openapi.json is stale: run `python -m backend.openapi`"
    )
    assert openapi_command.main(["--check"]) == 0


def test_every_route_of_the_app_is_in_the_document_and_nothing_else() -> None:
    routed = {(path, method.lower()) for path, methods in backdrop_app.app.routes.items() for method in methods}
    documented = {(path, method) for path, operations in DOC["paths"].items() for method in operations}
    assert routed == documented
    for path, methods in backdrop_app.app.routes.items():
        for method, entry in methods.items():
            operation = DOC["paths"][path][method.lower()]
            assert bool(operation["security"]) == (entry.authorizer is not None), (method, path)
            assert {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"} == set(entry.view_args)
            assert any(status.startswith("2") for status in operation["responses"]), (method, path)
            if method in ("POST",) and path not in (
                "/jobs/{job_id}/cancel",
                "/jobs/{job_id}/retry",
                "/jobs/{job_id}/review/approve",
                "/webhooks/secret/rotate",
            ):
                assert "requestBody" in operation, (method, path)


def test_a_route_without_a_description_or_a_description_without_a_route_stops_the_build() -> None:
    class Entry:
        view_args: list[str] = []
        authorizer = None

    routes = {path: dict(methods) for path, methods in backdrop_app.app.routes.items()}
    routes["/jobs/{job_id}/variants"] = {"POST": Entry()}
    with pytest.raises(ValueError, match=r"without an OpenAPI description.*variants"):
        openapi.document(routes)
    del routes["/jobs/{job_id}/variants"]
    del routes["/models"]
    with pytest.raises(ValueError, match=r"without a route in app.py.*/models"):
        openapi.document(routes)


def test_contracts_reach_the_document_unchanged() -> None:
    schemas = DOC["components"]["schemas"]
    assert schemas["Error"]["properties"]["code"]["$ref"] == "#/components/schemas/ErrorCode"
    assert schemas["ErrorCode"]["enum"] == [c.value for c in contracts.ErrorCode]
    assert schemas["ImageStatus"]["enum"] == [s.value for s in ImageStatus]
    assert set(schemas["Counts"]["required"]) == {s.value for s in ImageStatus}
    job = schemas["JobRequest"]
    assert job["properties"]["images"]["maxItems"] == contracts.MAX_IMAGES_PER_JOB
    assert job["additionalProperties"] is False
    # null is accepted and means "not given" (the parser always took it so; the document now says it)
    presets = [p for p in job["properties"]["stylePreset"]["enum"] if p is not None]
    assert "photographic" in presets and presets == sorted(presets)
    assert re.fullmatch(schemas["ImageRef"]["pattern"], contracts.image_ref_of("a" * 32, "b" * 32, "jpg"))
    assert re.fullmatch(schemas["JobId"]["pattern"], contracts.new_job_id())
    assert schemas["LabelsRequest"]["properties"]["imageRefs"]["maxItems"] == contracts.MAX_LABEL_REFS_PER_REQUEST
    assert "outputFormat" not in job["required"] and "pending" in schemas["Labels"]["required"]
    assert schemas["ImageView"]["properties"]["outputs"]["items"] == {"$ref": "#/components/schemas/Output"}
    assert "quality" in schemas["Output"]["properties"]


def test_every_example_is_true_to_its_schema() -> None:
    checked = 0
    for path, operations in DOC["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response["content"]["application/json"]
                for example in [content.get("example"), *(e["value"] for e in content.get("examples", {}).values())]:
                    if example is None:
                        continue
                    assert not _problems(content["schema"], example), (
                        method,
                        path,
                        status,
                        _problems(content["schema"], example),
                    )
                    checked += 1
    assert checked > 40


# ------------------------------------------------------------------------------ live answers


@pytest.fixture
def client(client: Client, monkeypatch: pytest.MonkeyPatch) -> Client:
    from chalicelib.delivery import webhooks

    monkeypatch.setattr(webhooks, "resolve_host", lambda host, port: ["93.184.215.14"])
    return client


class Live:
    """Calls a route and checks its answer against the document: the status must be documented
    for the operation, an error's code among that status's examples, the body valid."""

    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.token = token
        self.seen: set[tuple[str, str]] = set()
        self.models: set[str] = set()

    def __call__(
        self,
        method: str,
        route: str,
        status: int,
        *,
        path: str | None = None,
        body: Any = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Any:
        headers = {"Content-Type": "application/json", **(headers or {})}
        if auth:
            headers["Authorization"] = self.token
        raw = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else (body or b"")
        answer = self.client.http.request(method, path or route, headers=headers, body=raw)
        assert answer.status_code == status, (method, path or route, answer.status_code, answer.body)
        responses = DOC["paths"][route][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {route} answered {status}, which the document does not list"
        content = responses[str(status)]["content"]["application/json"]
        problems = _problems(content["schema"], answer.json_body)
        assert not problems, (method, route, status, problems)
        # and the model the schema was generated from takes it too (closed: no field it lacks)
        model = _model_of(content["schema"])
        if model is not None:
            assert not answer_models.problems_in(model, answer.json_body), (method, route, status, model.__name__)
            self.models.add(model.__name__)
        if status >= 400:
            assert answer.json_body["code"] in content["examples"], (method, route, answer.json_body)
        self.seen.add((method, route))
        return answer.json_body


def _upload(owner: str, photo: Any) -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref), Body=photo())
    return ref


@pytest.mark.region(SCENE_REGION)  # its scene job must be accepted
def test_live_answers_of_every_route_match_the_document(client, token_for, photo, store, monkeypatch) -> None:
    live = Live(client, token_for("owner-1"))
    live("GET", "/health", 200, auth=False)
    assert live("GET", "/openapi.json", 200, auth=False) == DOC
    live("GET", "/models", 200)
    live("GET", "/models", 401, auth=False)
    live("GET", "/presets", 200)
    live("POST", "/uploads", 201, body={"files": [{"name": "a.png", "contentType": "image/png", "size": 10}]})
    live("POST", "/uploads", 400, body={"files": [{"name": "a.gif", "contentType": "image/gif", "size": 10}]})
    live("POST", "/uploads", 400, body=b"{not json")
    refs = [_upload("owner-1", photo) for _ in range(2)]
    live("POST", "/labels", 200, body={"imageRefs": refs})
    live("POST", "/labels", 400, body={"imageRefs": "x"})
    too_many = contracts.MAX_LABEL_REFS_PER_REQUEST + 1
    live("POST", "/labels", 400, body={"imageRefs": [refs[0]] * too_many})
    job = {
        "prompt": "a sunlit studio",
        "stylePreset": "photographic",
        "webhookUrl": "https://hooks.example.com/backdrop",
        "images": [{"imageRef": r, "name": f"{i}.png", "labels": ["Person"]} for i, r in enumerate(refs)],
    }
    job_id = live("POST", "/jobs", 202, body=job)["jobId"]
    # an Idempotency-Key: the same body answers the same job, another body is a 409
    key = {"Idempotency-Key": "5f0c2a7e-1b3d-4c59-8e6f-0a1b2c3d4e5f"}
    first = live("POST", "/jobs", 202, body=job, headers=key)["jobId"]
    assert live("POST", "/jobs", 202, body=job, headers=key)["jobId"] == first != job_id
    live("POST", "/jobs", 409, body={**job, "prompt": "another studio"}, headers=key)
    live("POST", "/jobs", 400, body=job, headers={"Idempotency-Key": "x" * 256})
    live("POST", "/jobs", 400, body={**job, "stylePreset": "watercolour"})
    scene = {
        "background": {"source": "scene", "prompt": "a pale oak table"},
        "placement": {"aspect": "1:1", "fill": 60},
    }
    live("POST", "/jobs", 202, body={**job, **scene, "prompt": "", "stylePreset": None})
    live("POST", "/jobs", 400, body={**job, "background": {"source": "color", "color": "white"}})
    live("POST", "/jobs", 400, body={**job, "model": "titan-image-v2"})
    missing = {**job, "images": [{"imageRef": contracts.image_ref_of("a" * 32, "b" * 32, "png")}]}
    live("POST", "/jobs", 400, body=missing)
    live("GET", "/jobs", 200, path="/jobs?limit=5")
    live("GET", "/jobs", 400, path="/jobs?cursor=nonsense")
    one = f"/jobs/{job_id}"
    view = live("GET", "/jobs/{job_id}", 200, path=one)
    assert view["settings"]["stylePreset"] == "photographic"
    assert view["imagesPreparing"] is True and view["images"] == []  # accepted; the starter writes them
    write_job_images(job_id)
    view = live("GET", "/jobs/{job_id}", 200, path=one)
    # one page at a time: the document's bounds are the ones the route enforces
    limit = next(p for p in DOC["paths"]["/jobs/{job_id}"]["get"]["parameters"] if p["name"] == "limit")["schema"]
    page = live("GET", "/jobs/{job_id}", 200, path=f"{one}?limit=1")
    assert len(page["images"]) == 1 and page["nextCursor"]
    rest = live("GET", "/jobs/{job_id}", 200, path=f"{one}?limit=1&cursor={page['nextCursor']}")
    assert rest["nextCursor"] is None and rest["images"][0]["imageId"] != page["images"][0]["imageId"]
    summary = live("GET", "/jobs/{job_id}", 200, path=f"{one}?limit={limit['minimum']}")
    assert "images" not in summary and summary["counts"]["PENDING"] == 2
    assert live("GET", "/jobs/{job_id}", 200, path=f"{one}?status=SUCCEEDED")["images"] == []
    live("GET", "/jobs/{job_id}", 200, path=f"{one}?limit={limit['maximum']}")
    live("GET", "/jobs/{job_id}", 400, path=f"{one}?limit={limit['maximum'] + 1}")
    live("GET", "/jobs/{job_id}", 400, path=f"{one}?status=DONE")
    live("GET", "/jobs/{job_id}", 404, path="/jobs/20260101T000000Z-0123456789ab")
    live("GET", "/jobs/{job_id}/report", 409, path=f"{one}/report")
    live("GET", "/jobs/{job_id}/report", 400, path=f"{one}/report?format=xml")
    live("POST", "/jobs/{job_id}/retry", 409, path=f"{one}/retry", body={})
    live("DELETE", "/jobs/{job_id}", 409, path=one)
    live("POST", "/jobs/{job_id}/cancel", 200, path=f"{one}/cancel")
    live("POST", "/jobs/{job_id}/cancel", 200, path=f"{one}/cancel")
    live("GET", "/jobs/{job_id}", 200, path=one)
    live("GET", "/jobs/{job_id}/report", 200, path=f"{one}/report?format=csv")
    live("POST", "/jobs/{job_id}/retry", 400, path=f"{one}/retry", body={})  # nothing FAILED to retry
    live("DELETE", "/jobs/{job_id}", 400, path=f"{one}?originals=maybe")
    live("DELETE", "/jobs/{job_id}", 200, path=f"{one}?originals=true")
    live("DELETE", "/jobs/{job_id}", 200, path=one)
    live("POST", "/jobs/{job_id}/cancel", 404, path=f"{one}/cancel")
    live("GET", "/webhooks/secret", 200)
    live("POST", "/webhooks/secret/rotate", 200)
    # a retry of a finished job with a failed image
    fresh = [{"imageRef": _upload("owner-1", photo), "labels": ["Person"]}]  # the first job's originals are gone
    again = live("POST", "/jobs", 202, body={**job, "images": fresh})["jobId"]
    write_job_images(again)
    [image] = store.images(again)
    store.set_image_status(again, image["imageId"], ImageStatus.FAILED, error_code="MODEL_ERROR", cause="boom")
    from chalicelib.delivery.report import Reporter

    Reporter(boto3.client("s3"), store).write(again, "owner-1", BUCKET)
    live("POST", "/jobs/{job_id}/retry", 202, path=f"/jobs/{again}/retry", body={})
    live("POST", "/jobs/{job_id}/cancel", 409, path=f"/jobs/{again}/cancel")
    # its zip (its original: it has no result), and a review it was never asked for
    live("GET", "/jobs/{job_id}/archive", 200, path=f"/jobs/{again}/archive?originals=true")
    live("POST", "/jobs/{job_id}/archive", 409, path=f"/jobs/{again}/archive", body={})
    live("POST", "/jobs/{job_id}/archive", 200, path=f"/jobs/{again}/archive", body={"originals": True})
    live("GET", "/jobs/{job_id}/archive", 200, path=f"/jobs/{again}/archive?originals=true")
    live("POST", "/jobs/{job_id}/review", 409, path=f"/jobs/{again}/review", body={"decisions": {"a" * 32: "REJECTED"}})
    live("POST", "/jobs/{job_id}/review/approve", 409, path=f"/jobs/{again}/review/approve")
    # choosing the delivered variant: of a failed image (409), of one with two variants (200, 400)
    pick = "/jobs/{job_id}/images/{image_id}/pick"
    live("POST", pick, 409, path=f"/jobs/{again}/images/{image['imageId']}/pick", body={"variant": 1})
    live("POST", pick, 404, path=f"/jobs/{again}/images/{'0' * 32}/pick", body={"variant": 1})
    two = live("POST", "/jobs", 202, body={**job, "images": fresh})["jobId"]
    write_job_images(two)
    [made] = store.images(two)
    outputs = [{"key": f"results/x-{v}.png", "variant": v, "seed": v, "delivered": v == 1} for v in (1, 2)]
    store.set_image_status(two, made["imageId"], ImageStatus.SUCCEEDED, outputs=outputs, verdict="PASS")
    made_pick = f"/jobs/{two}/images/{made['imageId']}/pick"
    assert live("POST", pick, 200, path=made_pick, body={"variant": 2})["delivered"] == 2
    live("POST", pick, 400, path=made_pick, body={"variant": 3})
    regenerate = "/jobs/{job_id}/images/{image_id}/regenerate"
    made_regenerate = f"/jobs/{two}/images/{made['imageId']}/regenerate"
    assert live("POST", regenerate, 202, path=made_regenerate, body={"seed": 5})["regenerateOf"]["jobId"] == two
    live("POST", regenerate, 400, path=made_regenerate, body={"seed": "5"})
    live("POST", regenerate, 409, path=f"/jobs/{again}/images/{image['imageId']}/regenerate", body={})
    # a review: the workflow's wait opened on the job (its task token), decided, then released
    from chalicelib.jobs.review import ReviewService

    class Sfn:  # the workflow's wait is not running here: its release is accepted as Step Functions would
        def send_task_success(self, **_: Any) -> dict[str, Any]:
            return {}

    store.open_review(two, "task-token", "2030-01-01T00:00:00Z")
    decided = {"decisions": {made["imageId"]: "REJECTED"}}
    live("POST", "/jobs/{job_id}/review", 200, path=f"/jobs/{two}/review", body=decided)
    monkeypatch.setattr(backdrop_app, "_reviews", lambda: ReviewService(store, Sfn()))
    live("POST", "/jobs/{job_id}/review/approve", 200, path=f"/jobs/{two}/review/approve")
    # a delete handed to the background: 202 with its progress, and the job DELETING meanwhile
    from chalicelib.jobs import control as job_control

    monkeypatch.setattr(job_control, "SYNC_DELETE_LIMIT", 0)
    monkeypatch.setattr(backdrop_app, "start_background", lambda event: None)
    assert live("DELETE", "/jobs/{job_id}", 202, path=f"/jobs/{again}")["deleting"] is True
    assert live("GET", "/jobs/{job_id}", 200, path=f"/jobs/{again}")["status"] == "DELETING"
    assert live("DELETE", "/jobs/{job_id}", 202, path=f"/jobs/{again}")["deletingBy"] == "BACKGROUND"
    routed = {(m, p) for p, methods in backdrop_app.app.routes.items() for m in methods}
    assert live.seen == routed, f"routes not exercised: {routed - live.seen}"
    answered = {
        op["responses"][s]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for ops in DOC["paths"].values()
        for op in ops.values()
        for s in op["responses"]
    }
    assert live.models == answered - {"OpenApiDocument"}, f"answers never checked: {answered - live.models}"


def test_errors_chalice_answers_itself_have_the_one_shape(client, token_for) -> None:
    error = DOC["components"]["schemas"]["Error"]
    headers = {"Authorization": token_for("owner-1"), "Content-Type": "application/json"}
    not_allowed = client.http.request("PUT", "/jobs", headers=headers, body=b"{}")
    assert not_allowed.status_code == 405
    assert not_allowed.json_body["code"] == "METHOD_NOT_ALLOWED" and not _problems(error, not_allowed.json_body)
    text = client.http.post("/jobs", headers={**headers, "Content-Type": "text/plain"}, body=b"hello")
    assert text.status_code == 415
    assert text.json_body["code"] == "UNSUPPORTED_MEDIA_TYPE" and not _problems(error, text.json_body)


def test_a_view_emitting_a_field_no_model_declares_is_caught(client, token_for, photo, monkeypatch) -> None:
    """The answers' models are closed: a field added to a view without its model (and so without
    the document) fails the live check above, at the answer and at any depth."""
    from chalicelib.jobs.views import JobViews

    token = token_for("owner-1")
    headers = {"Authorization": token, "Content-Type": "application/json"}
    body = {"prompt": "a sunlit studio", "images": [{"imageRef": _upload("owner-1", photo)}]}
    job_id = client.http.post("/jobs", headers=headers, body=json.dumps(body).encode()).json_body["jobId"]
    write_job_images(job_id)
    schema = DOC["paths"]["/jobs/{job_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    model = _model_of(schema)
    answer = client.http.get(f"/jobs/{job_id}", headers=headers).json_body
    assert answer["images"] and not _problems(schema, answer) and not answer_models.problems_in(model, answer)

    image_view = JobViews._image_view
    monkeypatch.setattr(JobViews, "_image_view", lambda self, image: {**image_view(self, image), "thumbUrl": "x"})
    summary = JobViews.summary
    monkeypatch.setattr(JobViews, "summary", staticmethod(lambda job: {**summary(job), "owner": job["owner"]}))
    leaky = client.http.get(f"/jobs/{job_id}", headers=headers).json_body
    assert leaky["images"][0]["thumbUrl"] == "x" and leaky["owner"] == "owner-1"
    found = answer_models.problems_in(model, leaky)
    assert any(p.startswith("images.0.thumbUrl") for p in found) and any(p.startswith("owner") for p in found), found
    words = " ".join(_problems(schema, leaky))
    assert "'thumbUrl' was unexpected" in words and "'owner' was unexpected" in words


def test_the_webhook_event_sent_is_the_documented_one(client, token_for, photo, store) -> None:
    """The webhook's body (chalicelib/delivery/webhooks.py `payload`) against the document's
    `WebhookEvent` and its model: a field added to the payload alone fails here."""
    from chalicelib.delivery import webhooks

    headers = {"Authorization": token_for("owner-1"), "Content-Type": "application/json"}
    body = {"prompt": "a sunlit studio", "images": [{"imageRef": _upload("owner-1", photo)}]}
    job_id = client.http.post("/jobs", headers=headers, body=json.dumps(body).encode()).json_body["jobId"]
    event = json.loads(json.dumps(webhooks.payload(store.get_job(job_id))))
    assert event["jobId"] == job_id
    assert not _problems(_ref_schema("WebhookEvent"), event)
    assert not answer_models.problems_in(answer_models.WebhookEvent, event)
    assert answer_models.problems_in(answer_models.WebhookEvent, {**event, "owner": "owner-1"})
