"""Hand-written, least-privilege IAM policies for each Chalice Lambda (autogen_policy: false).

Each function may touch only its own S3 prefixes, the jobs table (and its index or stream where
it needs them), the state machine it starts and the models it asks about. The only "*" resources
are for actions that have no resource-level permissions (Rekognition DetectLabels).
"""

from __future__ import annotations

from typing import Any

from chalicelib.models.base import ModelSpec

GEO_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "ca.", "jp.", "au.", "global.")
# Functions as Chalice names them: the REST API's handler plus every @app.lambda_function and
# event handler in app.py.
FUNCTIONS = (
    "api_handler",
    "start_workflow",
    "detect_labels",
    "prepare",
    "build_mask",
    "finalize",
    "record_failure",
    "report",
    "record_notification_failure",
)


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
    bucket = f"arn:aws:s3:::{outputs['BucketName']}"
    table = outputs["TableArn"]
    logs = _statement(
        "OwnLogs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        [f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/backdrop-{stage}-*"],
    )

    def s3(sid: str, actions: list[str], *prefixes: str) -> dict[str, Any]:
        return _statement(sid, actions, [f"{bucket}/{p}*" for p in prefixes])

    def ddb(actions: list[str], index: bool = False) -> dict[str, Any]:
        return _statement(
            "JobsTable", [f"dynamodb:{a}" for a in actions], [table] + ([f"{table}/index/*"] if index else [])
        )

    foundation_models = sorted(
        {
            f"arn:aws:bedrock:{region}::foundation-model/{base}"
            for spec in models
            for base in spec.base_model_ids.values()
        }
    )
    statements: dict[str, list[dict[str, Any]]] = {
        "api_handler": [
            # presigned POSTs and GETs are signed with this role: it must hold what they grant
            s3("Uploads", ["s3:PutObject", "s3:GetObject"], "uploads/"),
            s3("ResultsAndReports", ["s3:GetObject"], "results/", "reports/"),
            {  # POST /jobs lists each upload batch instead of a HEAD per image
                "Sid": "ListOwnUploads",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket],
                "Condition": {"StringLike": {"s3:prefix": ["uploads/*"]}},
            },
            ddb(["GetItem", "PutItem", "UpdateItem", "Query", "BatchWriteItem", "BatchGetItem"], index=True),
            _statement("Labels", ["rekognition:DetectLabels"], ["*"]),  # no resource-level permissions
            _statement("ModelLifecycle", ["bedrock:GetFoundationModel"], foundation_models),
        ],
        "detect_labels": [
            s3("Uploads", ["s3:GetObject"], "uploads/"),
            ddb(["PutItem"]),
            _statement("Labels", ["rekognition:DetectLabels"], ["*"]),
        ],
        "start_workflow": [
            ddb(["Query", "UpdateItem"]),
            _statement(
                "JobsStream",
                ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
                [outputs["StreamArn"]],
            ),
            s3("Manifest", ["s3:PutObject"], "jobs/"),
            _statement("StartWorkflow", ["states:StartExecution"], [state_machine_arn(region, account, stage)]),
        ],
        "prepare": [
            s3("Read", ["s3:GetObject"], "uploads/", "jobs/"),
            s3("Write", ["s3:PutObject"], "jobs/"),
            ddb(["UpdateItem"]),
        ],
        "build_mask": [s3("Read", ["s3:GetObject"], "jobs/"), s3("Write", ["s3:PutObject"], "jobs/")],
        "finalize": [
            s3("Read", ["s3:GetObject"], "uploads/", "jobs/"),
            s3("Write", ["s3:PutObject"], "results/"),
            ddb(["UpdateItem"]),
        ],
        "record_failure": [ddb(["UpdateItem"])],
        "report": [ddb(["Query", "UpdateItem", "GetItem"]), s3("Reports", ["s3:PutObject"], "reports/")],
        "record_notification_failure": [ddb(["UpdateItem"])],
    }
    return {name: {"Version": "2012-10-17", "Statement": [logs, *statements[name]]} for name in FUNCTIONS}
