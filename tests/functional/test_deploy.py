"""Deploy tooling: templates lint clean, policies stay least-privilege, deploy/teardown on moto."""

from __future__ import annotations

import ast
import fnmatch
import io
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from backend import policies, resource_names, runtime, stream_trigger, templates
from backend import project as deploy_project
from backend.deploy import TEMPLATE_BODY_LIMIT, TEMPLATES_PREFIX, ChaliceResult, Deployer, stack_name
from chalicelib.core import contracts
from chalicelib.core.functions import FUNCTIONS, WORKFLOW_FUNCTIONS
from chalicelib.models import registry

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "BucketName": "backdrop-dev-123456789012-us-east-1",
    "TableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/backdrop-dev-jobs",
    "StreamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/backdrop-dev-jobs/stream/2026-01-01T00:00:00.000",
    "StreamFailureQueueArn": "arn:aws:sqs:us-east-1:123456789012:backdrop-dev-stream-failures",
    "BackgroundFailureQueueArn": "arn:aws:sqs:us-east-1:123456789012:backdrop-dev-background-failures",
}


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    return subprocess.run([str(cfn_lint), str(path)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # cfn-lint in a subprocess, ~4 s of CPU each: make test, not make test-fast
@pytest.mark.parametrize("kind", templates.STACKS)
def test_templates_are_cfn_lint_clean(kind: str, tmp_path: Path) -> None:
    template = templates.workflow_template(8) if kind == "workflow" else templates.load(kind)
    path = tmp_path / f"{kind}.json"
    path.write_text(templates.to_json(template))
    result = _cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # cfn-lint in a subprocess, ~4 s of CPU: make test, not make test-fast
def test_cfn_lint_catches_a_broken_state_machine(tmp_path: Path) -> None:
    template = templates.workflow_template(8)
    template["Resources"]["Workflow"]["Properties"]["Definition"]["StartAt"] = "Nowhere"
    path = tmp_path / "broken.json"
    path.write_text(templates.to_json(template))
    assert _cfn_lint(path).returncode != 0


def test_workflow_template_inserts_the_one_asl_file() -> None:
    machine = templates.workflow_template(12)["Resources"]["Workflow"]["Properties"]
    assert machine["Definition"]["States"]["Process every image"]["MaxConcurrency"] == 12
    assert set(machine["DefinitionSubstitutions"]) == {f.arn_placeholder for f in WORKFLOW_FUNCTIONS} | {
        "UserTopicArnPrefix",
        "BucketName",
        "MapExecutionType",
    }
    # the S3 layout is filled from the contracts, never left to CloudFormation
    process = machine["Definition"]["States"]["Process every image"]
    assert process["ResultWriter"]["Parameters"]["Prefix"] == contracts.MAP_RESULTS_PREFIX
    with pytest.raises(ValueError):
        templates.workflow_template(20_000)


@pytest.mark.slow
def test_chalice_package_output_is_cfn_lint_clean(tmp_path: Path) -> None:
    out = tmp_path / "package"
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    for key in (
        "PIP_FIND_LINKS",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_DEFAULT_TIMEOUT",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "PIP_CERT",
    ):
        if key in __import__("os").environ:
            env[key] = __import__("os").environ[key]
    project = tmp_path / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".venv-deploy",
            "*.egg-info",
            ".git",
            "tests",
            "test-artifacts",
            "docs",
            "samples",
            "*.pyc",
            "deployments",
            ".deploy",
        ),
    )
    # as backend/project.py builds a stage's project: c2pa-python from its wheel, without its .rlib,
    # and chalicelib's bytecode compiled by the deploy's interpreter
    deploy_project.vendor_wheels(project)
    deploy_project.compile_bytecode(project)
    queue_arn = "arn:aws:sqs:us-east-1:123456789012:backdrop-dev-stream-failures"
    merge = tmp_path / "stream-trigger.json"
    merge.write_text(json.dumps(stream_trigger.merge_template(queue_arn)))
    # chalice as the deploy runs it: under the Python that gives the Lambdas a supported runtime
    python = runtime.chalice_python()
    expected_runtime = runtime.require_supported(python)
    result = subprocess.run(
        [
            *runtime.chalice_command(python),
            "package",
            "--stage",
            "dev",
            "--merge-template",
            str(merge),
            str(out),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lint = _cfn_lint(out / "sam.json")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    sam = json.loads((out / "sam.json").read_text())
    # every Lambda on a supported runtime (Amazon Linux 2023), never python3.11 on Amazon Linux 2
    functions = {n: r for n, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert len(functions) == len(FUNCTIONS)
    runtimes = {
        r["Properties"].get("Runtime", sam.get("Globals", {}).get("Function", {}).get("Runtime"))
        for r in functions.values()
    }
    assert runtimes == {expected_runtime} and expected_runtime in runtime.SUPPORTED_RUNTIMES
    # the packaged stream trigger carries what Chalice cannot set, and nothing was merged beside it
    trigger = sam["Resources"][stream_trigger.FUNCTION_LOGICAL_ID]["Properties"]["Events"]
    assert list(trigger) == [stream_trigger.EVENT_LOGICAL_ID]
    properties = trigger[stream_trigger.EVENT_LOGICAL_ID]["Properties"]
    assert properties["Stream"].startswith("arn:aws:dynamodb:") and properties["BatchSize"] == 10
    assert properties["MaximumRetryAttempts"] == stream_trigger.MAXIMUM_RETRY_ATTEMPTS
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["DestinationConfig"]["OnFailure"] == {"Destination": queue_arn}
    assert json.loads(properties["FilterCriteria"]["Filters"][0]["Pattern"]) == stream_trigger.JOB_INSERTS
    # every chalicelib module travels with the runtime's checked-hash .pyc: /var/task is read-only,
    # so without it each cold start compiles the sources again (backend/project.py BYTECODE_DIRS)
    tag = "cpython-" + expected_runtime.removeprefix("python").replace(".", "")
    with zipfile.ZipFile(out / "deployment.zip") as package:
        names = set(package.namelist())
        sources = sorted(n for n in names if n.startswith("chalicelib/") and n.endswith(".py"))
        missing = [
            n for n in sources if f"{n.rsplit('/', 1)[0]}/__pycache__/{n.rsplit('/', 1)[1][:-3]}.{tag}.pyc" not in names
        ]
        assert sources and not missing, missing
        header = package.read(f"chalicelib/__pycache__/__init__.{tag}.pyc")[4:8]
        assert int.from_bytes(header, "little") == 0b11  # checked-hash (PEP 552)
    size = (out / "deployment.zip").stat().st_size
    # `chalice deploy` uploads the zip directly, which Lambda takes up to 50 MB (read as 50,000,000
    # bytes; https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). The test's
    # limit keeps 1 MB of that for what this package does not carry or pin: a deployer's own
    # models.json, and newer releases of the ranges (cryptography, requests, pydantic). Measured
    # 48.6 MB (46.3 MiB): numpy 15.6 MiB zipped, c2pa-python without its .rlib 8.7 MiB and
    # cryptography 4.7 MiB, Pillow 6.5 MiB, pillow-heif 5.4 MiB, pydantic 2.6 MiB
    # (docs/aws-notes.md#n107-c2pa-python-wheels-and-the-lambda-package). Growing past it means
    # dropping weight, or deploying the code from S3 (chalice package + CloudFormation).
    assert size < deploy_project.PACKAGE_SIZE_LIMIT, f"package is {size:,} bytes ({size / 2**20:.1f} MiB)"


# ------------------------------------------------------------------------------ IAM


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["Statement"]


def test_lambda_policies_grant_no_wildcards_beyond_what_is_documented() -> None:
    docs = policies.lambda_policies(OUTPUTS, "dev", "us-east-1", "123456789012", registry.selectable_models())
    assert set(docs) == {f.name for f in FUNCTIONS}
    for name, document in docs.items():
        for statement in _statements(document):
            actions = statement["Action"]
            assert all("*" not in a for a in actions), (name, actions)
            if "*" in statement["Resource"]:
                # Rekognition's image APIs have no resource-level permissions
                assert actions in (["rekognition:DetectLabels"], ["rekognition:DetectText"]), (name, statement)
            for resource in statement["Resource"]:
                if resource == f"arn:aws:s3:::{OUTPUTS['BucketName']}":  # listing, only under Backdrop's prefixes
                    prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                    assert actions == ["s3:ListBucket"] and prefixes
                    assert all(p.removesuffix("*") in contracts.S3_LAYOUT.values() for p in prefixes), prefixes
                elif resource.startswith("arn:aws:s3:::"):
                    assert resource.count("/") >= 1 and resource.split("/", 1)[1].removesuffix("*") in (
                        contracts.S3_LAYOUT.values()
                    )
    # only the step functions that need them may write results or start the workflow
    writers = {
        n
        for n, d in docs.items()
        for s in _statements(d)
        for r in s["Resource"]
        if r.endswith("/results/*") and "s3:PutObject" in s["Action"]
    }
    # results are written by finalize; archives of them (results/<owner>/<job>/archive/) by the
    # API (small ones, within the request) and the background worker (large ones)
    assert writers == {"finalize", "api_handler", "background_work"}
    deleters = {
        (n, r)
        for n, d in docs.items()
        for s in _statements(d)
        for r in s["Resource"]
        if "s3:DeleteObject" in s["Action"]
    }
    # a workflow step deletes only an image's scratch (finalize, once it SUCCEEDED); the background
    # worker a large job's files (the API's DELETE, in the background): the same prefixes as the API
    assert {(n, r) for n, r in deleters if n not in ("api_handler", "background_work")} == {
        ("finalize", f"arn:aws:s3:::{OUTPUTS['BucketName']}/{contracts.SCRATCH_PREFIX}*")
    }
    assert {r for n, r in deleters if n == "background_work"} == {r for n, r in deleters if n == "api_handler"}
    starters = {n for n, d in docs.items() for s in _statements(d) if "states:StartExecution" in s["Action"]}
    # the stream's starter, and the sweep that starts a job left SUBMITTED with the same code
    assert starters == {"start_workflow", "reconcile_sweep"}
    # only the API and its deleter delete (a job's files on DELETE); the API stops executions
    # (cancel), and so do the starter and the sweep running its code, for a run whose job was
    # cancelled while it started; the webhook sender is started only where no workflow step is
    # left to run it (a cancel, a job the reconciler closed)
    deleters = {n for n, d in docs.items() for s in _statements(d) if "s3:DeleteObject" in s["Action"]}
    assert deleters == {"api_handler", "finalize", "background_work"}
    stoppers = {n: s for n, d in docs.items() for s in _statements(d) if "states:StopExecution" in s["Action"]}
    assert {"api_handler", "reconcile_sweep", "start_workflow"} <= set(stoppers)
    for stopper in stoppers.values():
        assert stopper["Resource"] == ["arn:aws:states:us-east-1:123456789012:execution:backdrop-dev-workflow:*"]
    # every start reads the job first (issue #24: without GetItem no job ever started on AWS)
    [starter_table] = [s for s in _statements(docs["start_workflow"]) if s["Sid"] == "JobsTable"]
    assert "dynamodb:GetItem" in starter_table["Action"]
    # steps that must tell a missing scratch object from a refused one list it, only under scratch
    for lister in ("record_failure", "finalize"):
        [listing] = [s for s in _statements(docs[lister]) if s["Sid"] == "ListScratch"]
        assert listing["Action"] == ["s3:ListBucket"]
        assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{contracts.SCRATCH_PREFIX}*"]}}
    # GET /models reads the lifecycle of every registered model, retired ones too
    [lifecycle] = [s for s in _statements(docs["api_handler"]) if s["Sid"] == "ModelLifecycle"]
    assert "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-image-generator-v2:0" in lifecycle["Resource"]
    invokers = {n: s for n, d in docs.items() for s in _statements(d) if "lambda:InvokeFunction" in s["Action"]}
    assert set(invokers) == {
        "api_handler",
        "reconcile",
        "reconcile_sweep",
        "background_work",
        "finalize",
        "start_workflow",
    }
    sender = ["arn:aws:lambda:us-east-1:123456789012:function:backdrop-dev-send_webhook"]
    worker = ["arn:aws:lambda:us-east-1:123456789012:function:backdrop-dev-background_work"]
    # each may start only the webhook sender and the one background worker (a large job's closing,
    # deletion, report rewrite or archive), which the worker itself (a deletion going on) and the
    # sweep (stranded work) may start too; the reconciler no longer starts background work
    assert all(s["Resource"] in (sender, worker) for s in invokers.values())
    api_invokes = [s["Resource"] for s in _statements(docs["api_handler"]) if "lambda:InvokeFunction" in s["Action"]]
    assert sorted(api_invokes) == sorted([sender, worker])

    def invokes(name: str) -> list[list[str]]:
        return [s["Resource"] for s in _statements(docs[name]) if "lambda:InvokeFunction" in s["Action"]]

    # Lambda sends a background task that failed every attempt with the worker's own role: it alone
    # may send to that queue, and to no other
    senders = {n: s["Resource"] for n, d in docs.items() for s in _statements(d) if s["Sid"] == "BackgroundFailures"}
    assert senders == {"background_work": ["arn:aws:sqs:us-east-1:123456789012:backdrop-dev-background-failures"]}
    # the worker: a deletion's next run; a closed job's webhook
    assert sorted(invokes("background_work")) == sorted([sender, worker])
    assert invokes("reconcile") == [sender]
    # a regeneration added to a large finished job: its report rewrite, on the background worker
    assert invokes("finalize") == [worker]
    # the sweep: stranded background work, and (the starter's code) a cancelled job's closing
    assert sorted(invokes("reconcile_sweep")) == sorted([sender, worker])
    # a job cancelled before the starter wrote its images: the starter starts its closing
    assert invokes("start_workflow") == [worker]


def test_the_starter_may_read_the_accepted_image_records_and_write_the_image_items() -> None:
    """Accept first (chalicelib/workflow/starter.py): POST /jobs writes the image records under the job's
    scratch prefix, the starter reads them, reads the job and writes the items in batches."""
    docs = policies.lambda_policies(OUTPUTS, "dev", "us-east-1", "123456789012", registry.selectable_models())
    scratch = f"arn:aws:s3:::{OUTPUTS['BucketName']}/{contracts.SCRATCH_PREFIX}*"

    def allowed(name: str, action: str, resource: str) -> bool:
        return any(action in s["Action"] and resource in s["Resource"] for s in _statements(docs[name]))

    assert allowed("api_handler", "s3:PutObject", scratch)
    assert allowed("start_workflow", "s3:GetObject", scratch)
    for action in ("dynamodb:GetItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem", "dynamodb:Query"):
        assert allowed("start_workflow", action, OUTPUTS["TableArn"]), action


def test_job_emails_may_be_published_to_the_stages_user_topics_only() -> None:
    """The reconciler and its sweep publish a job's email to its owner's own topic: sns:Publish on
    this stage's user topics, nothing else; the workflow role (its Notify step) likewise."""
    docs = policies.lambda_policies(OUTPUTS, "dev", "us-east-1", "123456789012", registry.selectable_models())
    publishers = {n: s for n, d in docs.items() for s in _statements(d) if "sns:Publish" in s["Action"]}
    assert set(publishers) == {"reconcile", "reconcile_sweep"}
    for statement in publishers.values():
        assert statement["Action"] == ["sns:Publish"]
        assert statement["Resource"] == ["arn:aws:sns:us-east-1:123456789012:backdrop-dev_user-*"]
    sub = "0b7e4f2a-91c3-4d5e-8f6a-1b2c3d4e5f60"
    topic = contracts.user_topic_arn(
        resource_names.user_topic_arn_prefix("dev", "us-east-1", "123456789012", "aws"), sub
    )
    assert fnmatch.fnmatchcase(topic, publishers["reconcile"]["Resource"][0])
    # no other stage's topics (a stage name has no "_"), and not the alarm topic
    for other in (
        "backdrop-dev2_user-x",
        "backdrop-dev-alarms",
        "backdrop-dev-user-x_user-y",
        "backdrop-dev-notifications",
    ):
        assert not fnmatch.fnmatchcase(
            f"arn:aws:sns:us-east-1:123456789012:{other}", publishers["reconcile"]["Resource"][0]
        )
    role = templates.load("workflow")["Resources"]["WorkflowRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    notify = next(st for st in role["Statement"] if st["Sid"] == "Notify")
    assert notify["Action"] == "sns:Publish" and notify["Resource"] == {"Fn::Sub": "${UserTopicArnPrefix}*"}
    assert "NotificationTopic" not in templates.load("resources")["Resources"]  # the shared topic is gone


def test_workflow_role_wildcards_are_only_logs_and_tracing() -> None:
    role = templates.load("workflow")["Resources"]["WorkflowRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    for statement in role["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(not a.endswith(":*") and a != "*" for a in actions)
        if statement["Resource"] == "*":
            assert all(a.startswith(("logs:", "xray:")) for a in actions), statement


def test_inference_profile_needs_profile_and_foundation_model_arns() -> None:
    spec = registry.get_model("stability-inpaint")
    arns = policies.model_resource_arns(spec, "us-east-1", "123456789012")
    assert "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.stability.stable-image-inpaint-v1:0" in arns
    assert "arn:aws:bedrock:us-west-2::foundation-model/stability.stable-image-inpaint-v1:0" in arns
    assert all("*" not in arn for arn in arns)


# ------------------------------------------------------------------------------ deploy on moto


@pytest.fixture
def moto_server() -> Any:
    """A moto server on 127.0.0.1: the deploy talks to it over HTTP like to AWS."""
    from moto.server import ThreadedMotoServer

    from backend.local import sns_rules

    undo = sns_rules.install()  # SNS's filter-policy quotas, as on AWS
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    import requests

    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    yield endpoint
    server.stop()
    undo()


def _client(service: str, endpoint: str, region: str = "us-east-1") -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=region)


class FakeBedrock:
    """Bedrock's control plane as a subscribed account in us-east-1 sees it (moto has no Bedrock):
    each us. profile routes to four Regions, one of which models.json does not list."""

    DESTINATIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2")

    def get_inference_profile(self, inferenceProfileIdentifier: str) -> dict[str, Any]:
        base = inferenceProfileIdentifier.split(".", 1)[1]
        return {
            "inferenceProfileArn": f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{inferenceProfileIdentifier}",
            "models": [{"modelArn": f"arn:aws:bedrock:{r}::foundation-model/{base}"} for r in self.DESTINATIONS],
        }

    def get_foundation_model(self, modelIdentifier: str) -> dict[str, Any]:
        if modelIdentifier.startswith("amazon."):  # Titan and Nova Canvas: retired in 2026
            lifecycle = {"status": "LEGACY", "endOfLifeTime": datetime(2026, 9, 30, tzinfo=UTC)}
        else:
            lifecycle = {"status": "ACTIVE"}
        return {"modelDetails": {"modelId": modelIdentifier, "modelLifecycle": lifecycle}}

    def get_foundation_model_availability(self, modelId: str) -> dict[str, Any]:
        return {
            "modelId": modelId,
            "agreementAvailability": {"status": "AVAILABLE"},
            "authorizationStatus": "AUTHORIZED",
            "entitlementAvailability": "AVAILABLE",
            "regionAvailability": "AVAILABLE",
        }


def _echo_lists_as_cloudformation_does(parsed: dict[str, Any], **_: Any) -> None:
    """moto echoes a CommaDelimitedList parameter as "['a', 'b']" where CloudFormation echoes "a,b"
    (docs/aws-notes.md#n25-moto-cloudformation): the deploy is shown what AWS would return."""
    for stack in parsed.get("Stacks", []):
        for parameter in stack.get("Parameters", []):
            value = parameter.get("ParameterValue", "")
            if value.startswith("[") and value.endswith("]"):
                parameter["ParameterValue"] = ",".join(str(v) for v in ast.literal_eval(value))


def _function_as_chalice_makes_it(stage: str, region: str, function: str) -> str:
    """A plain Lambda function `chalice deploy` makes (once; a redeploy finds it), on the moto server."""
    lambda_ = boto3.client("lambda", region_name=region)
    name = f"backdrop-{stage}-{function}"
    try:
        return str(lambda_.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
    except lambda_.exceptions.ResourceNotFoundException:
        pass
    iam_ = boto3.client("iam", region_name=region)
    role = iam_.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("app.py", f"def {function}(event, context):\n    return None\n")
    code = {"ZipFile": archive.getvalue()}
    created = lambda_.create_function(
        FunctionName=name, Runtime="python3.11", Role=role, Handler=f"app.{function}", Code=code
    )
    return str(created["FunctionArn"])


def _stream_handler_as_chalice_makes_it(stage: str, region: str, stream_arn: str) -> str:
    """The starter function and the stream mapping `chalice deploy` makes: batch size and starting
    position only (once; a redeploy finds them). The moto server is AWS_ENDPOINT_URL."""
    lambda_ = boto3.client("lambda", region_name=region)
    name = f"backdrop-{stage}-{stream_trigger.FUNCTION}"
    try:
        return str(lambda_.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
    except lambda_.exceptions.ResourceNotFoundException:
        pass
    role = boto3.client("iam", region_name=region).create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("app.py", "def start_workflow(event, context):\n    return None\n")
    arn = lambda_.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="app.start_workflow",
        Code={"ZipFile": archive.getvalue()},
    )["FunctionArn"]
    lambda_.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=arn, BatchSize=10, StartingPosition="TRIM_HORIZON"
    )
    return str(arn)


def _refuse_a_template_body_over_the_limit(params: dict[str, Any], **_: Any) -> Any:
    """CloudFormation refuses a TemplateBody over 51,200 bytes (moto takes any size): answered as
    AWS answers it (docs/aws-notes.md#n77-cloudformation-template-size-limits)."""
    from botocore.awsrequest import AWSResponse

    body = (params.get("body") or {}).get("TemplateBody")  # the serialized request's form fields
    if body is None or len(body.encode()) <= TEMPLATE_BODY_LIMIT:
        return None
    message = (
        "1 validation error detected: Value at 'templateBody' failed to satisfy constraint: "
        f"Member must have length less than or equal to {TEMPLATE_BODY_LIMIT}"
    )
    error = {"Error": {"Code": "ValidationError", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return AWSResponse("https://cloudformation.amazonaws.com/", 400, {}, None), error


@dataclass
class MotoDeployer(Deployer):
    """The real deployer, but the auth stack is made through the Cognito API: moto's CloudFormation
    has no Cognito (docs/aws-notes.md#n25-moto-cloudformation); cfn-lint checks auth.yaml."""

    said: list[str] = field(default_factory=list)
    deleted: list[tuple[str, str, Path]] = field(default_factory=list)  # `chalice delete` calls
    webapp_parameters: list[dict[str, str]] = field(default_factory=list)  # the web app stack's, per deploy

    def __post_init__(self) -> None:
        self.say = self.said.append
        self.session.events.register("after-call.cloudformation.DescribeStacks", _echo_lists_as_cloudformation_does)
        for operation in ("CreateStack", "UpdateStack"):
            self.session.events.register(
                f"before-call.cloudformation.{operation}", _refuse_a_template_body_over_the_limit
            )
        super().__post_init__()

    def deploy_webapp_stack(self, parameters: dict[str, str]) -> dict[str, str]:
        """moto's CloudFormation has no ECS Express Mode: a stand-in stack of the same name with
        the service's one output (cfn-lint checks webapp.yaml; test_webapp_deploy.py the rest)."""
        self.webapp_parameters.append(parameters)
        template = {
            "Parameters": {name: {"Type": "String"} for name in parameters},
            "Resources": {"Service": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {"AppEndpoint": {"Value": f"backdrop-{self.stage}-webapp.ecs.{self.region}.on.aws"}},
        }
        return self.deploy_stack("webapp", template, parameters)

    def deploy_auth(self) -> dict[str, str]:
        cognito = self.client("cognito-idp")
        pool = cognito.create_user_pool(PoolName="backdrop-dev-users")["UserPool"]
        client = cognito.create_user_pool_client(UserPoolId=pool["Id"], ClientName="backdrop-dev-app")["UserPoolClient"]
        return {"UserPoolId": pool["Id"], "UserPoolArn": pool["Arn"], "UserPoolClientId": client["ClientId"]}


def fake_chalice(stage: str, env: dict[str, str], region: str, project_dir: Path) -> ChaliceResult:
    """`chalice deploy` itself is not run on moto: it builds a Lambda package and drives API
    Gateway and Lambda APIs moto only partly has; everything around it is real."""
    assert env["STATE_MACHINE_ARN"] == policies.state_machine_arn(region, "123456789012", stage)
    config = json.loads((project_dir / ".chalice" / "config.json").read_text())
    assert config["stages"][stage]["environment_variables"] == env  # the Lambdas get what chalice got
    assert (project_dir / "app.py").exists() and (project_dir / "chalicelib" / "models" / "models.json").exists()
    arns = {
        f.name: f"arn:aws:lambda:{region}:123456789012:function:backdrop-{stage}-{f.name}" for f in WORKFLOW_FUNCTIONS
    }
    arns[stream_trigger.FUNCTION] = _stream_handler_as_chalice_makes_it(stage, region, env["JOBS_STREAM_ARN"])
    arns["background_work"] = _function_as_chalice_makes_it(stage, region, "background_work")
    api_url = f"https://example.execute-api.{region}.amazonaws.com/api/"
    api_id = _rest_api(stage, region)
    record = {
        "resources": [{"resource_type": "rest_api", "rest_api_url": api_url, "rest_api_id": api_id}]
        + [{"resource_type": "lambda_function", "name": f, "lambda_arn": a} for f, a in arns.items()]
    }
    (project_dir / ".chalice" / "deployed").mkdir(exist_ok=True)
    (project_dir / ".chalice" / "deployed" / f"{stage}.json").write_text(json.dumps(record))
    return ChaliceResult(api_url, arns, api_id)


def _rest_api(stage: str, region: str) -> str:
    """The REST API chalice would have created (and updates on a redeploy): one route with an
    integration, so that it can be deployed."""
    apigateway = boto3.client("apigateway", region_name=region)
    name = f"backdrop-{stage}"
    existing = [api["id"] for api in apigateway.get_rest_apis()["items"] if api["name"] == name]
    if existing:
        return str(existing[0])
    api_id = str(apigateway.create_rest_api(name=name)["id"])
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    return api_id


def make_deployer(tmp_path: Path, region: str = "us-east-1") -> MotoDeployer:
    """A deployer against the moto server (AWS_ENDPOINT_URL, set by the caller), with a Bedrock
    that answers as a subscribed account's would."""
    deployer = MotoDeployer(
        stage="dev",
        region=region,
        session=boto3.Session(region_name=region),
        run_chalice=fake_chalice,
        project_dir=tmp_path / "project",
        client_overrides={"bedrock": FakeBedrock()},
    )
    deployer.run_chalice_delete = lambda stage, region, project_dir: deployer.deleted.append(
        (stage, region, project_dir)
    )
    return deployer


@pytest.fixture
def on_moto(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)  # the SDK's own setting, as on a real machine
    # chalice itself is not run on moto (fake_chalice): the deploy's Python is taken as a supported
    # one here; choosing and refusing it has its own tests (test_the_deploy_refuses_...)
    from backend import doctor as doctor_module

    monkeypatch.setattr(doctor_module, "runtime_for_this_interpreter", lambda: "python3.12")
    return moto_server


@pytest.fixture
def deployer(on_moto: str, tmp_path: Path) -> MotoDeployer:
    return make_deployer(tmp_path)


def test_deploy_then_redeploy_then_teardown_on_moto(deployer: MotoDeployer, moto_server: str) -> None:
    tracked = (ROOT / ".chalice" / "config.json").read_bytes()
    settings = {"BACKDROP_APP_URL": "https://backdrop.example.com", "BACKDROP_RESULT_RETENTION_DAYS": "14"}
    outputs = deployer.deploy(email="", model="stability-inpaint", max_concurrency=8, settings=settings)
    assert (ROOT / ".chalice" / "config.json").read_bytes() == tracked  # no account ids in the checkout
    cfn = _client("cloudformation", moto_server)
    for kind in ("resources", "workflow"):
        assert cfn.describe_stacks(StackName=stack_name("dev", kind))["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert outputs["BucketName"] == "backdrop-dev-123456789012-us-east-1"
    table = _client("dynamodb", moto_server).describe_table(TableName=outputs["TableName"])["Table"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    config = json.loads((deployer.chalice_dir / "config.json").read_text())["stages"]["dev"]
    assert config["autogen_policy"] is False
    assert config["environment_variables"]["BUCKET_NAME"] == outputs["BucketName"]
    assert config["environment_variables"]["BACKDROP_APP_URL"] == "https://backdrop.example.com"
    # the ETA plans from the Map's concurrency: the Lambdas are told the one the workflow runs at
    assert config["environment_variables"]["BACKDROP_MAP_CONCURRENCY"] == "8"
    resources = cfn.describe_stacks(StackName=stack_name("dev", "resources"))["Stacks"][0]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in resources["Parameters"]}
    assert (parameters["ResultRetentionDays"], parameters["UploadRetentionDays"]) == ("14", "30")
    assert parameters["CorsAllowedOrigin"] == ""
    assert config["lambda_functions"]["prepare"]["iam_policy_file"] == "policy-dev-prepare.json"
    assert (deployer.chalice_dir / "policy-dev-api_handler.json").exists()
    role_policy = _client("iam", moto_server).list_roles()["Roles"]
    assert any("WorkflowRole" in r["RoleName"] for r in role_policy)
    # image children run as their budget needs (STANDARD), and the deploy says so
    workflow = cfn.describe_stacks(StackName=stack_name("dev", "workflow"))["Stacks"][0]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in workflow["Parameters"]}
    assert parameters["MapExecutionType"] == "STANDARD"
    assert any(line.startswith("image children run STANDARD") for line in deployer.said)
    # the stream's trigger cannot be poisoned: filtered, bounded, bisected, with a failure queue
    lambda_ = _client("lambda", moto_server)
    starter = lambda_.get_function(FunctionName=f"backdrop-dev-{stream_trigger.FUNCTION}")["Configuration"]
    mapping = lambda_.list_event_source_mappings(FunctionName=starter["FunctionArn"])["EventSourceMappings"]
    assert len(mapping) == 1 and mapping[0]["EventSourceArn"] == outputs["StreamArn"]
    assert mapping[0]["MaximumRetryAttempts"] == stream_trigger.MAXIMUM_RETRY_ATTEMPTS
    assert mapping[0]["BisectBatchOnFunctionError"] is True
    assert mapping[0]["DestinationConfig"]["OnFailure"]["Destination"] == outputs["StreamFailureQueueArn"]
    assert outputs["StreamFailureQueueArn"].endswith(":backdrop-dev-stream-failures")
    assert json.loads(mapping[0]["FilterCriteria"]["Filters"][0]["Pattern"]) == stream_trigger.JOB_INSERTS
    # a background task that failed every attempt is not dropped: it goes to its queue, with an alarm
    worker = lambda_.get_function(FunctionName="backdrop-dev-background_work")["Configuration"]["FunctionArn"]
    invoke_config = lambda_.get_function_event_invoke_config(FunctionName=worker)
    assert invoke_config["MaximumRetryAttempts"] == 2
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == outputs["BackgroundFailureQueueArn"]
    assert outputs["BackgroundFailureQueueArn"].endswith(":backdrop-dev-background-failures")
    assert config["environment_variables"]["WEBHOOK_FUNCTION_NAME"] == "backdrop-dev-send_webhook"
    # API Gateway's own errors answer {code, message, details}: an unknown route is a 404 NOT_FOUND
    apigateway = _client("apigateway", moto_server)
    api_id = apigateway.get_rest_apis()["items"][0]["id"]
    answers = {r["responseType"]: r for r in apigateway.get_gateway_responses(restApiId=api_id)["items"]}
    missing = answers["MISSING_AUTHENTICATION_TOKEN"]
    assert missing["statusCode"] == "404"
    assert json.loads(missing["responseTemplates"]["application/json"]) == {
        "code": "NOT_FOUND",
        "message": "no such route: see GET /openapi.json",
        "details": [],
    }
    assert '"code":"UNAUTHORIZED"' in answers["UNAUTHORIZED"]["responseTemplates"]["application/json"]
    assert apigateway.get_stages(restApiId=api_id)["item"][0]["stageName"] == "api"

    deployer.said.clear()
    deployer.deploy(email="", model="stability-inpaint", max_concurrency=8, settings=settings)
    assert "stack backdrop-dev-resources: no changes" in deployer.said
    assert "stack backdrop-dev-workflow: no changes" in deployer.said

    _client("s3", moto_server).put_object(Bucket=outputs["BucketName"], Key="uploads/u/x.png", Body=b"x")
    deployer.teardown()
    names = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert not [n for n in names if n.startswith("backdrop-dev-")]
    assert outputs["BucketName"] not in [b["Name"] for b in _client("s3", moto_server).list_buckets()["Buckets"]]
    assert outputs["TableName"] not in _client("dynamodb", moto_server).list_tables()["TableNames"]


def test_deploy_refuses_an_end_of_life_model(deployer: Deployer, moto_server: str) -> None:
    from backend.deploy import DeployError

    with pytest.raises(DeployError, match="end of life.*stability-inpaint"):
        deployer.deploy(email="", model="nova-canvas", max_concurrency=8)
    assert _client("cloudformation", moto_server).list_stacks()["StackSummaries"] == []


def test_deploy_refuses_a_region_the_profiles_cannot_be_called_from(on_moto: str, tmp_path: Path) -> None:
    from backend.deploy import DeployError

    deployer = Deployer(
        stage="dev",
        region="eu-west-1",
        session=boto3.Session(region_name="eu-west-1"),
        say=lambda _: None,
        project_dir=tmp_path,
    )
    with pytest.raises(DeployError, match="us-east-1, us-east-2, us-west-2 only, not eu-west-1"):
        deployer.deploy(email="", model="stability-inpaint", max_concurrency=8)
    cfn = boto3.client("cloudformation", endpoint_url=on_moto, region_name="eu-west-1")
    assert cfn.list_stacks()["StackSummaries"] == []


@pytest.mark.slow
def test_packaged_environment_and_iam_agree_for_a_model_id_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deploy's settings reach every packaged Lambda, and the ids the Lambdas will send are
    exactly the ones IAM allows (here: eu. profiles, deployed to eu-central-1)."""
    import os

    from backend import settings as deployment_settings
    from backend.regions import ModelRoutes, invoke_arns

    overrides = {
        "stability-inpaint": {
            "remove-background": "eu.stability.stable-image-remove-background-v1:0",
            "inpaint": "eu.stability.stable-image-inpaint-v1:0",
        }
    }
    settings = {"BACKDROP_MODEL_IDS": json.dumps(overrides), "BACKDROP_APP_URL": "https://app.example.com"}
    for name in deployment_settings.NAMES:  # what apply() sets, monkeypatch restores after the test
        monkeypatch.setenv(name, settings.get(name, ""))
    deployment_settings.apply(settings)
    region, account = "eu-central-1", "123456789012"

    class EuBedrock:
        def get_inference_profile(self, inferenceProfileIdentifier: str) -> dict[str, Any]:
            base = inferenceProfileIdentifier.split(".", 1)[1]
            arn = f"arn:aws:bedrock:{region}:{account}:inference-profile/{inferenceProfileIdentifier}"
            regions = ("eu-central-1", "eu-west-1", "eu-west-3")
            return {
                "inferenceProfileArn": arn,
                "models": [{"modelArn": f"arn:aws:bedrock:{r}::foundation-model/{base}"} for r in regions],
            }

    # the scene model is offered in us-west-2 only: in eu-central-1 the doctor warns and the deploy
    # routes the other models (scene backgrounds fail there, and say so)
    models = [m for m in registry.selectable_models() if m.role == "job"]
    granted = invoke_arns(ModelRoutes(EuBedrock(), region, account, "aws").for_models(models))
    deployer = Deployer(
        stage="dev", region=region, session=boto3.Session(region_name=region), project_dir=tmp_path / "project"
    )
    deployer.outputs.update(
        {
            **OUTPUTS,
            "TableName": "backdrop-dev-jobs",
            "UserPoolArn": f"arn:aws:cognito-idp:{region}:{account}:userpool/{region}_abc",
        }
    )
    env = deployer.build_project(deployer.stage_environment(account, "aws", settings), account, "aws", models, settings)

    out = tmp_path / "package"
    process_env = {
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "SSL_", "REQUESTS_"))},
        **env,
        "AWS_DEFAULT_REGION": region,
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package", "--stage", "dev", str(out)],
        cwd=deployer.project,
        env=process_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sam = json.loads((out / "sam.json").read_text())
    functions = {k: r for k, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert len(functions) == len(FUNCTIONS)
    for resource in functions.values():
        variables = resource["Properties"]["Environment"]["Variables"]
        assert variables["BACKDROP_MODEL_IDS"] == settings["BACKDROP_MODEL_IDS"]
        assert variables["BACKDROP_APP_URL"] == "https://app.example.com"

    # what a packaged Lambda resolves is what the workflow role may invoke, and nothing of us.
    monkeypatch.setenv(
        "BACKDROP_MODEL_IDS",
        next(iter(functions.values()))["Properties"]["Environment"]["Variables"]["BACKDROP_MODEL_IDS"],
    )
    sent = {model_id for spec in models for model_id in spec.model_ids.values()}
    assert sent == {ids for calls in overrides.values() for ids in calls.values()}
    for model_id in sent:
        assert f"arn:aws:bedrock:{region}:{account}:inference-profile/{model_id}" in granted
    assert not [arn for arn in granted if ":us-" in arn]
    # and the packaged Lambda roles ask Bedrock about the models in the deploy Region
    role_text = json.dumps([r for r in sam["Resources"].values() if r["Type"] == "AWS::IAM::Role"])
    assert f"arn:aws:bedrock:{region}::foundation-model/stability.stable-image-inpaint-v1:0" in role_text
    assert (
        "123456789012" in role_text
        and "arn:aws:states:eu-central-1:123456789012:stateMachine:backdrop-dev-workflow" in role_text
    )


def _resolve_ref(template: dict[str, Any], value: Any) -> dict[str, Any]:
    assert isinstance(value, dict) and "Ref" in value, value
    return template["Resources"][value["Ref"]]


def test_the_failed_workflow_alarm_publishes_to_a_topic_cloudwatch_may_use() -> None:
    """CloudWatch alarms cannot publish to a topic under alias/aws/sns: the alarm's topic is under
    a customer-managed key whose policy lets cloudwatch.amazonaws.com encrypt with it."""
    workflow = templates.workflow_template(8)
    alarm = workflow["Resources"]["FailedExecutionsAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopicArn"}]
    resources = templates.load("resources")
    topic = resources["Resources"]["AlarmTopic"]["Properties"]
    key = _resolve_ref(resources, topic["KmsMasterKeyId"])
    assert key["Type"] == "AWS::KMS::Key"
    granted = [
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement["Principal"].get("Service") == "cloudwatch.amazonaws.com" and statement["Effect"] == "Allow"
    ]
    assert granted and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(granted[0]["Action"])
    assert resources["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    # the users' job-email topics keep the AWS-managed key, which is fine for Step Functions' own role
    from backend import user_topics

    assert user_topics.TOPIC_ATTRIBUTES["KmsMasterKeyId"] == "alias/aws/sns"


def _role_statements() -> dict[str, dict[str, Any]]:
    role = templates.load("workflow")["Resources"]["WorkflowRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    return {s["Sid"]: s for s in role["Statement"]}


def test_workflow_role_may_redrive_its_map_children_and_list_map_runs_of_its_executions() -> None:
    statements = _role_statements()
    children = statements["DistributedMapChildExecutions"]
    assert "states:RedriveExecution" in children["Action"]
    assert children["Resource"]["Fn::Sub"].endswith(":execution:backdrop-${Stage}-workflow/*")
    listing = statements["ListMapRunsOfOwnExecutions"]
    assert listing["Action"] == "states:ListMapRuns"
    assert listing["Resource"]["Fn::Sub"].endswith(":execution:backdrop-${Stage}-workflow:*")
    assert "states:ListMapRuns" not in statements["DistributedMapRuns"]["Action"]


JOB = "20261125T000000Z-0123456789ab"
EXECUTION = f"arn:aws:states:us-east-2:123456789012:execution:backdrop-dev-workflow:{JOB}"


def _redriver(answer: dict[str, Any] | None, redrives: bool) -> tuple[Deployer, Any]:
    from botocore.stub import Stubber

    sts = boto3.client("sts", region_name="us-east-2")
    sfn = boto3.client("stepfunctions", region_name="us-east-2")
    sts_stub, sfn_stub = Stubber(sts), Stubber(sfn)
    sts_stub.add_response(
        "get_caller_identity", {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/d", "UserId": "A"}
    )
    if answer is None:
        sfn_stub.add_client_error("describe_execution", "ExecutionDoesNotExist", "no such execution", 400)
    else:
        started = datetime(2026, 11, 25, tzinfo=UTC)
        sfn_stub.add_response(
            "describe_execution",
            {"executionArn": EXECUTION, "stateMachineArn": "arn:aws:states:x", "startDate": started, **answer},
            {"executionArn": EXECUTION},
        )
    if redrives:
        sfn_stub.add_response("redrive_execution", {"redriveDate": datetime(2026, 11, 25, tzinfo=UTC)})
    sts_stub.activate()
    sfn_stub.activate()
    deployer = Deployer(stage="dev", region="us-east-2", session=boto3.Session(region_name="us-east-2"))
    deployer.client_overrides.update({"sts": sts, "stepfunctions": sfn})
    return deployer, sfn_stub


def test_redrive_continues_a_failed_execution() -> None:
    deployer, stub = _redriver({"status": "FAILED", "redriveStatus": "REDRIVABLE"}, redrives=True)
    assert "redriven" in deployer.redrive(JOB)
    stub.assert_no_pending_responses()


def test_redrive_of_a_succeeded_workflow_points_at_retry() -> None:
    deployer, stub = _redriver({"status": "SUCCEEDED", "redriveStatus": "NOT_REDRIVABLE"}, redrives=False)
    assert f"/jobs/{JOB}/retry" in deployer.redrive(JOB)


def test_redrive_refuses_what_step_functions_cannot_redrive_and_unknown_jobs() -> None:
    from backend.deploy import DeployError

    deployer, _ = _redriver(
        {"status": "FAILED", "redriveStatus": "NOT_REDRIVABLE", "redriveStatusReason": "older than 14 days"},
        redrives=False,
    )
    with pytest.raises(DeployError, match="older than 14 days"):
        deployer.redrive(JOB)
    deployer, _ = _redriver(None, redrives=False)
    with pytest.raises(DeployError, match="has no execution"):
        deployer.redrive(JOB)


# ------------------------------------------------------------------------------ teardown


def test_teardown_in_a_non_default_region_leaves_nothing_behind(on_moto: str, tmp_path: Path) -> None:
    moto_server, region = on_moto, "us-west-2"
    deployer = make_deployer(tmp_path, region)
    outputs = deployer.deploy(email="ops@example.com", model="stability-inpaint", max_concurrency=4)
    logs = _client("logs", moto_server, region)
    for function in (f.name for f in FUNCTIONS):  # Lambda creates these on first use
        logs.create_log_group(logGroupName=f"/aws/lambda/{resource_names.lambda_function('dev', function)}")
    logs.create_log_group(logGroupName="/aws/lambda/backdrop-dev2")  # another stage's: left alone
    _client("s3", moto_server, region).put_object(Bucket=outputs["BucketName"], Key="results/u/j/x.png", Body=b"x")

    deployer.teardown()

    assert deployer.deleted == [("dev", region, tmp_path / "project")]
    cfn = _client("cloudformation", moto_server, region)
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert live == []
    assert _client("s3", moto_server, region).list_buckets()["Buckets"] == []
    assert _client("dynamodb", moto_server, region).list_tables()["TableNames"] == []
    assert _client("cognito-idp", moto_server, region).list_user_pools(MaxResults=60)["UserPools"] == []
    groups = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert groups == ["/aws/lambda/backdrop-dev2"]
    assert not (tmp_path / "project").exists()


def test_teardown_reports_a_failed_chalice_delete_and_can_be_run_again(on_moto: str, tmp_path: Path) -> None:
    from backend.deploy import DeployError

    moto_server = on_moto
    deployer = make_deployer(tmp_path)
    outputs = deployer.deploy(email="", model="stability-inpaint", max_concurrency=4)

    def failing_delete(stage: str, region: str, project_dir: Path) -> None:
        raise subprocess.CalledProcessError(1, ["chalice", "delete"])

    deployer.run_chalice_delete = failing_delete  # type: ignore[method-assign]
    with pytest.raises(DeployError, match="chalice delete failed.*Lambdas, API and roles remain"):
        deployer.teardown()
    assert (tmp_path / "project" / ".chalice" / "deployed" / "dev.json").exists()  # kept for the re-run
    # everything else went; the bucket is found by its name although its stack is gone
    assert outputs["BucketName"] not in [b["Name"] for b in _client("s3", moto_server).list_buckets()["Buckets"]]

    deployer.run_chalice_delete = lambda stage, region, project_dir: None  # type: ignore[method-assign]
    deployer.teardown()
    assert not (tmp_path / "project").exists()


def test_resource_names_agree_with_the_templates() -> None:
    resources = templates.load("resources")["Resources"]
    assert resources["Bucket"]["Properties"]["BucketName"] == {
        "Fn::Sub": "backdrop-${Stage}-${AWS::AccountId}-${AWS::Region}"
    }
    assert resource_names.bucket("dev", "1", "r") == "backdrop-dev-1-r"
    assert resources["JobsTable"]["Properties"]["TableName"] == {"Fn::Sub": "backdrop-${Stage}-jobs"}
    assert resource_names.table("dev") == "backdrop-dev-jobs"
    pool = templates.load("auth")["Resources"]["UserPool"]["Properties"]["UserPoolName"]
    assert pool == {"Fn::Sub": "backdrop-${Stage}-users"} and resource_names.user_pool("dev") == "backdrop-dev-users"


def test_each_lambda_may_write_only_its_own_log_group() -> None:
    docs = policies.lambda_policies(OUTPUTS, "dev", "us-east-1", "123456789012", registry.selectable_models())
    for function, document in docs.items():
        own = document["Statement"][0]
        group = f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{resource_names.lambda_function('dev', function)}"
        assert own["Resource"] == [group, f"{group}:*"]
    assert resource_names.lambda_function("dev", "api_handler") == "backdrop-dev"  # chalice's name for it


def _stack(status: str, outputs: list[dict[str, str]] | None = None) -> dict[str, Any]:
    stack = {
        "StackName": "backdrop-dev-resources",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/backdrop-dev-resources/1",
        "CreationTime": datetime(2026, 11, 25, tzinfo=UTC),
        "StackStatus": status,
    }
    if outputs is not None:
        stack["Outputs"] = outputs
    return {"Stacks": [stack]}


def _stubbed_cfn_deployer() -> tuple[Deployer, Any]:
    from botocore.stub import Stubber

    cfn = boto3.client("cloudformation", region_name="us-east-1")
    stub = Stubber(cfn)
    stub.activate()
    deployer = Deployer(
        stage="dev",
        region="us-east-1",
        session=boto3.Session(region_name="us-east-1"),
        say=lambda _: None,
        client_overrides={"cloudformation": cfn},
    )
    return deployer, stub


def test_a_stack_left_in_rollback_complete_is_deleted_and_created_again() -> None:
    deployer, stub = _stubbed_cfn_deployer()
    stub.add_response("describe_stacks", _stack("ROLLBACK_COMPLETE"))
    stub.add_response("describe_stacks", _stack("ROLLBACK_COMPLETE"))  # _delete_stack looks again
    stub.add_response("delete_stack", {}, {"StackName": "backdrop-dev-resources"})
    stub.add_client_error("describe_stacks", "ValidationError", "Stack with id backdrop-dev-resources does not exist")
    stub.add_response("create_stack", {"StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/x/2"})
    stub.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
    stub.add_response("describe_stacks", _stack("CREATE_COMPLETE", [{"OutputKey": "BucketName", "OutputValue": "b"}]))
    assert deployer.deploy_stack("resources", templates.load("resources"), {"Stage": "dev"}) == {"BucketName": "b"}
    stub.assert_no_pending_responses()


def test_a_failed_create_names_the_failed_resource_and_the_way_out() -> None:
    from backend.deploy import DeployError

    deployer, stub = _stubbed_cfn_deployer()
    stub.add_client_error("describe_stacks", "ValidationError", "Stack with id backdrop-dev-resources does not exist")
    stub.add_response("create_stack", {"StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/x/2"})
    stub.add_response("describe_stacks", _stack("ROLLBACK_COMPLETE"))  # the waiter's failure state
    failed = {
        "StackId": "x",
        "EventId": "1",
        "StackName": "backdrop-dev-resources",
        "LogicalResourceId": "Bucket",
        "ResourceStatus": "CREATE_FAILED",
        "ResourceStatusReason": "backdrop-dev-123 already exists",
        "Timestamp": datetime(2026, 11, 25, tzinfo=UTC),
    }
    stub.add_response("describe_stack_events", {"StackEvents": [failed]})
    with pytest.raises(DeployError, match="Bucket: backdrop-dev-123 already exists.*ROLLBACK_COMPLETE"):
        deployer.deploy_stack("resources", templates.load("resources"), {"Stage": "dev"})


def test_teardown_survives_a_stack_that_will_not_delete() -> None:
    deployer, stub = _stubbed_cfn_deployer()
    problems: list[str] = []
    for _ in range(2):  # deleted, the waiter fails, tried once more
        stub.add_response("describe_stacks", _stack("DELETE_FAILED"))
        stub.add_response("delete_stack", {})
        stub.add_response("describe_stacks", _stack("DELETE_FAILED"))
        stub.add_response("describe_stack_events", {"StackEvents": []})
    deployer._delete_stack("resources", problems)
    assert problems and "could not be deleted" in problems[0]
    stub.assert_no_pending_responses()


def test_the_deploy_guide_documents_every_setting() -> None:
    from chalicelib.core.config import DEPLOYMENT_SETTINGS

    guide = (ROOT / "docs" / "deploy.md").read_text()
    missing = [s.name for s in DEPLOYMENT_SETTINGS if f"`{s.name}`" not in guide]
    assert missing == []


# ------------------------------------------------------------------------------ each user's own email


class _Claims:
    """The job store's side of a Notifier, for a publish without a table: every claim is granted."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    def claim_notification(self, job_id: str, sender: str, stale_before: str) -> bool:
        return True

    def set_notification(self, job_id: str, status: Any, sender: str, **details: str) -> None:
        self.recorded.append((job_id, status.value))


@pytest.mark.slow  # ~13 s of CPU: 250 users' topics: make test, not make test-fast
def test_create_user_gives_every_user_their_own_topic_past_the_200th(deployer: MotoDeployer, moto_server: str) -> None:
    """250 users made by create-user on moto with SNS's filter-policy quotas enforced (one shared
    topic with a filter policy per user was refused at the 201st): each has their own topic with
    one email subscription, to their own address, and no filter policy; the notifier's emails of
    the 201st's and the 250th's jobs reach their topics only; delete-user and teardown remove them."""
    deployer.deploy(email="ops@example.com", model="stability-inpaint", max_concurrency=8)
    cognito, sns, sqs = (_client(s, moto_server) for s in ("cognito-idp", "sns", "sqs"))
    pool_id = cognito.list_user_pools(MaxResults=10)["UserPools"][0]["Id"]
    real_output = deployer.stack_output
    deployer.stack_output = lambda kind, key: pool_id if kind == "auth" else real_output(kind, key)  # type: ignore[method-assign]
    addresses = [f"user{n}@example.com" for n in range(1, 251)]
    for address in addresses:  # one shared topic with a filter policy per user: refused at the 201st
        deployer.create_user(address, "User-password-2026!")
    from backend import user_topics
    from chalicelib.delivery.notify import NotificationSender, Notifier

    def sub_of(name: str) -> str:
        attributes = cognito.admin_get_user(UserPoolId=pool_id, Username=name)["UserAttributes"]
        return next(a["Value"] for a in attributes if a["Name"] == "sub")

    subs = {address: sub_of(address) for address in addresses}
    topics = set(user_topics.topics(sns, "dev"))
    assert topics == {f"arn:aws:sns:us-east-1:123456789012:backdrop-dev_user-{sub}" for sub in subs.values()}
    owners = {}
    for page in sns.get_paginator("list_subscriptions").paginate():
        for subscription in page["Subscriptions"]:
            if subscription["TopicArn"] not in topics:
                continue
            assert subscription["Protocol"] == "email" and subscription["TopicArn"] not in owners
            owners[subscription["TopicArn"]] = subscription["Endpoint"]
            attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
            assert "FilterPolicy" not in attributes
    assert owners == {contracts.user_topic_arn(_prefix(), sub): address for address, sub in subs.items()}
    # the topics are encrypted at rest like the stack's own
    some_topic = next(iter(topics))
    assert sns.get_topic_attributes(TopicArn=some_topic)["Attributes"]["KmsMasterKeyId"] == "alias/aws/sns"

    # what the topics do (moto delivers to SQS, not to email): an SQS queue beside three users'
    # addresses; the emails of the 201st's and the 250th's jobs reach their own, the first user's nothing
    watched = {address: addresses.index(address) for address in (addresses[0], addresses[200], addresses[249])}
    inboxes = {}
    for address in watched:
        url = sqs.create_queue(QueueName=f"inbox-{watched[address]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=contracts.user_topic_arn(_prefix(), subs[address]), Protocol="sqs", Endpoint=arn)
        inboxes[address] = url
    env = json.loads((deployer.chalice_dir / "config.json").read_text())["stages"]["dev"]["environment_variables"]
    assert env["USER_TOPIC_ARN_PREFIX"] == _prefix()
    notifier = Notifier(sns, _Claims(), env["USER_TOPIC_ARN_PREFIX"])  # type: ignore[arg-type]
    for address in (addresses[200], addresses[249]):
        sent = notifier.send_once(
            f"job-of-{address}", subs[address], f"for {address}", "m", NotificationSender.RECONCILER
        )
        assert sent == contracts.NotificationStatus.SENT
    received = {
        a: [json.loads(m["Body"])["Subject"] for m in sqs.receive_message(QueueUrl=u).get("Messages", [])]
        for a, u in inboxes.items()
    }
    assert received == {
        addresses[0]: [],
        addresses[200]: [f"for {addresses[200]}"],
        addresses[249]: [f"for {addresses[249]}"],
    }

    # delete-user takes the user's topic with them: a later job of theirs is NO_SUBSCRIPTION
    deployer.delete_user(addresses[200])
    assert contracts.user_topic_arn(_prefix(), subs[addresses[200]]) not in set(user_topics.topics(sns, "dev"))
    assert notifier.send_once("later", subs[addresses[200]], "s", "m", NotificationSender.RECONCILER) == (
        contracts.NotificationStatus.NO_SUBSCRIPTION
    )
    # teardown removes every user's topic
    deployer.teardown()
    assert list(user_topics.topics(sns, "dev")) == []


def _prefix() -> str:
    return resource_names.user_topic_arn_prefix("dev", "us-east-1", "123456789012", "aws")


def test_a_stage_with_the_old_shared_topic_moves_its_users_to_their_own(
    deployer: MotoDeployer, moto_server: str
) -> None:
    """A stage deployed before: one topic, one filtered email subscription per user. The deploy
    gives each of them their own topic before the stack update removes the old one."""
    from backend import user_topics

    sns = _client("sns", moto_server)
    old = sns.create_topic(Name="backdrop-dev-notifications")["TopicArn"]
    for n in range(3):
        sns.subscribe(
            TopicArn=old,
            Protocol="email",
            Endpoint=f"u{n}@example.com",
            Attributes={"FilterPolicy": json.dumps({"owner": [f"sub-{n}"]})},
        )
    deployer._legacy_job_topic = lambda: old  # type: ignore[method-assign]
    deployer.deploy(email="", model="stability-inpaint", max_concurrency=8)
    assert sorted(user_topics.sub_of("dev", t) for t in user_topics.topics(sns, "dev")) == ["sub-0", "sub-1", "sub-2"]
    assert any("3 user(s) moved to their own topic" in line for line in deployer.said)


def test_every_alarm_goes_to_the_alarm_topic_and_the_job_topic_has_no_fixed_subscriber() -> None:
    resources = templates.load("resources")["Resources"]
    subscriptions = [r for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]
    assert [s["Properties"]["TopicArn"] for s in subscriptions] == [{"Ref": "AlarmTopic"}]
    workflow = templates.workflow_template(8)["Resources"]
    alarms = {name: r for name, r in workflow.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"FailedExecutionsAlarm", "TimedOutExecutionsAlarm", "ReconcilerErrorsAlarm"} <= set(alarms)
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopicArn"}] for a in alarms.values())


def test_the_sweep_may_do_what_starting_a_job_needs() -> None:
    """The sweep starts a job left SUBMITTED with the starter's own code: its role must allow that
    start's calls (the manifest in the scratch space, StartExecution, StopExecution for a job
    cancelled while it started, the job's reads and writes)."""
    docs = policies.lambda_policies(OUTPUTS, "dev", "us-east-1", "123456789012", registry.selectable_models())

    def allowed(function: str) -> set[tuple[str, str]]:
        return {(a, r) for s in _statements(docs[function]) for a in s["Action"] for r in s["Resource"]}

    sweep = allowed("reconcile_sweep")
    machine = policies.state_machine_arn("us-east-1", "123456789012", "dev")
    assert ("states:StartExecution", machine) in sweep
    assert ("states:StopExecution", policies.execution_arns("us-east-1", "123456789012", "dev")) in sweep
    scratch = f"arn:aws:s3:::{OUTPUTS['BucketName']}/{contracts.SCRATCH_PREFIX}*"
    assert ("s3:PutObject", scratch) in sweep
    table = OUTPUTS["TableArn"]
    assert {("dynamodb:GetItem", table), ("dynamodb:Query", table), ("dynamodb:UpdateItem", table)} <= sweep
    # everything the starter's own role allows on S3, Step Functions and the table (not its stream:
    # that is the event source's reading), the sweep has too
    starter = {
        (a, r)
        for a, r in allowed("start_workflow")
        if a.split(":")[0] in ("s3", "states", "dynamodb") and "/stream/" not in r
    }
    assert starter <= sweep


def test_a_stuck_start_and_a_failing_starter_alarm_the_operator() -> None:
    """Nothing is left stuck silently: a message in the stream-failures queue, an error of the
    starter or of the sweep each alarm to the operator's alarm topic."""
    resources = templates.load("resources")["Resources"]
    queue = resources["StreamFailuresAlarm"]["Properties"]
    assert queue["Namespace"] == "AWS/SQS" and queue["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert queue["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["StreamFailureQueue", "QueueName"]}}]
    assert (queue["Threshold"], queue["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert queue["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    workflow = templates.workflow_template(8)["Resources"]
    for alarm, function in (("StarterErrorsAlarm", stream_trigger.FUNCTION), ("SweepErrorsAlarm", "reconcile_sweep")):
        properties = workflow[alarm]["Properties"]
        assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", "Errors")
        name = properties["Dimensions"][0]["Value"]["Fn::Sub"]
        assert name.replace("${Stage}", "dev") == resource_names.lambda_function("dev", function)
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopicArn"}]


def test_a_template_over_the_template_body_limit_reaches_cloudformation_through_s3(
    deployer: MotoDeployer, moto_server: str
) -> None:
    deployer.outputs.update(
        deployer.deploy_stack("resources", templates.load("resources"), deployer.resource_parameters("", {}))
    )
    big = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Metadata": {"Padding": "x" * 60_000},
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    }
    size = len(templates.to_json(big).encode())
    assert size > TEMPLATE_BODY_LIMIT
    cfn = _client("cloudformation", moto_server)
    # the emulated limit is CloudFormation's: this body in the request is refused
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="less than or equal to 51200"):
        deployer.cfn.create_stack(StackName="inline", TemplateBody=templates.to_json(big))
    deployer.deploy_stack("big", big, {})
    stack = cfn.describe_stacks(StackName=stack_name("dev", "big"))["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    deployed = cfn.get_template(StackName=stack_name("dev", "big"))["TemplateBody"]
    assert (deployed if isinstance(deployed, dict) else json.loads(deployed)) == big
    assert any(f"template {size:,} bytes, passed as TemplateURL" in line for line in deployer.said), deployer.said
    # the copy CloudFormation read is gone once the stack operation ended
    listed = _client("s3", moto_server).list_objects_v2(Bucket=deployer.outputs["BucketName"], Prefix=TEMPLATES_PREFIX)
    assert listed.get("KeyCount", 0) == 0
    # a change goes the same way; the same template again is left alone
    bigger = {**big, "Metadata": {"Padding": "y" * 70_000}}
    deployer.deploy_stack("big", bigger, {})
    deployed = cfn.get_template(StackName=stack_name("dev", "big"))["TemplateBody"]
    assert (deployed if isinstance(deployed, dict) else json.loads(deployed)) == bigger
    deployer.deploy_stack("big", bigger, {})
    assert deployer.said[-2:] == [
        f"stack backdrop-dev-big: template {len(templates.to_json(bigger).encode()):,} bytes, deployed already",
        "stack backdrop-dev-big: no changes",
    ]
    # every template's size is said, small ones sent in the request
    assert any("backdrop-dev-resources: template" in line and "sent in the request" in line for line in deployer.said)


def test_the_deploy_refuses_a_python_whose_runtime_is_past_its_end_of_life(tmp_path: Path, monkeypatch) -> None:
    """Chalice gives the Lambdas the runtime of the Python that runs it: the deploy runs it only
    under one whose runtime Lambda supports on Amazon Linux 2023, and says how to get one."""
    import backend.deploy as deploy_module
    from backend.errors import DeployError

    here = sys.version_info[:2]
    if f"python{here[0]}.{here[1]}" in runtime.SUPPORTED_RUNTIMES:
        assert runtime.require_supported(sys.executable) == f"python{here[0]}.{here[1]}"
        return
    monkeypatch.setenv(runtime.CHALICE_PYTHON_VARIABLE, sys.executable)  # this suite's Python: 3.11
    # refused before chalice runs (chalice on an empty project would fail with CalledProcessError)
    with pytest.raises(DeployError) as refused:
        deploy_module.run_chalice_deploy("dev", {}, "us-east-1", tmp_path)
    message = str(refused.value)
    assert f"would deploy python{here[0]}.{here[1]}" in message and "make deploy-env" in message
    assert runtime.CHALICE_PYTHON_VARIABLE in message
    # ... nor under something that cannot run chalice at all
    monkeypatch.setenv(runtime.CHALICE_PYTHON_VARIABLE, str(tmp_path / "no-python"))
    with pytest.raises(DeployError, match="cannot run chalice"):
        deploy_module.run_chalice_deploy("dev", {}, "us-east-1", tmp_path)
