"""Backdrop's Chalice app: routes, the stream handler, the label handler and the workflow Lambdas.

Every handler parses, authorizes and delegates to chalicelib/; nothing else lives here.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalice import Chalice, CognitoUserPoolAuthorizer, CORSConfig, Rate, Response
from chalice.app import Request

from chalicelib.api import coldstart, idempotency
from chalicelib.api.auth import email_from_request, owner_from_request
from chalicelib.api.http_errors import INTERNAL_MESSAGE, reshape_chalice_error
from chalicelib.core import config, contracts, eta, query_params
from chalicelib.core.errors import BackdropError, error_body
from chalicelib.core.functions import BACKGROUND_WORKER
from chalicelib.core.validation import request_json, require_list
from chalicelib.store import clients as aws

# Cold start (issue #28.3, docs/performance.md): every chalicelib module that pulls in boto3, the
# delivery or workflow code is imported by the handler that uses it, when it first runs; what is
# left above is what every request needs (tests/unit/test_cold_start.py keeps it so).
if TYPE_CHECKING:
    from chalicelib.delivery import archive, webhooks
    from chalicelib.delivery.report import Reporter
    from chalicelib.delivery.variants import VariantService
    from chalicelib.jobs.control import JobControl
    from chalicelib.jobs.labels import LabelService
    from chalicelib.jobs.review import ReviewService
    from chalicelib.jobs.service import JobService
    from chalicelib.models.lifecycle import LifecycleChecker
    from chalicelib.store.background import BackgroundTask, Handoff
    from chalicelib.store.jobs import JobStore
    from chalicelib.workflow.background import Background
    from chalicelib.workflow.reconciler import Reconciler
    from chalicelib.workflow.starter import WorkflowStarter
    from chalicelib.workflow.steps import Steps  # Pillow and numpy: never at the API's cold start

app = Chalice(app_name="backdrop")
app.log.setLevel(logging.INFO)

# The deploy points the authorizer at the stack's user pool (docs/aws-notes.md#n20-chalice-settings-only-the-deploy-can-fill).
authorizer = CognitoUserPoolAuthorizer(
    "BackdropUsers",
    provider_arns=[
        os.environ.get("USER_POOL_ARN", "arn:aws:cognito-idp:us-east-1:000000000000:userpool/us-east-1_placeholder")
    ],
)
_cors_origin = os.environ.get("CORS_ALLOW_ORIGIN")
cors = (
    CORSConfig(allow_origin=_cors_origin, allow_headers=["Authorization", "Content-Type", idempotency.HEADER])
    if _cors_origin
    else False
)


def _json_response(body: Any, status: int = 200) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def api(handler: Callable[..., Any]) -> Callable[..., Any]:
    """One error path: BackdropError → its status and {code, message, details}; anything else → 500."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except BackdropError as exc:
            return _json_response(exc.to_dict(), exc.http_status)
        except Exception:
            from chalicelib.workflow import observability

            observability.logger.exception("unhandled error", route=handler.__name__)
            return _json_response(error_body(contracts.ErrorCode.INTERNAL_ERROR, INTERNAL_MESSAGE), 500)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _request() -> Request:
    request = app.current_request
    if request is None:  # Chalice sets it for the duration of a route only
        raise RuntimeError("no current request outside a route")
    return request


def _query() -> Mapping[str, str]:
    return _request().query_params or {}


@app.middleware("http")
def one_error_shape(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Errors Chalice answers itself (405, 415, its own 500) get Backdrop's {code, message, details}.
    The environment's first request runs without the cyclic GC (chalicelib/api/coldstart.py)."""
    with coldstart.first_request_without_gc():
        response = get_response(event)
    shaped = reshape_chalice_error(response.status_code, response.body)
    if shaped is not None:
        response.body = shaped
        response.headers["Content-Type"] = "application/json"
    return response


def _body() -> Any:
    return request_json(_request())  # strict: size, UTF-8, depth, lone surrogates → 400


def _owner() -> str:
    return owner_from_request(_request())


def _store() -> JobStore:
    from chalicelib.store.jobs import JobStore

    return JobStore(aws.table(config.settings().table_name))


def _label_service() -> LabelService:
    from chalicelib.jobs.labels import LabelService

    # the clients are made on first use: a route that never detects labels never builds Rekognition's
    return LabelService(aws.lazy("rekognition"), _store(), aws.lazy("s3"), config.settings().bucket_name)


def _job_service() -> JobService:
    from chalicelib.jobs.service import JobService

    # S3 on first use: a poller's GET /jobs/{id}?limit=0 reads the table alone
    return JobService(_store(), aws.lazy("s3"), config.settings().bucket_name, _label_service())


def _webhook_trigger() -> webhooks.LambdaWebhookTrigger | None:
    """Starts the webhook sender function where no workflow step is left to run it (a cancel, a
    job the reconciler closed); None where the stage does not name it."""
    from chalicelib.delivery import webhooks

    name = config.settings().webhook_function_name
    return webhooks.LambdaWebhookTrigger(aws.client("lambda"), name) if name else None


def _job_control() -> JobControl:
    from chalicelib.jobs.control import JobControl

    settings = config.settings()
    trigger = _webhook_trigger()
    return JobControl(
        _store(),
        aws.client("s3"),
        aws.client("stepfunctions"),
        settings.bucket_name,
        settings.state_machine_arn,
        webhook_trigger=trigger,
        start_background=_start_background_work,
    )


def _invoke_background_worker(event: dict[str, Any]) -> None:
    """Start the background worker on a task's event without waiting (an asynchronous Lambda
    invoke; chalicelib/workflow/background.py)."""
    name = os.environ.get("BACKGROUND_FUNCTION_NAME")
    if not name:
        raise RuntimeError("BACKGROUND_FUNCTION_NAME is not set")
    aws.client("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode())


# The one transport of background work: the local stack, the tests and the bench put their own
# here. No annotation: docs/aws-notes.md#n29-chalice-policy-analyzer-and-annotations
start_background = _invoke_background_worker


def _background() -> Background:
    from chalicelib.workflow.background import Background

    # the transport is looked up at each start: the local stack and the tests put their own here
    return Background(
        _store(), lambda event: start_background(event), aws.client("s3"), webhook_trigger=_webhook_trigger()
    )


def _start_background_work(task: BackgroundTask) -> Handoff:
    """Note, claim and start a piece of background work (every caller's one way in)."""
    return _background().start(task)


# ---- Routes ----------------------------------------------------------------------------------


@app.route("/health", methods=["GET"], cors=cors)
def health() -> dict[str, Any]:
    # the team's web app (BACKDROP_APP_URL, set by the deploy), so the CLI can link to a job's page
    return {"status": "ok", "appUrl": os.environ.get("BACKDROP_APP_URL") or None}


@app.route("/openapi.json", methods=["GET"], cors=cors)
@api
def openapi_document() -> dict[str, Any]:
    from chalicelib.api import openapi  # built on the first request for it, not at cold start

    return openapi.document(app.routes)


_lifecycles: LifecycleChecker | None = None


def _lifecycle_checker() -> LifecycleChecker:
    global _lifecycles
    if _lifecycles is None:  # cached across invocations of a warm Lambda
        from chalicelib.models.lifecycle import LifecycleChecker

        _lifecycles = LifecycleChecker(aws.client("bedrock"))
    return _lifecycles


def _selectable_model(key: str) -> Any:
    """A model a new job may use: not retired, and callable from this deployment's Region."""
    from chalicelib.models import registry

    spec = registry.get_model(key)
    return registry.get_usable_model(key, _lifecycle_checker().lifecycle(spec)[0])


@app.route("/models", methods=["GET"], authorizer=authorizer, cors=cors)
@api
def list_models() -> dict[str, Any]:
    from chalicelib.models import registry

    _owner()
    models = []
    for spec in registry.all_models():
        lifecycle, source = _lifecycle_checker().lifecycle(spec)
        view = spec.public()
        view["lifecycle"] = {
            "status": lifecycle.status.value,
            "legacyDate": lifecycle.legacy_date,
            "eolDate": lifecycle.eol_date,
            "source": lifecycle.source,
            "checkedWith": source,
        }
        refusal = registry.region_refusal(spec)
        view["unavailableHere"] = refusal  # None, or why this deployment's Region cannot call it
        models.append({**view, "selectable": registry.is_selectable(spec, lifecycle) and refusal is None})
    return {
        "models": models,
        "default": registry.default_model_key(),
        "region": registry.deployment_region(),
        "imagesInFlight": eta.map_concurrency(),  # the pace a client's ETA is planned from (chalicelib/core/eta.py)
    }


@app.route("/presets", methods=["GET"], authorizer=authorizer, cors=cors)
@api
def list_presets() -> dict[str, Any]:
    from chalicelib.catalogue import presets

    _owner()
    return {"presets": presets.public()}


@app.route("/uploads", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def create_uploads() -> Response:
    from chalicelib.jobs.uploads import UploadService

    owner = _owner()
    service = UploadService(aws.client("s3"), config.settings().bucket_name)
    return _json_response(service.create(owner, _body()), 201)


@app.route("/labels", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def detect_labels_route() -> dict[str, Any]:
    owner = _owner()
    refs = require_list(_body(), "imageRefs", 1, contracts.MAX_LABEL_REFS_PER_REQUEST)
    return _label_service().labels_for_refs(owner, refs)


@app.route("/jobs", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def submit_job() -> Response:
    from chalicelib.jobs.service import parse_notify

    owner = _owner()
    body = _body()
    notify = parse_notify(body)
    email = email_from_request(app.current_request)
    # a plain partial, not a nested def: chalice's policy analyzer cannot follow one
    submit = functools.partial(_job_service().submit_request, owner, body, _selectable_model, notify, email)
    key = _request().headers.get(idempotency.HEADER)  # Chalice's headers ignore case
    if key is None:
        return _json_response(submit(), 202)
    outcome = idempotency.once(
        aws.client("dynamodb"), config.settings().table_name, owner, key, body, submit, app.lambda_context
    )
    response = _json_response(outcome.answer, 202)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@app.route("/jobs", methods=["GET"], authorizer=authorizer, cors=cors)
@api
def list_jobs() -> dict[str, Any]:
    owner = _owner()
    params = _query()
    limit = query_params.whole_number(params, "limit", low=1, high=contracts.MAX_JOBS_PAGE_SIZE, default=20)
    return _job_service().list_jobs(owner, limit, params.get("cursor"))


@app.route("/jobs/{job_id}", methods=["GET"], authorizer=authorizer, cors=cors)
@api
def get_job(job_id: str) -> dict[str, Any]:
    from chalicelib.jobs.service import parse_images_query

    owner = _owner()
    query = parse_images_query(_query())
    return _job_service().job_view(owner, job_id, query)


@app.route("/jobs/{job_id}", methods=["DELETE"], authorizer=authorizer, cors=cors)
@api
def delete_job(job_id: str) -> Response:
    owner = _owner()
    originals = query_params.one_of(_query(), "originals", ("true", "false"), "false")
    answer = _job_control().delete(owner, job_id, originals=originals == "true")
    return _json_response(answer, 202 if answer["deleting"] else 200)  # 202: still deleting in the background


@app.route("/jobs/{job_id}/cancel", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def cancel_job(job_id: str) -> Response:
    answer = _job_control().cancel(_owner(), job_id)
    return _json_response(answer, 202 if answer["closing"] else 200)  # 202: still closing in the background


@app.route("/webhooks/secret", methods=["GET"], authorizer=authorizer, cors=cors)
@api
def get_webhook_secret() -> dict[str, Any]:
    from chalicelib.delivery import webhooks

    owner = _owner()
    store = _store()
    return store.webhook_secret(owner) or store.put_webhook_secret(owner, webhooks.new_secret(), replace=False)


@app.route("/webhooks/secret/rotate", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def rotate_webhook_secret() -> dict[str, Any]:
    from chalicelib.delivery import webhooks

    return _store().put_webhook_secret(_owner(), webhooks.new_secret(), replace=True)


@app.route("/jobs/{job_id}/report", methods=["GET"], authorizer=authorizer, cors=cors)
@api
def get_report(job_id: str) -> dict[str, Any]:
    owner = _owner()
    fmt = query_params.one_of(_query(), "format", ("json", "csv"), "json")
    return _job_service().report_url(owner, job_id, str(fmt))


@app.route("/jobs/{job_id}/retry", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def retry_job(job_id: str) -> Response:
    return _json_response(_job_service().retry_failed(_owner(), job_id, model_lookup=_selectable_model), 202)


def _variants() -> VariantService:
    from chalicelib.delivery.variants import VariantService

    return VariantService(
        _store(), aws.client("s3"), config.settings().bucket_name, start_rewrite=_start_background_work
    )


@app.route("/jobs/{job_id}/images/{image_id}/pick", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def pick_variant(job_id: str, image_id: str) -> dict[str, Any]:
    return _variants().pick(_owner(), job_id, image_id, _body())


@app.route("/jobs/{job_id}/images/{image_id}/regenerate", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def regenerate_image(job_id: str, image_id: str) -> Response:
    answer = _job_service().regenerate(_owner(), job_id, image_id, _body(), model_lookup=_selectable_model)
    return _json_response(answer, 202)


def _archives() -> archive.ArchiveService:
    from chalicelib.delivery import archive

    return archive.ArchiveService(aws.client("s3"), config.settings().bucket_name, _store())


@app.route("/jobs/{job_id}/archive", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def request_archive(job_id: str) -> Response:
    from chalicelib.delivery import archive

    owner = _owner()
    originals, report_too = archive.parse_archive_body(_body())
    answer = _archives().request(archive.ArchiveRequest(owner, job_id, originals, report_too), _start_background_work)
    return _json_response(answer, 200 if answer["state"] == archive.ArchiveState.READY else 202)


@app.route("/jobs/{job_id}/archive", methods=["GET"], authorizer=authorizer, cors=cors)
@api
def get_archive(job_id: str) -> dict[str, Any]:
    from chalicelib.delivery import archive

    owner = _owner()
    originals, report_too = archive.parse_archive_options(_query())
    return _archives().status(archive.ArchiveRequest(owner, job_id, originals, report_too))


def _reviews() -> ReviewService:
    from chalicelib.jobs.review import ReviewService

    return ReviewService(_store(), aws.client("stepfunctions"))


@app.route("/jobs/{job_id}/review", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def review_images(job_id: str) -> dict[str, Any]:
    owner = _owner()
    return _reviews().decide(owner, job_id, _body())


@app.route("/jobs/{job_id}/review/approve", methods=["POST"], authorizer=authorizer, cors=cors)
@api
def approve_review(job_id: str) -> dict[str, Any]:
    return _reviews().approve(_owner(), job_id)


# ---- Event handlers and workflow Lambdas ---------------------------------------------------


def _observability() -> Any:
    from chalicelib.workflow import observability  # aws_lambda_powertools: not at the API's cold start

    return observability


def _workflow_step(step: str, record: Callable[[Any, Any], None] | None = None) -> Callable[..., Any]:
    """observability.workflow_step, built on the handler's first call rather than at import."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        wrapped: list[Callable[..., Any]] = []

        @functools.wraps(handler)
        def run(event: dict[str, Any], context: Any) -> Any:
            if not wrapped:
                wrapped.append(_observability().workflow_step(step, record=record)(handler))
            return wrapped[0](event, context)

        return run

    return decorate


def _steps() -> Steps:
    from chalicelib.workflow.steps import Steps

    return Steps(
        aws.client("s3"),
        _store(),
        aws.client("rekognition"),
        start_report_rewrite=_start_background_work,
        kms=lambda: aws.client("kms"),  # the results' Content Credentials signer, when the deploy made its key
    )


def _reporter() -> Reporter:
    from chalicelib.delivery.report import Reporter

    return Reporter(aws.client("s3"), _store())


# The stream ARN is only known after the resources stack exists: the deploy tooling overrides
# this event source with the table's StreamArn (docs/aws-notes.md#n20-chalice-settings-only-the-deploy-can-fill).
@app.on_dynamodb_record(
    stream_arn=os.environ.get(
        "JOBS_STREAM_ARN", "arn:aws:dynamodb:us-east-1:000000000000:table/backdrop-jobs/stream/1970-01-01T00:00:00.000"
    ),
    batch_size=10,
    starting_position="TRIM_HORIZON",
    name="start_workflow",
)
def start_workflow(event: Any) -> None:
    _starter().handle_records(event.to_dict().get("Records", []))


def _start_claimed_closing(job_id: str, owner: str, bucket: str) -> None:
    from chalicelib.core.contracts import BackgroundWork
    from chalicelib.store.background import BackgroundTask

    start_background(BackgroundTask(BackgroundWork.CLOSE_CANCELLED, job_id, owner, bucket).to_event())


def _starter() -> WorkflowStarter:
    """The one way a job is started: the stream's starter, and the sweep for a job left SUBMITTED."""
    from chalicelib.workflow.starter import WorkflowStarter

    settings = config.settings()
    return WorkflowStarter(
        aws.client("s3"),
        _store(),
        aws.client("stepfunctions"),
        settings.bucket_name,
        settings.state_machine_arn,
        # a job cancelled before its images were written: its closing, already claimed by the
        # cancel, started on the background worker
        start_closing=_start_claimed_closing,
    )


# S3 → EventBridge, because CloudFormation cannot add notifications to an existing bucket
# (docs/aws-notes.md#n20-chalice-settings-only-the-deploy-can-fill): labels are detected on upload, cached for POST /labels.
def _upload_events() -> dict[str, Any]:
    # No annotated assignment here: docs/aws-notes.md#n29-chalice-policy-analyzer-and-annotations
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"]}
    bucket = os.environ.get("BUCKET_NAME")  # set by the deploy: only this bucket's uploads reach the handler
    if not bucket:
        return dict(pattern)
    return {
        **pattern,
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": contracts.UPLOADS_PREFIX}]}},
    }


@app.on_cw_event(_upload_events(), name="detect_labels")
def detect_labels(event: Any) -> None:
    detail = event.detail or {}
    key = (detail.get("object") or {}).get("key", "")
    bucket = (detail.get("bucket") or {}).get("name", "")
    settings = config.settings()
    if bucket != settings.bucket_name or not contracts.UPLOAD_KEY_RE.match(key):
        return
    _label_service().detect_and_cache(key)


@app.lambda_function(name="prepare")
@_workflow_step("prepare")
def prepare(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _steps().prepare(event)


@app.lambda_function(name="prepare_scene")
@_workflow_step("prepare_scene")
def prepare_scene(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _steps().prepare_scene(event)


@app.lambda_function(name="finish_scene")
@_workflow_step("finish_scene")
def finish_scene(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _steps().finish_scene(event)


@app.lambda_function(name="build_mask")
@_workflow_step("build_mask")
def build_mask(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _steps().build_mask(event)


@app.lambda_function(name="finalize")
@_workflow_step(
    "finalize", record=lambda event, result: _observability().record_success(aws.client("s3"), event, result)
)
def finalize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _steps().finalize(event)


@app.lambda_function(name="record_failure")
@_workflow_step("record_failure", record=lambda event, result: _observability().record_failure(event, result))
def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _steps().record_failure(event)


@app.lambda_function(name="report")
@_workflow_step("report")
def report(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _reporter().build(event)


@app.lambda_function(name=BACKGROUND_WORKER)
@_workflow_step(BACKGROUND_WORKER)
def background_work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One piece of background work (a large job's closing, deletion, report rewrite or archive),
    dispatched by its kind; a deletion that runs short of time starts the next run itself (if that
    start fails, the error makes Lambda retry this event, and the sweep remains)."""
    time_left = (lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None
    return _background().run(event, time_left)


@app.lambda_function(name="await_review")
@_workflow_step("await_review")
def await_review(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _reviews().open(event)


@app.lambda_function(name="record_notification_failure")
@_workflow_step("record_notification_failure")
def record_notification_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _reporter().record_notification_failure(event)


# ---- The reconciler: every execution that ends leaves its job finished, reported and emailed -------

_EXECUTION_DETAIL = {"status": list(contracts.EXECUTION_ENDED_STATUSES)}
if os.environ.get("STATE_MACHINE_ARN"):  # set by the deploy: only this stage's executions
    _EXECUTION_DETAIL["stateMachineArn"] = [os.environ["STATE_MACHINE_ARN"]]
_EXECUTION_ENDS = {
    "source": ["aws.states"],
    "detail-type": [contracts.EXECUTION_STATUS_CHANGE],
    "detail": _EXECUTION_DETAIL,
}
# EventBridge delivers Step Functions events on a best-effort basis
# (docs/aws-notes.md#n39-step-functions-execution-status-events): the sweep catches any lost one,
# looking back further than it runs so consecutive sweeps overlap.
SWEEP_EVERY_MINUTES = 30
SWEEP_LOOK_BACK = timedelta(hours=3)


def _reconciler() -> Reconciler:
    from chalicelib.delivery.notify import Notifier
    from chalicelib.workflow.reconciler import Reconciler

    store = _store()
    notifier = Notifier(aws.client("sns"), store, config.user_topic_arn_prefix())
    return Reconciler(store, _reporter(), notifier, aws.client("stepfunctions"), webhook_trigger=_webhook_trigger())


@app.on_cw_event(_EXECUTION_ENDS, name="reconcile")
def reconcile(event: Any) -> dict[str, Any] | None:
    return _reconciler().handle_event(event.to_dict())


@app.schedule(Rate(SWEEP_EVERY_MINUTES, unit=Rate.MINUTES), name="reconcile_sweep")
def reconcile_sweep(event: Any) -> dict[str, Any]:
    since = datetime.now(UTC) - SWEEP_LOOK_BACK
    reconciler = _reconciler()
    reconciled = reconciler.sweep(config.settings().state_machine_arn, since)
    context = getattr(event, "context", None)  # the Lambda context (None in a direct call)
    time_left = (lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None
    # background work (a large job's closing, deletion, report rewrite) that never ran or stopped
    # half-way, and jobs whose start never came (the starter's own entry point starts them)
    background = reconciler.sweep_background(_background(), time_left, start_job=lambda job: _starter().start(job))
    return {"reconciled": reconciled, "background": background}


def _webhook_sender() -> webhooks.WebhookSender:
    from chalicelib.delivery import webhooks

    return webhooks.WebhookSender(_store())


@app.lambda_function(name="send_webhook")
@_workflow_step("send_webhook")
def send_webhook(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The job's completion webhook (after the workflow's report, or after a cancel); its
    outcome is recorded on the job and never fails it."""
    attempts = event.get("attempts")  # an asynchronous invoke's own budget (a cancel), else the workflow's
    return _webhook_sender().deliver(str(event["jobId"]), int(attempts) if attempts else None)
