"""`doctor --smoke workflow`: every path a first real job takes, through the deployed stack, in minutes.

As a temporary Cognito user (created, then deleted) it uploads a small photo-like image, a
background photo and a file that is not an image through the API's presigned POSTs, reads their
labels, then submits one one-image job per case, all at once, and follows them to their end:

- one job of each background kind the deployment offers in its Region: prompt (remove-background
  + inpaint), colour, own photo, transparent and scene (the scene only where its text-to-image
  model can be called from the Region: models.json `regions`, or what doctor learnt from Bedrock;
  otherwise the line says "not offered in <region>" and nothing is submitted);
- a review approval: a job with `reviewHours` waits after its image, the smoke approves it through
  the API (POST /jobs/{id}/review/approve) and sees it finish;
- a failure path: the file that is not an image must end FAILED with IMAGE_INVALID and a cause,
  before any model call (it costs nothing).

Each case is one line (✓ / ✗ / !) saying what it saw: the job's and the image's status, the
outputs' background kinds and formats, the report's keys, the cost against the estimate, the
email's state (`notification`, recorded when the execution ends) and the time it took. Then the
facts of docs/aws-notes.md#n30-what-only-a-real-call-can-tell-verified-on-first-deploy:

- ModelId: whether the optimized `bedrock:invokeModel` integration accepted the `us.` inference
  profile id (an image succeeded with it);
- Output.S3Uri: what the integration wrote, judged on what exists. Finalize deletes a succeeded
  image's scratch (the response objects too), so the check reads any response object that still
  exists (a failed image's, and the scene's, which the workflow keeps) and describes it; a call
  whose object is gone because its image SUCCEEDED was read and parsed by the workflow itself,
  which is the check passing, never a warning;
- error names: what the integration raises, from one deliberately invalid request run by a
  throwaway state machine with the workflow's own role (a rejected request is not billed).

The jobs are deleted afterwards (DELETE /jobs/{id} with the originals) unless `--keep`. The
estimated cost is printed, per case, before anything is spent, and confirmed unless `--yes`.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from backend import user_topics
from backend.doctor import FAIL, OK, SMOKE_PROMPT, WARN, Findings
from backend.regions import error_code, is_profile
from chalicelib.core import contracts, estimate
from chalicelib.core.errors import ModelUnavailable
from chalicelib.models import registry
from chalicelib.models.base import ModelSpec

PROBE_PREFIX = "jobs/backdrop-doctor-probe/"
# The retry rules in statemachine/backdrop.asl.json name errors "Bedrock.<Exception>".
EXPECTED_ERROR_PREFIX = "Bedrock."
SMOKE_SCENE_PROMPT: Final = "a pale oak table against a plaster wall"
# The shortest review window POST /jobs accepts: the smoke approves as soon as the job waits.
REVIEW_HOURS: Final = 1
POLL_S: Final = 5.0
# The job's `notification` is recorded by the reconciler when the execution's end reaches it
# through EventBridge (seconds on AWS); past this the line says it was not recorded.
NOTIFICATION_WAIT_S: Final = 90.0
NOT_AN_IMAGE: Final = b"Backdrop smoke test: this upload is text, not an image.\n"
# the names the uploads go by (the API keeps them in the job's view and report)
PHOTO, BACKDROP, NOT_IMAGE = "backdrop-smoke.png", "backdrop-smoke-background.jpg", "backdrop-smoke-not-an-image.png"
_GONE: Final = frozenset({"NoSuchKey", "404", "NotFound"})


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


def smoke_backdrop() -> bytes:
    """A 400×300 background photo (a background photo needs 256 px on its shortest side)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (400, 300), (70, 110, 160))
    ImageDraw.Draw(img).rectangle((0, 200, 400, 300), fill=(150, 120, 90))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
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


@dataclass(frozen=True)
class Deployment:
    """What the smoke needs of a stage: its stacks' outputs on AWS (or a local stack's)."""

    bucket: str
    user_pool_id: str
    client_id: str
    workflow_role_arn: str = ""


@dataclass
class Case:
    """One job the smoke submits (one image), what it expects and what it saw."""

    name: str
    what: str
    job: dict[str, Any]  # the POST /jobs body without its images
    upload: str  # which upload is its image: PHOTO or NOT_IMAGE
    estimate_usd: float
    background: str = ""  # the background kind the output must have
    expect_error: str = ""  # the error code the image must fail with (the failure path)
    review: bool = False
    skip: str = ""  # why it is not run
    job_id: str = ""
    started: float = 0.0
    seconds: float | None = None  # submit to the end, as polled
    summary: dict[str, Any] = field(default_factory=dict)
    view: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    report_error: str = ""
    approved_after: float | None = None
    problem: str = ""  # what went wrong on the way (an API error, a timeout)

    @property
    def image(self) -> dict[str, Any]:
        images = self.view.get("images") or [{}]
        return dict(images[0])

    @property
    def finished(self) -> bool:
        return self.summary.get("status") in {s.value for s in contracts.TERMINAL_JOB_STATUSES}


def plan_cases(spec: ModelSpec, scene_refusal: str) -> list[Case]:
    """The smoke's cases for the default model; `scene_refusal` says why a scene is not offered
    ("" when it is). Each with what POST /jobs would estimate for it (chalicelib/core/estimate.py)."""
    adapter = registry.adapter_for(spec)
    composes = len(adapter.steps) >= 2  # the compose recipes need a remove-background call

    def usd(*, compose: bool, scene_usd: float | None = None) -> float:
        return estimate.job_estimate(
            1,
            1,
            spec.price_per_image_usd,
            spec.re_roll_price_usd,
            0,
            steps_per_prompt_image=len(adapter.steps),
            compose_images=1 if compose else 0,
            compose_price_usd=spec.compose_price_usd,
            scene_price_usd=scene_usd,
        ).usd

    no_compose = f"not offered with {spec.key}: a composed background needs remove-background"
    first = adapter.steps[0]
    cases = [
        Case(
            "prompt",
            f"prompt background: {' + '.join(adapter.steps)}",
            {"prompt": SMOKE_PROMPT, "reRolls": 0},
            PHOTO,
            usd(compose=False),
            background="prompt",
        ),
        Case(
            "color",
            f"colour background: {first}",
            {"background": {"source": "color", "color": "#FFFFFF"}},
            PHOTO,
            usd(compose=True),
            background="color",
            skip="" if composes else no_compose,
        ),
        Case(
            "image",
            f"own background photo: {first}",
            {"background": {"source": "image", "imageRef": BACKDROP}},  # the ref is filled at submit
            PHOTO,
            usd(compose=True),
            background="image",
            skip="" if composes else no_compose,
        ),
        Case(
            "transparent",
            f"transparent: {first}",
            {"background": {"source": "transparent"}, "outputFormat": "png"},
            PHOTO,
            usd(compose=True),
            background="transparent",
            skip="" if composes else no_compose,
        ),
    ]
    try:
        scene = registry.get_model(registry.default_scene_model_key())
    except ModelUnavailable as exc:
        scene, scene_refusal = None, scene_refusal or str(exc)
    cases.append(
        Case(
            "scene",
            f"scene: {scene.key if scene else 'text-to-image'} once + {first}",
            {"background": {"source": "scene", "prompt": SMOKE_SCENE_PROMPT}},
            PHOTO,
            usd(compose=True, scene_usd=scene.price_per_image_usd) if scene else 0.0,
            background="scene",
            skip=scene_refusal or ("" if composes else no_compose),
        )
    )
    # the review and the failure ride on the cheapest recipe the model has
    review_body: dict[str, Any] = (
        {"background": {"source": "transparent"}, "outputFormat": "png"}
        if composes
        else {"prompt": SMOKE_PROMPT, "reRolls": 0}
    )
    cases.append(
        Case(
            "review",
            f"review: {'transparent' if composes else 'prompt'}, reviewHours {REVIEW_HOURS}, approved by the smoke",
            {**review_body, "reviewHours": REVIEW_HOURS},
            PHOTO,
            usd(compose=composes),
            background="transparent" if composes else "prompt",
            review=True,
        )
    )
    failure_body: dict[str, Any] = (
        {"background": {"source": "color", "color": "#FFFFFF"}} if composes else {"prompt": SMOKE_PROMPT}
    )
    cases.append(
        Case(
            "failure path",
            "a file that is not an image: FAILED (IMAGE_INVALID) before any model call",
            failure_body,
            NOT_IMAGE,
            0.0,
            expect_error=contracts.ErrorCode.IMAGE_INVALID.value,
        )
    )
    return cases


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f} s"


def _kind(output: dict[str, Any]) -> str:
    # a prompt image's outputs name no `background` (only the composed recipes name theirs)
    return str(output.get("background") or contracts.BackgroundSource.PROMPT.value)


def _output_words(outputs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{_kind(o)} {str(o.get('key', '')).rsplit('.', 1)[-1]}" for o in outputs) or "none"


@dataclass
class WorkflowSmoke:
    session: Any
    region: str
    stage: str
    api_url: str
    say: Callable[[str], None] = print
    confirm: Callable[[str], bool] = lambda prompt: input(prompt).strip().lower() in ("y", "yes")
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    timeout_s: float = 900
    poll_s: float = POLL_S
    notification_wait_s: float = NOTIFICATION_WAIT_S
    keep: bool = False  # --keep: leave the jobs (and their files) in place
    deployment: Deployment | None = None  # None: read from the stage's stacks
    # (api_url, token provider) -> an API client; the frontend's own by default
    make_api: Callable[[str, Callable[[], str]], Any] | None = None
    # (client_id, user, password) -> a token provider (the ID token, renewed as it expires)
    sign_in: Callable[[str, str, str], Callable[[], str]] | None = None
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.session.client(service, region_name=self.region)
        return self.clients[service]

    def outputs(self, kind: str) -> dict[str, str]:
        from backend.deploy import stack_name

        stack = self.client("cloudformation").describe_stacks(StackName=stack_name(self.stage, kind))["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def _deployment(self) -> Deployment:
        if self.deployment is not None:
            return self.deployment
        resources, auth, workflow = self.outputs("resources"), self.outputs("auth"), self.outputs("workflow")
        return Deployment(
            resources["BucketName"], auth["UserPoolId"], auth["UserPoolClientId"], workflow.get("WorkflowRoleArn", "")
        )

    def scene_refusal(self, found: Findings) -> str:
        """Why this deployment offers no scene background ("" if it does): its text-to-image model
        cannot be called from the Region (what doctor learnt from Bedrock, else models.json)."""
        try:
            key = registry.default_scene_model_key()
        except ModelUnavailable as exc:
            return str(exc)
        scene = registry.get_model(key)
        if key in found.unreachable:
            return f"not offered in {self.region}: {key} cannot be called from it (see region-for {key})"
        if any(route.model_key == key for route in found.routes):
            return ""
        if scene.regions and self.region not in scene.regions:
            return f"not offered in {self.region}: {key} is called from {', '.join(scene.regions)} only"
        return ""

    def run(self, found: Findings, *, yes: bool) -> None:
        spec = registry.get_model(registry.default_model_key())
        try:
            deployment = self._deployment()
        except ClientError as exc:
            found.add(
                "smoke workflow", FAIL, f"stage {self.stage} is not deployed ({error_code(exc)})", "deploy it first"
            )
            return
        cases = plan_cases(spec, self.scene_refusal(found))
        planned = [c for c in cases if not c.skip]
        total = sum(c.estimate_usd for c in planned)
        lines = [
            f"--smoke workflow submits {len(planned)} one-image job(s) to stage {self.stage} in {self.region} with "
            f"{spec.key}, as a temporary user, all at once:"
        ]
        for case in cases:
            cost = "skipped: " + case.skip if case.skip else f"about ${case.estimate_usd:.3f}"
            lines.append(f"  {case.name:<13} {case.what:<62} {cost}")
        lines.append(
            f"  then one rejected (unbilled) request through a throwaway state machine. In all about ${total:.2f} "
            "(models.json prices, UNCONFIRMED); "
            + ("the jobs are kept (--keep)." if self.keep else "the jobs are deleted afterwards (--keep keeps them).")
        )
        self.say("\n".join(lines))
        if not yes and not self.confirm("Go ahead? [y/N] "):
            found.add("smoke workflow", WARN, "not run (declined)")
            return
        self._jobs(found, deployment, cases, spec)
        self._probe_error_names(found, spec, deployment.bucket, deployment.workflow_role_arn)

    # ---------------------------------------------------------------- the jobs, as a temporary user

    def _jobs(self, found: Findings, deployment: Deployment, cases: list[Case], spec: ModelSpec) -> None:
        cognito = self.client("cognito-idp")
        user = f"backdrop-smoke-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(18) + "aA1!"
        attributes = [{"Name": "email", "Value": user}, {"Name": "email_verified", "Value": "true"}]
        created = cognito.admin_create_user(
            UserPoolId=deployment.user_pool_id, Username=user, UserAttributes=attributes, MessageAction="SUPPRESS"
        )
        owner = next((a["Value"] for a in created["User"].get("Attributes", []) if a["Name"] == "sub"), "")
        # the user's own job-email topic, as create-user makes it but with no subscriber: the jobs'
        # emails are published (the workflow's Notify step and its IAM are exercised) and reach nobody
        sns = self.client("sns")
        topic_arn = sns.create_topic(
            Name=user_topics.topic_name(self.stage, owner), Attributes=user_topics.TOPIC_ATTRIBUTES
        )["TopicArn"]
        started = self.clock()
        api: Any = None
        try:
            cognito.admin_set_user_password(
                UserPoolId=deployment.user_pool_id, Username=user, Password=password, Permanent=True
            )
            api = self._api(self._sign_in(deployment.client_id, user, password))
            refs = self._upload(found, api)
            self._submit(api, cases, refs)
            self._follow(api, cases)
            for case in cases:
                self._read(api, case)
                found.add(f"workflow {case.name}", *self._judge(case))
            self._check_responses(found, deployment.bucket, cases, spec)
            self._check_profile_ids(found, cases, spec)
        except Exception as exc:  # any failure here is the finding itself
            found.add(
                "smoke workflow",
                FAIL,
                f"{type(exc).__name__}: {exc}",
                "see the Lambda logs (/aws/lambda/backdrop-<stage>-*) and the dashboard",
            )
        else:
            ran = [c for c in cases if c.job_id]
            spent = sum(float((c.view.get("cost") or {}).get("actualUsd") or 0) for c in ran)
            failed = [
                c.name for c in cases if any(k.name == f"workflow {c.name}" and k.status == FAIL for k in found.checks)
            ]
            found.add(
                "smoke workflow",
                FAIL if failed else OK,
                f"{len(ran)} job(s) in {self.clock() - started:.0f} s, ${spent:.3f} spent (estimate "
                f"${sum(c.estimate_usd for c in ran):.3f})" + (f"; failed: {', '.join(failed)}" if failed else ""),
                "each ✗ line names the job, the image's error code and its cause; docs/deploy.md lists the common ones"
                if failed
                else "",
            )
        finally:
            try:
                if api is not None:
                    self._clean_up(found, api, cases, deployment, owner, user)
            finally:
                cognito.admin_delete_user(UserPoolId=deployment.user_pool_id, Username=user)
                user_topics.delete(sns, topic_arn)

    def _sign_in(self, client_id: str, user: str, password: str) -> Callable[[], str]:
        if self.sign_in:
            return self.sign_in(client_id, user, password)
        from frontend.api_client import CognitoLogin

        login = CognitoLogin(client_id=client_id, region=self.region)
        login.sign_in(user, password)
        return login.id_token  # renews the token as it expires

    def _api(self, token: Callable[[], str]) -> Any:
        if self.make_api:
            return self.make_api(self.api_url, token)
        from frontend.api_client import BackdropClient

        return BackdropClient(self.api_url, token)

    def _upload(self, found: Findings, api: Any) -> dict[str, str]:
        """name → imageRef of the three uploads, through the API's presigned POSTs; then their
        labels (the upload event and Rekognition): a line saying what label detection answered."""
        files = [(PHOTO, smoke_photo(), "image/png"), (BACKDROP, smoke_backdrop(), "image/jpeg")]
        files.append((NOT_IMAGE, NOT_AN_IMAGE, "image/png"))  # the API judges by type and size only
        outcome = api.upload_bytes(files)
        if outcome.rejected:
            raise RuntimeError(f"uploads refused: {outcome.rejected}")
        refs = {u["name"]: u["imageRef"] for u in outcome.uploaded}
        started = self.clock()
        answer = api.label_results([refs[PHOTO], refs[NOT_IMAGE]])
        labels = answer["labels"].get(refs[PHOTO], [])
        unreadable = answer.get("unavailable", {})
        named = ", ".join(f"{label['name']} {float(label.get('confidence', 0)):.0f}%" for label in labels[:3])
        detail = (
            f"the photo: {len(labels)} label(s) ({named or 'none'}); the non-image: "
            f"{(unreadable.get(refs[NOT_IMAGE]) or {}).get('code', 'no reason given')}, in "
            f"{self.clock() - started:.0f} s"
        )
        found.add("workflow labels", WARN if refs[PHOTO] in unreadable else OK, detail)
        return refs

    def _submit(self, api: Any, cases: list[Case], refs: dict[str, str]) -> None:
        from frontend.api_client import ApiError

        for case in cases:
            if case.skip:
                continue
            body = json.loads(json.dumps(case.job))
            background = body.get("background") or {}
            if background.get("imageRef") == BACKDROP:
                background["imageRef"] = refs[BACKDROP]
            body["images"] = [{"imageRef": refs[case.upload], "name": case.upload, "labels": []}]
            case.started = self.clock()
            try:
                case.job_id = str(api.submit(body)["jobId"])
            except ApiError as exc:
                refused_here = self.region in exc.message or "region" in exc.message.lower()
                if exc.status == 400 and case.name == "scene" and refused_here:  # not deployable in this Region
                    case.skip = f"not offered in {self.region}: {exc.message}"
                else:
                    case.problem = f"POST /jobs answered {exc.status} {exc.code}: {exc.message}"
        self.say(f"submitted: {', '.join(f'{c.name} {c.job_id}' for c in cases if c.job_id)}; following them ...")

    def _follow(self, api: Any, cases: list[Case]) -> None:
        """Poll every job's summary until each has ended; approve the review job once it waits;
        then give the executions' ends time to record each job's email state."""
        from frontend.api_client import ApiError

        deadline = self.clock() + self.timeout_s
        pending = [c for c in cases if c.job_id]
        while pending:
            for case in list(pending):
                try:
                    case.summary = dict(api.job_summary(case.job_id))
                    on_review = (case.summary.get("review") or {}).get("status") == "WAITING"
                    if case.review and case.approved_after is None and on_review:
                        api.approve(case.job_id)
                        case.approved_after = self.clock() - case.started
                except ApiError as exc:
                    case.problem = f"GET /jobs/{case.job_id} answered {exc.status} {exc.code}: {exc.message}"
                    pending.remove(case)
                    continue
                if case.finished:
                    case.seconds = self.clock() - case.started
                    pending.remove(case)
            if not pending:
                break
            if self.clock() > deadline:
                for case in pending:
                    case.problem = f"still {case.summary.get('status')} after {self.timeout_s:.0f} s"
                break
            self.sleep(self.poll_s)
        deadline = self.clock() + self.notification_wait_s
        waiting = [c for c in cases if c.finished and "notification" not in c.summary and c.summary.get("notify", True)]
        while waiting and self.clock() < deadline:
            self.sleep(self.poll_s)
            for case in list(waiting):
                try:
                    case.summary = dict(api.job_summary(case.job_id))
                except ApiError:  # asked again on the next round; the line says what it last saw
                    continue
                if "notification" in case.summary:
                    waiting.remove(case)

    def _read(self, api: Any, case: Case) -> None:
        """The finished job's view (its image, outputs and cost) and its JSON report."""
        from frontend.api_client import ApiError

        if not case.job_id or case.problem:
            return
        case.view = dict(api.job(case.job_id, limit=10))
        url = (case.view.get("reports") or {}).get("json")
        if not url:
            case.report_error = "the job view links no report"
            return
        try:
            case.report = json.loads(api.download(url))
        except (ApiError, ValueError) as exc:
            case.report_error = f"could not read it: {exc}"

    def _judge(self, case: Case) -> tuple[str, str, str]:
        """(status, what was seen, fix) of one case."""
        if case.skip:
            return WARN, case.skip, ""
        if case.problem:
            return FAIL, case.problem, "see the Lambda logs (/aws/lambda/backdrop-<stage>-*) and the dashboard"
        view, image = case.view, case.image
        problems: list[str] = []
        notes: list[str] = []
        seen = [f"job {view.get('status')} in {_seconds(case.seconds)}"]
        code, cause = image.get("errorCode"), image.get("cause")
        if case.expect_error:
            if image.get("status") == "FAILED" and code == case.expect_error and cause:
                seen.append(f"image FAILED as it should: {code}: {cause}")
            else:
                problems.append(f"image {image.get('status')} ({code}: {cause}), not FAILED with {case.expect_error}")
            if view.get("status") != contracts.JobStatus.FAILED.value:
                problems.append("the job is not FAILED")
        else:
            if view.get("status") != contracts.JobStatus.COMPLETED.value or image.get("status") != "SUCCEEDED":
                problems.append(f"image {image.get('status')} ({code}: {cause})")
            outputs = list(image.get("outputs") or [])
            if not any(_kind(o) == case.background for o in outputs):
                problems.append(f"no {case.background} output")
            seen.append(
                f"image {image.get('status')}, verdict {image.get('verdict')}, outputs: {_output_words(outputs)}"
            )
        if case.review:
            review = view.get("review") or {}
            if case.approved_after is None:
                problems.append(f"it never waited for review (review {review.get('status')})")
            elif review.get("status") != "APPROVED":
                problems.append(f"approved after {_seconds(case.approved_after)}, but review is {review.get('status')}")
            else:
                seen.append(f"waited for review, approved after {_seconds(case.approved_after)}, review APPROVED")
        if case.report is None:
            problems.append(f"no report ({case.report_error})")
        else:
            entries = case.report.get("images") or [{}]
            if entries[0].get("status") != image.get("status"):
                problems.append(f"the report says {entries[0].get('status')}, the job view {image.get('status')}")
            seen.append(f"report.json keys: {', '.join(sorted(case.report))}")
        cost = view.get("cost") or {}
        seen.append(f"${float(cost.get('actualUsd') or 0):.3f} (estimate ${float(cost.get('estimateUsd') or 0):.3f})")
        notification = view.get("notification") or {}
        if notification.get("status") == contracts.NotificationStatus.FAILED.value:
            problems.append(f"email FAILED: {notification.get('error')}: {notification.get('cause')}")
        elif notification:
            seen.append(f"email {notification.get('status')} (by {notification.get('by')})")
        else:
            notes.append(
                f"no email state recorded {self.notification_wait_s:.0f} s after the end (the reconciler records it "
                "when EventBridge delivers the execution's end)"
            )
        if problems:
            return FAIL, "; ".join(problems + seen), "the cause names the step; docs/deploy.md lists the common ones"
        if notes:
            return WARN, "; ".join(seen + notes), "check the stage's EventBridge rule and the reconcile Lambda's logs"
        return OK, "; ".join(seen), ""

    # ---------------------------------------------------------------- what only AWS can tell

    def _check_responses(self, found: Findings, bucket: str, cases: list[Case], spec: ModelSpec) -> None:
        """Output.S3Uri, judged on what exists: an object the integration wrote that is still
        there is read and described; one Finalize deleted with a SUCCEEDED image's scratch was
        read and parsed by the workflow (the image could not have succeeded otherwise)."""
        steps = registry.adapter_for(spec).steps
        written: dict[str, list[tuple[Case, str]]] = {}
        for case in cases:
            image_id = case.image.get("imageId")
            if not case.job_id or case.expect_error or not image_id:
                continue
            if case.name == "scene":
                scene_step = registry.adapter_for(registry.get_model(registry.default_scene_model_key())).steps[0]
                written.setdefault(scene_step, []).append((case, contracts.scene_response_key(case.job_id)))
            for step in steps if case.background == "prompt" else steps[:1]:
                written.setdefault(step, []).append((case, contracts.response_key(case.job_id, image_id, step)))
        s3 = self.client("s3")
        for step, objects in written.items():
            name = f"verified: Output.S3Uri {step}"
            unreadable: list[str] = []
            for case, key in objects:
                try:
                    raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                except ClientError as exc:
                    # gone (NoSuchKey), or 403 for a caller without s3:ListBucket on a missing key
                    # (docs/aws-notes.md#n81-what-the-workflow-smoke-can-read-after-a-job): look further
                    if error_code(exc) not in _GONE:
                        unreadable.append(f"{key}: {error_code(exc)}")
                    continue
                verdict, description = describe_response_object(raw)
                found.add(name, verdict, f"{description}, read from the {case.name} job's s3://{bucket}/{key}")
                break
            else:
                parsed = [case.name for case, _ in objects if case.image.get("status") == "SUCCEEDED"]
                if parsed:
                    found.add(
                        name,
                        OK,
                        f"read and parsed by the workflow for the {', '.join(parsed)} job(s) (their image "
                        "SUCCEEDED); Finalize then deleted it with the image's scratch, as designed",
                    )
                else:
                    causes = "; ".join(f"{c.name}: {c.image.get('errorCode')}" for c, _ in objects)
                    found.add(
                        name,
                        WARN,
                        f"not verified: no {step} call answered ({causes})"
                        + (f"; could not read {', '.join(unreadable)}" if unreadable else ""),
                    )

    def _check_profile_ids(self, found: Findings, cases: list[Case], spec: ModelSpec) -> None:
        profile_ids = [m for m in spec.model_ids.values() if is_profile(m)]
        prompt = next((c for c in cases if c.name == "prompt" and c.job_id), None)
        if not profile_ids or prompt is None:
            return
        image = prompt.image
        if image.get("status") == "SUCCEEDED":
            found.add(
                "verified: profile id as ModelId", OK, f"the optimized integration accepted {', '.join(profile_ids)}"
            )
        elif "model identifier" in str(image.get("cause", "")).lower():
            found.add(
                "verified: profile id as ModelId",
                FAIL,
                f"rejected: {image.get('cause')}",
                "set BACKDROP_MODEL_IDS to the inference-profile ARNs instead of ids",
            )

    # ---------------------------------------------------------------- clean up

    def _clean_up(
        self, found: Findings, api: Any, cases: list[Case], deployment: Deployment, owner: str, user: str
    ) -> None:
        """DELETE every job the smoke made (its originals too), then what is left of the temporary
        user's uploads (the background photo is no job's original); --keep leaves them all."""
        from frontend.api_client import ApiError

        ran = [c for c in cases if c.job_id]
        if not ran:
            return
        if self.keep:
            found.add(
                "workflow cleanup",
                WARN,
                f"kept (--keep): jobs {', '.join(c.job_id for c in ran)} of {user}, under "
                f"s3://{deployment.bucket}/{contracts.RESULTS_PREFIX}{owner}/ and {contracts.REPORTS_PREFIX}{owner}/; "
                "the user is deleted, so they expire with the stage's retention",
            )
            return
        failed: list[str] = []
        deleted = 0
        for case in ran:
            try:
                if not case.finished:
                    api.cancel(case.job_id)
                answer = api.delete(case.job_id, originals=True)
                deleted += 1 if answer.get("deleted") or answer.get("deleting") else 0
            except ApiError as exc:
                failed.append(f"{case.job_id}: {exc.code}: {exc.message}")
        s3 = self.client("s3")
        left = 0
        try:
            prefix = contracts.upload_prefix(owner) if owner else ""
            keys = (
                [o["Key"] for o in s3.list_objects_v2(Bucket=deployment.bucket, Prefix=prefix).get("Contents", [])]
                if prefix
                else []
            )
            if keys:
                s3.delete_objects(
                    Bucket=deployment.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
                )
            left = len(keys)
        except ClientError as exc:
            failed.append(f"the uploads under {contracts.UPLOADS_PREFIX}{owner}/: {error_code(exc)}")
        if failed:
            found.add(
                "workflow cleanup",
                WARN,
                f"{deleted} of {len(ran)} job(s) deleted; not deleted: {'; '.join(failed)}",
                "they expire with the stage's retention (docs/deploy.md, Settings)",
            )
        else:
            found.add(
                "workflow cleanup",
                OK,
                f"{deleted} job(s) deleted (DELETE /jobs/{{id}} with originals), {left} leftover upload(s) removed, "
                "the temporary user deleted",
            )

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
                "the retry rules in statemachine/backdrop.asl.json and chalicelib/core/errors.py name errors "
                "'Bedrock.<Exception>': change them to the names seen here",
            )

    def _wait_execution(self, sfn: Any, execution: str) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while True:
            described = dict(sfn.describe_execution(executionArn=execution))
            if described["status"] != "RUNNING" or time.monotonic() > deadline:
                return described
            self.sleep(2)
