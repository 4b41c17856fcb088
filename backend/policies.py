"""Hand-written, least-privilege IAM policies for each Chalice Lambda (autogen_policy: false).

Each function may touch only its own S3 prefixes, the jobs table (and its index or stream where
it needs them), the state machine it starts and the models it asks about: what it may touch is
declared next to the function in chalicelib/functions.py; this module turns that into policy
documents. The only "*" resources are for actions that have no resource-level permissions
(Rekognition DetectLabels).
"""

from __future__ import annotations

from typing import Any

from chalicelib import contracts
from chalicelib.functions import FUNCTIONS, Grant, LambdaFunction
from chalicelib.models.base import ModelSpec

GEO_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "ca.", "jp.", "au.", "global.")


def state_machine_arn(region: str, account: str, stage: str) -> str:
    """Derived from its name, so the app can be deployed before the workflow stack exists."""
    return f"arn:aws:states:{region}:{account}:stateMachine:backdrop-{stage}-workflow"


def model_resource_arns(spec: ModelSpec, region: str, account: str) -> list[str]:
    """What bedrock:InvokeModel must allow for a model: for a cross-region inference profile,
    the profile itself and the foundation model in every region the profile may route to."""
    arns: list[str] = []
    for call, model_id in spec.model_ids.items():
        if model_id.startswith(GEO_PREFIXES):
            arns.append(f"arn:aws:bedrock:{region}:{account}:inference-profile/{model_id}")
            base = spec.base_model_ids.get(call) or model_id.split(".", 1)[1]
            arns += [f"arn:aws:bedrock:{r}::foundation-model/{base}" for r in (spec.regions or (region,))]
        else:
            arns.append(f"arn:aws:bedrock:{region}::foundation-model/{model_id}")
    return sorted(set(arns))


def _statement(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}


def lambda_policies(
    outputs: dict[str, str], stage: str, region: str, account: str, models: list[ModelSpec]
) -> dict[str, dict[str, Any]]:
    """One policy document per declared function."""
    bucket = f"arn:aws:s3:::{outputs['BucketName']}"
    table = outputs["TableArn"]
    logs = _statement(
        "OwnLogs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        [f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/backdrop-{stage}-*"],
    )
    foundation_models = sorted(
        {
            f"arn:aws:bedrock:{region}::foundation-model/{base}"
            for spec in models
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
        Grant.DETECT_LABELS: _statement("Labels", ["rekognition:DetectLabels"], ["*"]),  # no resource-level permissions
        Grant.READ_MODEL_LIFECYCLE: _statement("ModelLifecycle", ["bedrock:GetFoundationModel"], foundation_models),
        Grant.READ_JOBS_STREAM: _statement(
            "JobsStream",
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
            [outputs["StreamArn"]],
        ),
        Grant.START_WORKFLOW: _statement(
            "StartWorkflow", ["states:StartExecution"], [state_machine_arn(region, account, stage)]
        ),
    }

    def statements(function: LambdaFunction) -> list[dict[str, Any]]:
        out = [logs]
        if function.s3_read:
            out.append(_statement("ReadObjects", ["s3:GetObject"], [f"{bucket}/{p}*" for p in function.s3_read]))
        if function.s3_write:
            out.append(_statement("WriteObjects", ["s3:PutObject"], [f"{bucket}/{p}*" for p in function.s3_write]))
        if function.table_actions:
            index = [f"{table}/index/*"] if Grant.OWNER_INDEX in function.grants else []
            out.append(_statement("JobsTable", [f"dynamodb:{a}" for a in function.table_actions], [table, *index]))
        out += [grants[g] for g in sorted(function.grants) if g is not Grant.OWNER_INDEX]  # that one widens JobsTable
        return out

    return {f.name: {"Version": "2012-10-17", "Statement": statements(f)} for f in FUNCTIONS}
