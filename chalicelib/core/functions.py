"""Backdrop's Lambda functions, declared once.

Each entry is a function as Chalice names it (app.py registers a handler under that name): its
memory and timeout, whether the state machine invokes it, and what it may touch. Everything
else is derived from this tuple: the Chalice stage config (`python -m backend.chalice_config`
writes .chalice/config.json), the IAM policies (backend/policies.py), the workflow stack's
parameters and substitutions (backend/templates.py), the deploy, the local stack and the tests.

Adding a workflow Lambda is two edits: a declaration here and its handler in app.py (then
regenerate the Chalice config; a test says so if you forget).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chalicelib.core.contracts import REPORTS_PREFIX, RESULTS_PREFIX, SCRATCH_PREFIX, UPLOADS_PREFIX


class Grant(StrEnum):
    """Access beyond S3 prefixes and the jobs table's item actions (backend/policies.py)."""

    LIST_UPLOADS = "list-uploads"  # s3:ListBucket, only under the uploads prefix
    # s3:ListBucket, only under the scratch prefix: what a workflow step must tell absent from refused
    # (a GET/HEAD of a missing key is a 403 without ListBucket: chalicelib/store/s3keys.py)
    LIST_SCRATCH = "list-scratch"
    # the table actions also on its indexes (table/index/*): byOwner (the job list), byStatus and
    # byVerdict (a job's filtered pages, chalicelib/store/jobs.py images_page)
    OWNER_INDEX = "owner-index"
    DETECT_LABELS = "detect-labels"  # rekognition:DetectLabels
    DETECT_TEXT = "detect-text"  # rekognition:DetectText
    READ_MODEL_LIFECYCLE = "read-model-lifecycle"  # bedrock:GetFoundationModel on the configured models
    READ_JOBS_STREAM = "read-jobs-stream"  # the table's stream, as an event source
    START_WORKFLOW = "start-workflow"  # states:StartExecution on this stage's state machine
    READ_EXECUTIONS = "read-executions"  # states:DescribeExecution, GetExecutionHistory on its executions
    LIST_EXECUTIONS = "list-executions"  # states:ListExecutions on this stage's state machine
    PUBLISH_JOB_EMAIL = "publish-job-email"  # sns:Publish on the stage's users' own job-email topics
    STREAM_FAILURES = "stream-failures"  # sqs:SendMessage to the stream trigger's failure queue
    STOP_WORKFLOW = "stop-workflow"  # states:StopExecution on this state machine's executions (cancel)
    LIST_JOB_FILES = "list-job-files"  # s3:ListBucket under the results, reports and scratch prefixes (delete)
    START_WEBHOOK = "start-webhook"  # lambda:InvokeFunction of the webhook sender (a cancel, a reconciled job)
    ABORT_ARCHIVE_UPLOAD = "abort-archive-upload"  # s3:AbortMultipartUpload under the results prefix
    SEND_TASK_RESULT = "send-task-result"  # states:SendTaskSuccess: an owner's approval ends the review wait
    # lambda:InvokeFunction on the background worker: a large job's closing, deletion, report
    # rewrite or archive (chalicelib/workflow/background.py)
    START_BACKGROUND = "start-background"
    # sqs:SendMessage to the background failure queue: Lambda sends a task that failed every attempt
    # there with the worker's own role (its on-failure destination, backend/deploy.py)
    BACKGROUND_FAILURES = "background-failures"
    SIGN_CREDENTIALS = "sign-credentials"  # kms:Sign, kms:GetPublicKey on the stage's Content Credentials key


@dataclass(frozen=True)
class LambdaFunction:
    name: str
    memory_mb: int | None = None  # None: Chalice's default
    timeout_s: int | None = None
    workflow_task: bool = False  # invoked by the state machine through `${<Name>FunctionArn}`
    s3_read: tuple[str, ...] = ()  # key prefixes (chalicelib.core.contracts) it may GetObject
    s3_write: tuple[str, ...] = ()  # ... and PutObject
    s3_delete: tuple[str, ...] = ()  # ... and DeleteObject (DeleteObjects checks it per key)
    table_actions: tuple[str, ...] = ()  # DynamoDB actions on the jobs table
    grants: frozenset[Grant] = frozenset()

    @property
    def arn_placeholder(self) -> str:
        """The ASL / workflow-template name of its ARN: record_failure → RecordFailureFunctionArn."""
        return "".join(part.title() for part in self.name.split("_")) + "FunctionArn"


# The REST API's handler: Chalice names it, app.py's routes are its code.
API_HANDLER = "api_handler"
RECONCILER = "reconcile"
BACKGROUND_WORKER = "background_work"

FUNCTIONS: tuple[LambdaFunction, ...] = (
    LambdaFunction(
        API_HANDLER,
        # One full vCPU (docs/aws-notes.md#n44-lambda-cpu-follows-memory). POST /jobs with 10,000
        # images is ~2.3 s of CPU on one core (boto3 serializing and signing 600 batch calls,
        # validation, the Idempotency-Key hash: `python -m bench.submit`); at Chalice's default
        # 128 MB (1/14 vCPU) that alone would be ~32 s, past API Gateway's 29 s. At 1,769 MB it is
        # ~2.5 s, and a page of presigned links is quick too.
        memory_mb=1769,
        # presigned POSTs and GETs are signed with this role: it must hold what they grant; a
        # small job's archive is written by the API itself (chalicelib/delivery/archive.py), so it reads
        # what goes in and writes the zip under the results prefix
        s3_read=(UPLOADS_PREFIX, RESULTS_PREFIX, REPORTS_PREFIX),
        # a cancel writes the job's report; a small archive is written under the results prefix; a
        # delete removes the job's files (and, if asked, originals); POST /jobs writes the job's
        # image records under its scratch prefix for the starter (chalicelib/jobs/service.py submit)
        s3_write=(UPLOADS_PREFIX, RESULTS_PREFIX, REPORTS_PREFIX, SCRATCH_PREFIX),
        s3_delete=(UPLOADS_PREFIX, RESULTS_PREFIX, REPORTS_PREFIX, SCRATCH_PREFIX),
        # DeleteItem: an idempotency record whose request failed is removed (chalicelib/api/idempotency.py)
        table_actions=("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchWriteItem", "BatchGetItem"),
        # POST /jobs lists each upload batch instead of a HEAD per image
        grants=frozenset(
            {
                Grant.LIST_UPLOADS,
                Grant.OWNER_INDEX,
                Grant.DETECT_LABELS,
                Grant.READ_MODEL_LIFECYCLE,
                Grant.STOP_WORKFLOW,
                Grant.LIST_JOB_FILES,
                Grant.START_WEBHOOK,
                Grant.START_BACKGROUND,
                Grant.ABORT_ARCHIVE_UPLOAD,
                Grant.SEND_TASK_RESULT,
            }
        ),
    ),
    LambdaFunction(
        "start_workflow",
        memory_mb=512,
        timeout_s=300,
        # reads the image records POST /jobs accepted, writes the manifest (both in the job's scratch)
        s3_read=(SCRATCH_PREFIX,),
        s3_write=(SCRATCH_PREFIX,),
        # GetItem: the job as it is now; BatchWriteItem: its image items, 25 a call at the
        # partition's pace (and their removal if the job went meanwhile); Query: the manifest of a
        # job whose images were written before
        table_actions=("GetItem", "Query", "UpdateItem", "BatchWriteItem"),
        # the event source mapping sends what it gives up on to the failure queue with this role; a
        # job cancelled before its images were written has its closing started on the background
        # worker, one cancelled while it was starting has the execution just started stopped again
        grants=frozenset(
            {
                Grant.READ_JOBS_STREAM,
                Grant.START_WORKFLOW,
                Grant.STREAM_FAILURES,
                Grant.START_BACKGROUND,
                Grant.STOP_WORKFLOW,
            }
        ),
    ),
    LambdaFunction(
        "detect_labels",
        memory_mb=256,
        timeout_s=60,
        s3_read=(UPLOADS_PREFIX,),
        table_actions=("PutItem",),
        grants=frozenset({Grant.DETECT_LABELS}),
    ),
    LambdaFunction(
        "prepare",
        memory_mb=1769,  # one full vCPU for decoding and resizing
        timeout_s=120,
        workflow_task=True,
        s3_read=(UPLOADS_PREFIX, SCRATCH_PREFIX),
        s3_write=(SCRATCH_PREFIX,),
        # image transitions read the status, then update image and job counts in one transaction;
        # a budget cap reserves the image's model calls the same way
        table_actions=("GetItem", "UpdateItem"),
        # an upload deleted before its image starts is a 403 on AWS: a LIST says it is missing
        grants=frozenset({Grant.LIST_UPLOADS}),
    ),
    # a `scene` background: the batch's one text-to-image request, then its answer stored for
    # every image (or, if it failed, every image FAILED with that cause)
    LambdaFunction(
        "prepare_scene",
        memory_mb=256,
        timeout_s=30,
        workflow_task=True,
        s3_write=(SCRATCH_PREFIX,),
    ),
    LambdaFunction(
        "finish_scene",
        memory_mb=1024,
        timeout_s=60,
        workflow_task=True,
        s3_read=(SCRATCH_PREFIX,),
        s3_write=(SCRATCH_PREFIX,),
        table_actions=("GetItem", "Query", "UpdateItem"),
    ),
    LambdaFunction(
        "build_mask",
        memory_mb=1769,
        timeout_s=120,
        workflow_task=True,
        s3_read=(SCRATCH_PREFIX,),
        s3_write=(SCRATCH_PREFIX,),
    ),
    LambdaFunction(
        "finalize",
        memory_mb=1769,
        timeout_s=180,
        workflow_task=True,
        # uploads: the original, and a background photo (an `image` background); a regeneration's
        # result is copied from its own job's results to the job it regenerates (chalicelib/delivery/variants.py),
        # whose report, if written, is written again (reports: the earlier one's finish time)
        s3_read=(UPLOADS_PREFIX, SCRATCH_PREFIX, RESULTS_PREFIX, REPORTS_PREFIX),
        # the original's text, read once per image, is kept in the scratch space for re-rolls
        s3_write=(RESULTS_PREFIX, SCRATCH_PREFIX, REPORTS_PREFIX),
        s3_delete=(SCRATCH_PREFIX,),  # the image's scratch, once it has SUCCEEDED
        # Query: that report's images; PutItem: the note of its rewrite handed to the background
        table_actions=("GetItem", "UpdateItem", "Query", "PutItem"),
        # the scorecard's subject and text checks, on pixels sent as bytes (no S3 access for
        # Rekognition); a large job's report rewrite, started on the background worker; the
        # original's text, listed before it is read; each result's Content Credentials, signed with the stage's key
        grants=frozenset(
            {
                Grant.DETECT_LABELS,
                Grant.DETECT_TEXT,
                Grant.START_BACKGROUND,
                Grant.LIST_SCRATCH,
                Grant.SIGN_CREDENTIALS,
            }
        ),
    ),
    LambdaFunction(
        "record_failure",
        memory_mb=256,
        timeout_s=30,
        workflow_task=True,
        table_actions=("GetItem", "UpdateItem"),
        # the model calls that answered before the failure (the cost): their responses listed once,
        # never a HEAD each, which is a 403 for a call that never answered (no s3:GetObject either:
        # the IAM mutation run found it unused once the LIST replaced the HEADs)
        grants=frozenset({Grant.LIST_SCRATCH}),
    ),
    LambdaFunction(
        "report",
        memory_mb=1024,
        timeout_s=600,
        workflow_task=True,
        s3_write=(REPORTS_PREFIX,),
        table_actions=("Query", "UpdateItem", "GetItem"),
    ),
    # Review before delivery: keeps the workflow's task token on the job (chalicelib/jobs/review.py)
    LambdaFunction("await_review", memory_mb=256, timeout_s=30, workflow_task=True, table_actions=("UpdateItem",)),
    LambdaFunction(
        "record_notification_failure",
        memory_mb=256,
        timeout_s=30,
        workflow_task=True,
        table_actions=("UpdateItem",),
    ),
    # Every execution that ends closes its job: unfinished images, the report and the one email
    # the workflow could not write (chalicelib/workflow/reconciler.py). Sized like the report it may
    # write. It is sent EventBridge's Execution Status Change events only.
    LambdaFunction(
        RECONCILER,
        memory_mb=1024,
        timeout_s=600,
        s3_read=(REPORTS_PREFIX,),
        s3_write=(REPORTS_PREFIX,),
        table_actions=("GetItem", "Query", "UpdateItem"),
        grants=frozenset({Grant.READ_EXECUTIONS, Grant.PUBLISH_JOB_EMAIL, Grant.START_WEBHOOK}),
    ),
    # ... and the sweep for Step Functions events EventBridge did not deliver (best effort), which
    # also starts stranded background work again on the background worker (its notes: a closing, a
    # deletion, a report rewrite), and starts a job left SUBMITTED with the starter's own code
    # (chalicelib/workflow/reconciler.py): so it may do what a start does (start_workflow's
    # declaration above, less its stream): the job's image records in the scratch space read and
    # its image items written (BatchWriteItem), the manifest written, StartExecution, StopExecution
    # when the job was cancelled while it started
    LambdaFunction(
        "reconcile_sweep",
        memory_mb=1024,
        timeout_s=900,
        s3_read=(REPORTS_PREFIX, SCRATCH_PREFIX),
        s3_write=(REPORTS_PREFIX, SCRATCH_PREFIX),
        table_actions=("GetItem", "Query", "UpdateItem", "DeleteItem", "BatchWriteItem"),
        grants=frozenset(
            {
                Grant.READ_EXECUTIONS,
                Grant.LIST_EXECUTIONS,
                Grant.PUBLISH_JOB_EMAIL,
                Grant.START_WEBHOOK,
                Grant.START_BACKGROUND,
                Grant.START_WORKFLOW,
                Grant.STOP_WORKFLOW,
            }
        ),
    ),
    # The background worker (chalicelib/workflow/background.py): every piece of work that outlives a
    # request or a step, one task per invocation, dispatched by kind: a large cancelled job's
    # closing (its images' transactions, its report, its webhook started), a large job's deletion
    # (batches while it has time, then it starts itself again), its report rewritten after a pick,
    # its archive streamed into a multipart upload. Lambda's longest run (900 s) for the last two
    # kinds; what it may touch is the union of what they do.
    LambdaFunction(
        BACKGROUND_WORKER,
        memory_mb=1024,
        timeout_s=900,
        # the archive reads results, originals and reports; the closing and the rewrite write reports
        s3_read=(UPLOADS_PREFIX, RESULTS_PREFIX, REPORTS_PREFIX),
        s3_write=(RESULTS_PREFIX, REPORTS_PREFIX),
        s3_delete=(UPLOADS_PREFIX, RESULTS_PREFIX, REPORTS_PREFIX, SCRATCH_PREFIX),
        # image items 25 per BatchWriteItem; the job item gives way to its tombstone in one
        # TransactWriteItems (authorised as its DeleteItem and PutItem); notes of finished work go
        table_actions=("GetItem", "Query", "UpdateItem", "BatchWriteItem", "DeleteItem", "PutItem"),
        grants=frozenset(
            {
                Grant.LIST_JOB_FILES,
                Grant.LIST_UPLOADS,
                Grant.ABORT_ARCHIVE_UPLOAD,
                Grant.START_WEBHOOK,
                Grant.START_BACKGROUND,
                Grant.BACKGROUND_FAILURES,
            }
        ),
    ),
    # the job's completion webhook: one attempt per invocation (chalicelib/delivery/webhooks.py)
    LambdaFunction(
        "send_webhook",
        memory_mb=256,
        # one attempt per invocation (connect + answer, contracts.WEBHOOK_TIMEOUT_SECONDS each, plus
        # the job reads and writes): the waits between attempts are the caller's, never slept here
        timeout_s=30,
        workflow_task=True,
        table_actions=("GetItem", "PutItem", "UpdateItem"),
    ),
)

WEBHOOK_SENDER = "send_webhook"


WORKFLOW_FUNCTIONS: tuple[LambdaFunction, ...] = tuple(f for f in FUNCTIONS if f.workflow_task)


def function(name: str) -> LambdaFunction:
    for declared in FUNCTIONS:
        if declared.name == name:
            return declared
    raise KeyError(f"no Lambda function named {name!r} is declared in chalicelib/core/functions.py")
