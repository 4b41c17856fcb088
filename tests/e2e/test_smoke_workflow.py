"""`doctor --smoke workflow` against the local stack: the real API over HTTP, presigned uploads,
Cognito, the stream, the state machine and the Lambdas, with the Bedrock stand-in answering.

What it must tell: each background kind the deployment offers, a review approval and a failure
path as one line each; a kind the Region does not offer as "not offered"; a broken recipe as ✗;
the Output.S3Uri check judged on what exists (no warning when Finalize removed the objects);
and nothing of its own left behind unless --keep.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from backend.doctor import FAIL, OK, WARN, Findings
from backend.local.cutout import engine_named
from backend.local.stack import DEMO_USER, LocalStack
from backend.smoke import Deployment, WorkflowSmoke
from chalicelib.models import registry
from frontend.api_client import BackdropClient, CognitoLogin

pytestmark = pytest.mark.slow
KINDS = ("prompt", "color", "image", "transparent", "review", "failure path")


@pytest.fixture
def local() -> Iterator[LocalStack]:
    # the classical cut-out: this is about orchestration, not edges
    stack = LocalStack(api_port=0, stage="smoke", cutout=engine_named("estimate")).start()
    try:
        yield stack
    finally:
        stack.stop()


def _smoke(local: LocalStack, said: list[str], asked: list[str], **options: Any) -> WorkflowSmoke:
    def sign_in(client_id: str, user: str, password: str) -> Any:
        login = CognitoLogin(client_id=client_id, endpoint_url=local.endpoint)
        login.sign_in(user, password)
        return login.id_token

    def confirm(prompt: str) -> bool:
        asked.append(prompt)
        return True

    outputs = local.outputs
    return WorkflowSmoke(
        boto3.Session(region_name=local.region),
        local.region,
        local.stage,
        local.api_url,
        say=said.append,
        confirm=confirm,
        poll_s=0.25,
        notification_wait_s=20,
        timeout_s=240,
        deployment=Deployment(
            outputs["bucket"],
            outputs["user_pool_id"],
            outputs["client_id"],
            "arn:aws:iam::123456789012:role/backdrop-smoke-workflow",
        ),
        sign_in=sign_in,
        make_api=lambda url, token: BackdropClient(url, token),
        clients={service: local.client(service) for service in ("cognito-idp", "s3", "stepfunctions")},
        **options,
    )


def _lines(found: Findings) -> dict[str, tuple[str, str]]:
    print(found.table())  # shown when a test fails
    return {c.name: (c.status, c.detail) for c in found.checks}


def _keys(local: LocalStack, prefix: str) -> list[str]:
    listed = local.client("s3").list_objects_v2(Bucket=local.outputs["bucket"], Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_every_kind_the_region_offers_a_review_and_a_failure_each_a_line_then_nothing_left(
    local: LocalStack,
) -> None:
    said: list[str] = []
    asked: list[str] = []
    found = Findings()
    _smoke(local, said, asked).run(found, yes=False)
    lines = _lines(found)

    # the estimate, per case and in all, is said before anything is asked or spent
    assert asked and "Go ahead" in asked[0]
    plan = said[0]
    assert "about $0.083" in plan and "In all about $0.26" in plan
    for kind in KINDS:
        status, detail = lines[f"workflow {kind}"]
        assert status == OK, (kind, detail)
        assert "in " in detail and "report.json keys: " in detail and "email SENT (by workflow)" in detail
    assert "outputs: prompt png" in lines["workflow prompt"][1]
    assert "outputs: transparent png" in lines["workflow transparent"][1]
    assert "$0.040 (estimate $0.043)" in lines["workflow color"][1]
    assert "waited for review, approved after" in lines["workflow review"][1]
    assert "review APPROVED" in lines["workflow review"][1]
    failure = lines["workflow failure path"][1]
    assert "image FAILED as it should: IMAGE_INVALID: the file is not a PNG" in failure and "$0.000" in failure
    # us-east-1 cannot call the scene model: said, and no scene job was submitted
    assert lines["workflow scene"] == (
        WARN,
        "not offered in us-east-1: stability-image-core is called from us-west-2 only",
    )
    assert all("scene" not in model_id for model_id, _ in local.bedrock.calls)
    # Finalize deleted every response object: the images that SUCCEEDED are the proof, no warning
    for step in ("remove-background", "inpaint"):
        status, detail = lines[f"verified: Output.S3Uri {step}"]
        assert status == OK and "read and parsed by the workflow" in detail, detail
    assert lines["verified: profile id as ModelId"][0] == OK
    assert lines["verified: error names"][0] == OK
    assert lines["smoke workflow"][0] == OK and lines["smoke workflow"][1].startswith("6 job(s) in ")
    assert [c.name for c in found.checks if c.status == WARN] == ["workflow scene"]

    # cleaned up: the jobs (DELETE), their files, the leftover background photo and the user
    assert lines["workflow cleanup"][0] == OK and "6 job(s) deleted" in lines["workflow cleanup"][1]
    for prefix in ("uploads/", "results/", "reports/"):
        assert _keys(local, prefix) == [], prefix
    users = local.client("cognito-idp").list_users(UserPoolId=local.outputs["user_pool_id"])["Users"]
    assert [u["Username"] for u in users] == [DEMO_USER]


@pytest.fixture
def scenes_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment whose scene model can be called from its Region (us-east-1 here)."""
    data = json.loads(Path(registry.REGISTRY_PATH).read_text())
    for model in data["models"]:
        if model["key"] == "stability-image-core":
            model["regions"] = ["us-east-1", "us-west-2"]
    path = tmp_path / "models.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("BACKDROP_MODEL_REGISTRY", str(path))


def test_a_broken_colour_recipe_is_a_failed_line_and_the_objects_that_remain_are_read(
    scenes_here: None, local: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core.contracts import BackgroundSource
    from chalicelib.workflow import steps as workflow

    working = workflow.Steps._background_layer

    def broken(self: Any, step: Any, background: Any, size: Any) -> Any:
        if background.source is BackgroundSource.COLOR:
            raise RuntimeError("the colour recipe is broken")
        return working(self, step, background, size)

    monkeypatch.setattr(workflow.Steps, "_background_layer", broken)
    said: list[str] = []
    found = Findings()
    _smoke(local, said, [], keep=True).run(found, yes=True)
    lines = _lines(found)

    status, detail = lines["workflow color"]
    assert status == FAIL and "image FAILED (INTERNAL_ERROR" in detail, detail
    assert lines["smoke workflow"][0] == FAIL and "failed: color" in lines["smoke workflow"][1]
    for kind in ("prompt", "image", "transparent", "scene", "review", "failure path"):
        assert lines[f"workflow {kind}"][0] == OK, (kind, lines[f"workflow {kind}"])
    assert "outputs: scene png" in lines["workflow scene"][1]
    # what still exists is read: the failed colour image kept its scratch, the scene's answer stays
    status, detail = lines["verified: Output.S3Uri remove-background"]
    assert status == OK and detail.startswith("the model's JSON body as is") and "the color job's" in detail
    status, detail = lines["verified: Output.S3Uri text-to-image"]
    assert status == OK and "the scene job's" in detail and "scene.text-to-image.json" in detail
    assert lines["verified: Output.S3Uri inpaint"][0] == OK
    # --keep: the jobs and their files stay (the temporary user goes)
    assert lines["workflow cleanup"][0] == WARN and lines["workflow cleanup"][1].startswith("kept (--keep)")
    assert _keys(local, "results/") and _keys(local, "reports/")
