"""`doctor --smoke workflow`: one small image through the deployed stack, and what only AWS knows.

As a temporary Cognito user (created, then deleted), it uploads one photo-like image through the
API's presigned POST, reads its labels, submits a job with the default model and waits for the
report: the API, the upload event, the stream, the state machine, Bedrock, the Lambdas and the
report all take part. Then it reports what
docs/aws-notes.md#n30-what-only-a-real-call-can-tell-verified-on-first-deploy lists:

- ModelId: whether the optimized `bedrock:invokeModel` integration accepted the `us.` inference
  profile id (the image succeeded with it);
- Output.S3Uri: what the object the integration wrote looks like (the model's JSON body with
  `images`, which build-mask and finalize parse, or something else);
- error names: what the integration raises, from one deliberately invalid request run by a
  throwaway state machine with the workflow's own role (a rejected request is not billed).
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backend.doctor import FAIL, OK, SMOKE_PROMPT, WARN, Findings
from backend.regions import error_code, is_profile
from chalicelib import contracts
from chalicelib.models import registry

PROBE_PREFIX = "jobs/backdrop-doctor-probe/"
# The retry rules in statemachine/backdrop.asl.json name errors "Bedrock.<Exception>".
EXPECTED_ERROR_PREFIX = "Bedrock."


def smoke_photo() -> bytes:
    """A 320×240 photo-like image (Rekognition needs 80 px per side)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 240), (232, 232, 226))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 180, 320, 240), fill=(205, 200, 190))
    draw.ellipse((110, 50, 210, 200), fill=(190, 35, 45), outline=(110, 15, 20))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def describe_response_object(raw: bytes) -> tuple[str, str]:
    """(status, description) of the object Output.S3Uri pointed at."""
    try:
        body = json.loads(raw)
    except ValueError:
        return FAIL, f"not JSON ({len(raw)} bytes, starts {raw[:40]!r})"
    if not isinstance(body, dict):
        return FAIL, f"JSON {type(body).__name__}, not an object"
    keys = ", ".join(sorted(body))
    images = body.get("images")
    if isinstance(images, list) and images and isinstance(images[0], str):
        return OK, f"the model's JSON body as is (keys: {keys}; images: {len(images)} base64 string(s))"
    return FAIL, f"JSON object without base64 'images' (keys: {keys})"


def _probe_definition(model_id: str, bucket: str) -> dict[str, Any]:
    return {
        "Comment": "Backdrop doctor probe: one invalid InvokeModel through the optimized integration",
        "StartAt": "Invoke",
        "States": {
            "Invoke": {
                "Type": "Task",
                "Resource": "arn:aws:states:::bedrock:invokeModel",
                "Parameters": {
                    "ModelId": model_id,
                    "Input": {"S3Uri": f"s3://{bucket}/{PROBE_PREFIX}request.json"},
                    "Output": {"S3Uri": f"s3://{bucket}/{PROBE_PREFIX}response.json"},
                },
                "End": True,
            }
        },
    }


@dataclass
class WorkflowSmoke:
    session: Any
    region: str
    stage: str
    api_url: str
    say: Callable[[str], None] = print
    confirm: Callable[[str], bool] = lambda prompt: input(prompt).strip().lower() in ("y", "yes")
    sleep: Callable[[float], None] = time.sleep
    timeout_s: float = 900
    # (api_url, id_token) -> an API client; the frontend's own by default
    make_api: Callable[[str, str], Any] | None = None
    sign_in: Callable[[str, str, str], str] | None = None  # (client_id, user, password) -> ID token
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.session.client(service, region_name=self.region)
        return self.clients[service]

    def outputs(self, kind: str) -> dict[str, str]:
        from backend.deploy import stack_name

        stack = self.client("cloudformation").describe_stacks(StackName=stack_name(self.stage, kind))["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def run(self, found: Findings, *, yes: bool) -> None:
        spec = registry.get_model(registry.default_model_key())
        self.say(
            f"--smoke workflow runs one image through stage {self.stage} with {spec.key} (about "
            f"${spec.price_per_image_usd:.2f}, UNCONFIRMED price) as a temporary user, then one rejected "
            "(unbilled) request through a throwaway state machine."
        )
        if not yes and not self.confirm("Go ahead? [y/N] "):
            found.add("smoke workflow", WARN, "not run (declined)")
            return
        try:
            resources, auth, workflow = self.outputs("resources"), self.outputs("auth"), self.outputs("workflow")
        except ClientError as exc:
            found.add(
                "smoke workflow", FAIL, f"stage {self.stage} is not deployed ({error_code(exc)})", "deploy it first"
            )
            return
        view = self._one_image(found, auth)
        if view is not None:
            self._report_view(found, view, spec, resources["BucketName"])
        self._probe_error_names(found, spec, resources["BucketName"], workflow.get("WorkflowRoleArn", ""))

    # ---------------------------------------------------------------- one image through the stack

    def _one_image(self, found: Findings, auth: dict[str, str]) -> dict[str, Any] | None:
        cognito = self.client("cognito-idp")
        user = f"backdrop-smoke-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(18) + "aA1!"
        attributes = [{"Name": "email", "Value": user}, {"Name": "email_verified", "Value": "true"}]
        cognito.admin_create_user(
            UserPoolId=auth["UserPoolId"], Username=user, UserAttributes=attributes, MessageAction="SUPPRESS"
        )
        try:
            cognito.admin_set_user_password(
                UserPoolId=auth["UserPoolId"], Username=user, Password=password, Permanent=True
            )
            token = self._sign_in(auth["UserPoolClientId"], user, password)
            api = self._api(token)
            refs = api.upload_bytes([("backdrop-smoke.png", smoke_photo(), "image/png")])
            labels = api.labels([refs[0]["imageRef"]]).get(refs[0]["imageRef"], [])
            kept = [labels[0]["name"]] if labels else []
            submitted = api.submit({"prompt": SMOKE_PROMPT, "images": [{**refs[0], "labels": kept}]})
            self.say(f"job {submitted['jobId']} submitted; waiting for its report ...")
            api.wait(submitted["jobId"], poll_s=5, timeout_s=self.timeout_s)  # polls the job's summary
            return dict(api.job(submitted["jobId"], limit=1))  # then its one image
        except Exception as exc:  # any failure here is the finding itself
            found.add(
                "smoke workflow",
                FAIL,
                f"{type(exc).__name__}: {exc}",
                "see the Lambda logs (/aws/lambda/backdrop-<stage>-*) and the dashboard",
            )
            return None
        finally:
            cognito.admin_delete_user(UserPoolId=auth["UserPoolId"], Username=user)

    def _sign_in(self, client_id: str, user: str, password: str) -> str:
        if self.sign_in:
            return self.sign_in(client_id, user, password)
        from frontend.api_client import CognitoLogin

        login = CognitoLogin(client_id=client_id, region=self.region)
        login.sign_in(user, password)
        return login.id_token

    def _api(self, token: str) -> Any:
        if self.make_api:
            return self.make_api(self.api_url, token)
        from frontend.api_client import BackdropClient

        return BackdropClient(self.api_url, token)

    def _report_view(self, found: Findings, view: dict[str, Any], spec: Any, bucket: str) -> None:
        image = (view.get("images") or [{}])[0]
        status = image.get("status")
        profile_ids = [m for m in spec.model_ids.values() if is_profile(m)]
        if view.get("status") == contracts.JobStatus.COMPLETED.value and status == "SUCCEEDED":
            found.add("smoke workflow", OK, f"job {view['jobId']} COMPLETED, report written")
            if profile_ids:
                found.add(
                    "verified: profile id as ModelId",
                    OK,
                    f"the optimized integration accepted {', '.join(profile_ids)}",
                )
        else:
            cause = f"{image.get('errorCode')}: {image.get('cause')}"
            found.add(
                "smoke workflow",
                FAIL,
                f"job {view.get('jobId')} {view.get('status')}, image {status} ({cause})",
                "the cause names the step; docs/deploy.md lists the common ones",
            )
            if profile_ids and "model identifier" in str(image.get("cause", "")).lower():
                found.add(
                    "verified: profile id as ModelId",
                    FAIL,
                    f"rejected: {image.get('cause')}",
                    "set BACKDROP_MODEL_IDS to the inference-profile ARNs instead of ids",
                )
        s3 = self.client("s3")
        adapter = registry.adapter_for(spec)
        for step in adapter.steps:
            key = contracts.response_key(view.get("jobId", ""), image.get("imageId", ""), step)
            try:
                raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError as exc:
                found.add(f"verified: Output.S3Uri {step}", WARN, f"could not read {key} ({error_code(exc)})")
                continue
            verdict, description = describe_response_object(raw)
            found.add(f"verified: Output.S3Uri {step}", verdict, description)

    # ---------------------------------------------------------------- the integration's error names

    def _probe_error_names(self, found: Findings, spec: Any, bucket: str, role_arn: str) -> None:
        name = "verified: error names"
        if not role_arn:
            found.add(name, WARN, "the workflow stack has no WorkflowRoleArn output; re-deploy, then run again")
            return
        sfn, s3 = self.client("stepfunctions"), self.client("s3")
        model_id = next(iter(spec.model_ids.values()))
        machine = f"backdrop-{self.stage}-doctor-probe"
        s3.put_object(Bucket=bucket, Key=f"{PROBE_PREFIX}request.json", Body=b"{}", ContentType="application/json")
        arn = ""
        try:
            arn = sfn.create_state_machine(
                name=machine, definition=json.dumps(_probe_definition(model_id, bucket)), roleArn=role_arn
            )["stateMachineArn"]
            execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
            described = self._wait_execution(sfn, execution)
        except (ClientError, BotoCoreError) as exc:
            found.add(name, WARN, f"probe not run ({error_code(exc)}: {exc})")
            return
        finally:
            if arn:
                sfn.delete_state_machine(stateMachineArn=arn)
            s3.delete_object(Bucket=bucket, Key=f"{PROBE_PREFIX}request.json")
        error, cause = described.get("error", ""), described.get("cause", "")
        if described.get("status") == "SUCCEEDED":
            found.add(name, WARN, "the invalid request was accepted: no error name learned")
        elif error.startswith(EXPECTED_ERROR_PREFIX):
            found.add(name, OK, f"an invalid request fails as {error!r}: the ASL's 'Bedrock.<Exception>' names hold")
        else:
            found.add(
                name,
                FAIL,
                f"an invalid request fails as {error!r} ({cause[:200]}), not 'Bedrock.<Exception>'",
                "the retry rules in statemachine/backdrop.asl.json and chalicelib/errors.py name errors "
                "'Bedrock.<Exception>': change them to the names seen here",
            )

    def _wait_execution(self, sfn: Any, execution: str) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while True:
            described = dict(sfn.describe_execution(executionArn=execution))
            if described["status"] != "RUNNING" or time.monotonic() > deadline:
                return described
            self.sleep(2)
