"""The IAM guard's evaluator and operation map (backend/local/iam.py), without AWS."""

from __future__ import annotations

import builders
import pytest

from backend.local import iam
from backend.resource_names import user_topic_arn_prefix
from chalicelib.core import contracts
from chalicelib.core.functions import FUNCTIONS, Grant

BUCKET = f"arn:aws:s3:::{builders.BUCKET}"
TABLE = f"arn:aws:dynamodb:us-east-1:123456789012:table/{builders.TABLE}"


@pytest.fixture(scope="module")
def policies() -> dict[str, iam.Policy]:
    return iam.compile_policies(iam.TESTS)


def test_wildcards_allow_only_the_declared_prefixes(policies) -> None:
    build_mask = policies["build_mask"]
    assert build_mask.evaluate("s3:GetObject", f"{BUCKET}/{contracts.SCRATCH_PREFIX}job/x.json").allowed
    assert not build_mask.evaluate("s3:GetObject", f"{BUCKET}/{contracts.UPLOADS_PREFIX}owner/x.png").allowed
    assert not build_mask.evaluate("s3:PutObject", f"{BUCKET}/{contracts.RESULTS_PREFIX}o/j/x.png").allowed
    assert not build_mask.evaluate("s3:DeleteObject", f"{BUCKET}/{contracts.SCRATCH_PREFIX}job/x.json").allowed
    # the bucket itself is not an object under a prefix
    assert not build_mask.evaluate("s3:GetObject", BUCKET).allowed


def test_actions_match_without_case_and_resources_with_it(policies) -> None:
    prepare = policies["prepare"]
    assert prepare.evaluate("DynamoDB:getitem", TABLE).allowed
    assert not prepare.evaluate("dynamodb:GetItem", TABLE.upper()).allowed
    assert not prepare.evaluate("dynamodb:DeleteItem", TABLE).allowed  # not declared: implicit deny


def test_string_like_conditions_need_the_key_and_a_matching_value(policies) -> None:
    api = policies["api_handler"]
    assert api.evaluate("s3:ListBucket", BUCKET, {"s3:prefix": f"{contracts.UPLOADS_PREFIX}owner/"}).allowed
    assert api.evaluate("s3:ListBucket", BUCKET, {"s3:prefix": f"{contracts.RESULTS_PREFIX}owner/"}).allowed
    assert not api.evaluate("s3:ListBucket", BUCKET, {"s3:prefix": "elsewhere/"}).allowed
    assert not api.evaluate("s3:ListBucket", BUCKET, {"s3:prefix": ""}).allowed  # the whole bucket
    assert not api.evaluate("s3:ListBucket", BUCKET).allowed  # no s3:prefix at all


def test_the_owner_index_needs_its_grant(policies) -> None:
    index = f"{TABLE}/index/owner-index"
    assert policies["api_handler"].evaluate("dynamodb:Query", index).allowed  # OWNER_INDEX
    assert not policies["report"].evaluate("dynamodb:Query", index).allowed
    assert policies["report"].evaluate("dynamodb:Query", TABLE).allowed


def test_each_allowed_call_names_the_declared_units_that_allowed_it(policies) -> None:
    start = policies["start_workflow"].evaluate("states:StartExecution", iam.TESTS.state_machine_arn)
    assert start.units == ("start_workflow:grants:start-workflow",)
    read = policies["finalize"].evaluate("s3:GetObject", f"{BUCKET}/{contracts.RESULTS_PREFIX}o/j/x.png")
    assert read.units == (f"finalize:s3_read:{contracts.RESULTS_PREFIX}",)
    query = policies["api_handler"].evaluate("dynamodb:Query", f"{TABLE}/index/owner-index")
    assert set(query.units) == {"api_handler:table_actions:Query", "api_handler:grants:owner-index"}


def test_the_starter_may_read_the_job_and_stop_an_execution(policies) -> None:
    """The blocker of issue #24: every start reads the job (GetItem), and a job cancelled while it
    started has its execution stopped (StopExecution): neither was in start_workflow's role."""
    starter = policies["start_workflow"]
    assert starter.evaluate("dynamodb:GetItem", TABLE).allowed
    execution = "arn:aws:states:us-east-1:123456789012:execution:backdrop-test-workflow:job-1"
    assert starter.evaluate("states:StopExecution", execution).allowed


def test_operations_map_to_the_actions_aws_authorizes() -> None:
    def actions(service: str, operation: str, params: dict) -> list[tuple[str, str, dict]]:
        return [
            (r.action, r.resource, dict(r.context))
            for r in iam.requests_for(service, operation, params, "us-east-1", "123456789012")
        ]

    assert actions("s3", "HeadObject", {"Bucket": "b", "Key": "k/1"}) == [("s3:GetObject", "arn:aws:s3:::b/k/1", {})]
    assert actions("s3", "CopyObject", {"Bucket": "b", "Key": "t", "CopySource": {"Bucket": "a", "Key": "s"}}) == [
        ("s3:GetObject", "arn:aws:s3:::a/s", {}),
        ("s3:PutObject", "arn:aws:s3:::b/t", {}),
    ]
    assert (
        actions("s3", "CopyObject", {"Bucket": "b", "Key": "t", "CopySource": "a/s%20x"})[0][1] == "arn:aws:s3:::a/s x"
    )
    assert [
        a
        for a, _, _ in actions(
            "s3", "DeleteObjects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "1"}, {"Key": "2"}]}}
        )
    ] == [
        "s3:DeleteObject",
        "s3:DeleteObject",
    ]
    assert actions("s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "p/"}) == [
        ("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "p/"})
    ]
    assert actions("s3", "UploadPart", {"Bucket": "b", "Key": "z"})[0][0] == "s3:PutObject"
    writes = actions(
        "dynamodb",
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Update": {"TableName": "t"}},
                {"ConditionCheck": {"TableName": "t"}},
                {"Delete": {"TableName": "u"}},
            ]
        },
    )
    assert [a for a, _, _ in writes] == ["dynamodb:UpdateItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem"]
    assert writes[2][1].endswith(":table/u")
    assert actions("dynamodb", "Query", {"TableName": "t", "IndexName": "i"})[0][1].endswith(":table/t/index/i")
    assert actions("lambda", "Invoke", {"FunctionName": "backdrop-test-reconcile"})[0] == (
        "lambda:InvokeFunction",
        "arn:aws:lambda:us-east-1:123456789012:function:backdrop-test-reconcile",
        {},
    )
    assert actions("rekognition", "DetectText", {})[0][1] == "*"


def test_an_unmapped_operation_fails_loudly() -> None:
    with pytest.raises(iam.UnmappedOperation, match="s3.PutBucketPolicy"):
        iam.requests_for("s3", "PutBucketPolicy", {"Bucket": "b"}, "us-east-1", "123456789012")


def test_a_mutation_removes_exactly_one_unit_and_the_policy_follows() -> None:
    units = iam.parse_mutation("start_workflow:table_actions:GetItem,finalize:grants:detect-text")
    mutated = {f.name: f for f in iam.mutate(FUNCTIONS, units)}
    original = {f.name: f for f in FUNCTIONS}
    assert "GetItem" not in mutated["start_workflow"].table_actions
    assert set(original["start_workflow"].table_actions) - set(mutated["start_workflow"].table_actions) == {"GetItem"}
    assert original["finalize"].grants - mutated["finalize"].grants == {Grant.DETECT_TEXT}
    policies = iam.compile_policies(iam.TESTS, tuple(mutated.values()))
    assert not policies["start_workflow"].evaluate("dynamodb:GetItem", TABLE).allowed
    assert not policies["finalize"].evaluate("rekognition:DetectText", "*").allowed
    assert policies["finalize"].evaluate("rekognition:DetectLabels", "*").allowed
    with pytest.raises(ValueError, match="no grant"):
        iam.mutate(FUNCTIONS, iam.parse_mutation("prepare:grants:detect-text"))


@pytest.mark.parametrize("declared", FUNCTIONS, ids=lambda f: f.name)
def test_removing_any_unit_denies_a_call_it_allowed(declared) -> None:
    """For every function and every declared unit: some call the full policy allows is denied
    once that unit is removed (a unit no call can tell apart would be dead weight)."""
    full = iam.compile_policies(iam.TESTS)[declared.name]
    for kind, value in iam.declared_units(declared):
        unit = f"{declared.name}:{kind}:{value}"
        mutated = iam.mutate(FUNCTIONS, [(declared.name, kind, value)])
        mutant = iam.compile_policies(iam.TESTS, mutated, only=declared.name)[declared.name]
        probes = [p for p in _probes(declared.name, kind, value) if full.evaluate(*p).allowed]
        assert probes, f"no probe of {unit} is allowed by the full policy"
        assert any(not mutant.evaluate(*p).allowed for p in probes), f"removing {unit} denies nothing"


def _probes(name: str, kind: str, value: str) -> list[tuple[str, str, dict[str, str]]]:
    """A call each kind of unit exists for."""
    region, account, stage = "us-east-1", "123456789012", "test"
    if kind in ("s3_read", "s3_write", "s3_delete"):
        action = {"s3_read": "s3:GetObject", "s3_write": "s3:PutObject", "s3_delete": "s3:DeleteObject"}[kind]
        return [(action, f"{BUCKET}/{value}probe", {})]
    if kind == "table_actions":
        return [(f"dynamodb:{value}", TABLE, {})]
    execution = f"arn:aws:states:{region}:{account}:execution:backdrop-{stage}-workflow:probe"
    function = f"arn:aws:lambda:{region}:{account}:function:backdrop-{stage}-"
    outputs = iam.TESTS.outputs()
    return {
        "list-uploads": [("s3:ListBucket", BUCKET, {"s3:prefix": f"{contracts.UPLOADS_PREFIX}o/"})],
        "list-scratch": [("s3:ListBucket", BUCKET, {"s3:prefix": f"{contracts.SCRATCH_PREFIX}j/"})],
        "list-job-files": [("s3:ListBucket", BUCKET, {"s3:prefix": f"{contracts.RESULTS_PREFIX}o/"})],
        "owner-index": [("dynamodb:Query", f"{TABLE}/index/owner-index", {})],
        "detect-labels": [("rekognition:DetectLabels", "*", {})],
        "detect-text": [("rekognition:DetectText", "*", {})],
        "read-model-lifecycle": [
            ("bedrock:GetFoundationModel", f"arn:aws:bedrock:{region}::foundation-model/{m}", {})
            for m in ("stability.stable-image-inpaint-v1:0", "amazon.titan-image-generator-v2:0")
        ],
        "read-jobs-stream": [("dynamodb:GetRecords", f"{TABLE}/stream/2026", {})],
        "start-workflow": [("states:StartExecution", iam.TESTS.state_machine_arn, {})],
        "read-executions": [("states:DescribeExecution", execution, {})],
        "list-executions": [("states:ListExecutions", iam.TESTS.state_machine_arn, {})],
        "publish-job-email": [("sns:Publish", f"{user_topic_arn_prefix(stage, region, account, 'aws')}x", {})],
        "stream-failures": [("sqs:SendMessage", outputs["StreamFailureQueueArn"], {})],
        "background-failures": [("sqs:SendMessage", outputs["BackgroundFailureQueueArn"], {})],
        "stop-workflow": [("states:StopExecution", execution, {})],
        "start-webhook": [("lambda:InvokeFunction", f"{function}send_webhook", {})],
        "abort-archive-upload": [("s3:AbortMultipartUpload", f"{BUCKET}/{contracts.RESULTS_PREFIX}z", {})],
        "send-task-result": [("states:SendTaskSuccess", iam.TESTS.state_machine_arn, {})],
        "start-background": [("lambda:InvokeFunction", f"{function}background_work", {})],
        "sign-credentials": [
            (f"kms:{action}", f"arn:aws:kms:{region}:{account}:key/1234abcd", {}) for action in ("Sign", "GetPublicKey")
        ],
    }[value]
