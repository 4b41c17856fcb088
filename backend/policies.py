"""Hand-written, least-privilege IAM policies for each Chalice Lambda (autogen_policy: false).

Each function may touch only its own S3 prefixes, the jobs table (and its index or stream where
it needs them), the state machine it starts and the models it asks about: what it may touch is
declared next to the function in chalicelib/core/functions.py; this module turns that into policy
documents. The only "*" resources are for actions that have no resource-level permissions
(Rekognition DetectLabels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backend.regions import ModelRoutes, foundation_model_arn, invoke_arns, partition_for_region
from backend.resource_names import lambda_function, user_topic_arn_prefix
from chalicelib.core import contracts
from chalicelib.core.functions import (
    BACKGROUND_WORKER,
    FUNCTIONS,
    WEBHOOK_SENDER,
    Grant,
    LambdaFunction,
)
from chalicelib.models.base import ModelSpec


def state_machine_arn(region: str, account: str, stage: str, partition: str | None = None) -> str:
    """Derived from its name, so the app can be deployed before the workflow stack exists."""
    partition = partition or partition_for_region(region)
    return f"arn:{partition}:states:{region}:{account}:stateMachine:backdrop-{stage}-workflow"


def execution_arns(region: str, account: str, stage: str, partition: str | None = None) -> str:
    """Every execution of this stage's state machine."""
    partition = partition or partition_for_region(region)
    return f"arn:{partition}:states:{region}:{account}:execution:backdrop-{stage}-workflow:*"


def model_resource_arns(spec: ModelSpec, region: str, account: str, partition: str | None = None) -> list[str]:
    """What bedrock:InvokeModel must allow for a model as models.json records it (the deploy asks
    Bedrock instead, backend.regions): for a cross-Region inference profile, the profile itself
    and the foundation model in every Region the profile may route to."""
    routes = ModelRoutes(None, region, account, partition or partition_for_region(region)).for_models([spec])
    return invoke_arns(routes)


def _statement(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}


def lambda_policies(
    outputs: dict[str, str],
    stage: str,
    region: str,
    account: str,
    models: list[ModelSpec],
    partition: str | None = None,
    functions: Sequence[LambdaFunction] = FUNCTIONS,
) -> dict[str, dict[str, Any]]:
    """One policy document per declared function (`functions`: the declaration, or a mutant of it
    for backend/local/iam_mutations.py)."""
    partition = partition or partition_for_region(region)
    bucket = f"arn:{partition}:s3:::{outputs['BucketName']}"
    table = outputs["TableArn"]

    def logs(function: str) -> dict[str, Any]:
        """Its own log group only (chalice names the API handler's without a suffix)."""
        group = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{lambda_function(stage, function)}"
        return _statement(
            "OwnLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], [group, f"{group}:*"]
        )

    # GET /models reports every registered model's lifecycle, retired ones too (that is how it says
    # "end of life"): reading a retired model's lifecycle grants nothing that could be billed
    from chalicelib.models import registry

    lifecycle_models = [*models, *registry.all_models()]
    foundation_models = sorted(
        {
            foundation_model_arn(partition, region, base)
            for spec in lifecycle_models
            for base in spec.base_model_ids.values()
        }
    )
    grants: dict[Grant, dict[str, Any]] = {
        Grant.LIST_UPLOADS: {
            "Sid": "ListOwnUploads",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket],
            "Condition": {"StringLike": {"s3:prefix": [f"{contracts.UPLOADS_PREFIX}*"]}},
        },
        Grant.LIST_SCRATCH: {
            "Sid": "ListScratch",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket],
            "Condition": {"StringLike": {"s3:prefix": [f"{contracts.SCRATCH_PREFIX}*"]}},
        },
        Grant.DETECT_LABELS: _statement("Labels", ["rekognition:DetectLabels"], ["*"]),  # no resource-level permissions
        Grant.DETECT_TEXT: _statement("Text", ["rekognition:DetectText"], ["*"]),
        Grant.READ_MODEL_LIFECYCLE: _statement("ModelLifecycle", ["bedrock:GetFoundationModel"], foundation_models),
        Grant.READ_JOBS_STREAM: _statement(
            "JobsStream",
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
            [outputs["StreamArn"]],
        ),
        Grant.STREAM_FAILURES: _statement("StreamFailures", ["sqs:SendMessage"], [outputs["StreamFailureQueueArn"]]),
        # a stack from before the queue has none: a name no queue has, until its update makes it
        Grant.BACKGROUND_FAILURES: _statement(
            "BackgroundFailures",
            ["sqs:SendMessage"],
            [outputs.get("BackgroundFailureQueueArn") or f"arn:{partition}:sqs:{region}:{account}:none"],
        ),
        # the stage's own key only (a stack from before it has none: nothing to grant)
        Grant.SIGN_CREDENTIALS: _statement(
            "SignCredentials",
            ["kms:Sign", "kms:GetPublicKey"],
            [outputs.get("CredentialsKeyArn") or f"arn:{partition}:kms:{region}:{account}:key/none"],
        ),
        Grant.START_WORKFLOW: _statement(
            "StartWorkflow", ["states:StartExecution"], [state_machine_arn(region, account, stage, partition)]
        ),
        Grant.READ_EXECUTIONS: _statement(
            "ReadWorkflowExecutions",
            ["states:DescribeExecution", "states:GetExecutionHistory"],
            [execution_arns(region, account, stage, partition)],
        ),
        Grant.LIST_EXECUTIONS: _statement(
            "ListWorkflowExecutions", ["states:ListExecutions"], [state_machine_arn(region, account, stage, partition)]
        ),
        # every user's own job-email topic of this stage (backend/user_topics.py); the prefix ends in
        # "_user-", which no stage name contains, so no other stage's topic and no alarm topic matches
        Grant.PUBLISH_JOB_EMAIL: _statement(
            "JobEmail", ["sns:Publish"], [f"{user_topic_arn_prefix(stage, region, account, partition)}*"]
        ),
        Grant.STOP_WORKFLOW: _statement(
            "StopWorkflow",
            ["states:StopExecution"],
            [execution_arns(region, account, stage, partition)],
        ),
        Grant.LIST_JOB_FILES: {
            "Sid": "ListJobFiles",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket],
            "Condition": {
                "StringLike": {
                    "s3:prefix": [
                        f"{p}*" for p in (contracts.RESULTS_PREFIX, contracts.REPORTS_PREFIX, contracts.SCRATCH_PREFIX)
                    ]
                }
            },
        },
        Grant.START_BACKGROUND: _statement(
            "StartBackgroundWork",
            ["lambda:InvokeFunction"],
            [f"arn:{partition}:lambda:{region}:{account}:function:{lambda_function(stage, BACKGROUND_WORKER)}"],
        ),
        # the owner's approval ends the workflow's wait for review (docs/aws-notes.md#n58-step-functions-task-tokens)
        Grant.SEND_TASK_RESULT: _statement(
            "SendReviewResult", ["states:SendTaskSuccess"], [state_machine_arn(region, account, stage, partition)]
        ),
        Grant.ABORT_ARCHIVE_UPLOAD: _statement(
            "AbortArchiveUpload", ["s3:AbortMultipartUpload"], [f"{bucket}/{contracts.RESULTS_PREFIX}*"]
        ),
        Grant.START_WEBHOOK: _statement(
            "StartWebhook",
            ["lambda:InvokeFunction"],
            [f"arn:{partition}:lambda:{region}:{account}:function:{lambda_function(stage, WEBHOOK_SENDER)}"],
        ),
    }

    def statements(function: LambdaFunction) -> list[dict[str, Any]]:
        out = [logs(function.name)]
        if function.s3_read:
            out.append(_statement("ReadObjects", ["s3:GetObject"], [f"{bucket}/{p}*" for p in function.s3_read]))
        if function.s3_write:
            out.append(_statement("WriteObjects", ["s3:PutObject"], [f"{bucket}/{p}*" for p in function.s3_write]))
        if function.s3_delete:
            out.append(_statement("DeleteObjects", ["s3:DeleteObject"], [f"{bucket}/{p}*" for p in function.s3_delete]))
        if function.table_actions:
            index = [f"{table}/index/*"] if Grant.OWNER_INDEX in function.grants else []
            out.append(_statement("JobsTable", [f"dynamodb:{a}" for a in function.table_actions], [table, *index]))
        out += [grants[g] for g in sorted(function.grants) if g is not Grant.OWNER_INDEX]  # that one widens JobsTable
        return out

    return {f.name: {"Version": "2012-10-17", "Statement": statements(f)} for f in functions}
