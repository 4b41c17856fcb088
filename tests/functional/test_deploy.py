"""Deploy tooling: templates lint clean, policies stay least-privilege, deploy/teardown on moto."""

from __future__ import annotations

import ast
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

from backend import policies, resource_names, stream_trigger, templates
from backend.deploy import ChaliceResult, Deployer, stack_name
from chalicelib import contracts
from chalicelib.functions import FUNCTIONS, WORKFLOW_FUNCTIONS
from chalicelib.models import registry

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "BucketName": "backdrop-dev-123456789012-us-east-1",
    "TableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/backdrop-dev-jobs",
    "StreamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/backdrop-dev-jobs/stream/2026-01-01T00:00:00.000",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:backdrop-dev-notifications",
    "StreamFailureQueueArn": "arn:aws:sqs:us-east-1:123456789012:backdrop-dev-stream-failures",
}


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    return subprocess.run([str(cfn_lint), str(path)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", templates.STACKS)
def test_templates_are_cfn_lint_clean(kind: str, tmp_path: Path) -> None:
    template = templates.workflow_template(8) if kind == "workflow" else templates.load(kind)
    path = tmp_path / f"{kind}.json"
    path.write_text(templates.to_json(template))
    result = _cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


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
        "NotificationTopicArn",
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
            ".venv", ".git", "tests", "test-artifacts", "docs", "samples", "*.pyc", "deployments"
        ),
    )
    queue_arn = "arn:aws:sqs:us-east-1:123456789012:backdrop-dev-stream-failures"
    merge = tmp_path / "stream-trigger.json"
    merge.write_text(json.dumps(stream_trigger.merge_template(queue_arn)))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "chalice"),
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
    # the packaged stream trigger carries what Chalice cannot set, and nothing was merged beside it
    sam = json.loads((out / "sam.json").read_text())
    trigger = sam["Resources"][stream_trigger.FUNCTION_LOGICAL_ID]["Properties"]["Events"]
    assert list(trigger) == [stream_trigger.EVENT_LOGICAL_ID]
    properties = trigger[stream_trigger.EVENT_LOGICAL_ID]["Properties"]
    assert properties["Stream"].startswith("arn:aws:dynamodb:") and properties["BatchSize"] == 10
    assert properties["MaximumRetryAttempts"] == stream_trigger.MAXIMUM_RETRY_ATTEMPTS
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["DestinationConfig"]["OnFailure"] == {"Destination": queue_arn}
    assert json.loads(properties["FilterCriteria"]["Filters"][0]["Pattern"]) == stream_trigger.JOB_INSERTS
    size = (out / "deployment.zip").stat().st_size
    # well inside Lambda's 50 MB direct-upload limit; numpy (compositing, scoring) is 16.8 MB of it
    # (docs/aws-notes.md#n36-numpy-wheels-and-the-lambda-package)
    assert size < 30 * 1024 * 1024, f"package is {size / 2**20:.1f} MB"


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
    # API (small ones, within the request) and the archive builder
    assert writers == {"finalize", "api_handler", "build_archive"}
    deleters = {
        (n, r)
        for n, d in docs.items()
        for s in _statements(d)
        for r in s["Resource"]
        if "s3:DeleteObject" in s["Action"]
    }
    # a workflow step deletes only an image's scratch (finalize, once it SUCCEEDED); the deleter a
    # large job's files (the API's DELETE, in the background): the same prefixes as the API
    assert {(n, r) for n, r in deleters if n not in ("api_handler", "delete_job_data")} == {
        ("finalize", f"arn:aws:s3:::{OUTPUTS['BucketName']}/{contracts.SCRATCH_PREFIX}*")
    }
    assert {r for n, r in deleters if n == "delete_job_data"} == {r for n, r in deleters if n == "api_handler"}
    starters = {n for n, d in docs.items() for s in _statements(d) if "states:StartExecution" in s["Action"]}
    assert starters == {"start_workflow"}
    # only the API and its deleter delete (a job's files on DELETE); the API stops executions
    # (cancel), and so does the starter for a job cancelled while it started; the webhook sender
    # is started only where no workflow step is left to run it (a cancel, a job the reconciler closed)
    deleters = {n for n, d in docs.items() for s in _statements(d) if "s3:DeleteObject" in s["Action"]}
    assert deleters == {"api_handler", "finalize", "delete_job_data"}
    stoppers = {n: s for n, d in docs.items() for s in _statements(d) if "states:StopExecution" in s["Action"]}
    assert set(stoppers) == {"api_handler", "start_workflow"}
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
    assert set(invokers) == {"api_handler", "reconcile", "reconcile_sweep", "delete_job_data", "finalize"}
    sender = ["arn:aws:lambda:us-east-1:123456789012:function:backdrop-dev-send_webhook"]
    builder = ["arn:aws:lambda:us-east-1:123456789012:function:backdrop-dev-build_archive"]
    closer = ["arn:aws:lambda:us-east-1:123456789012:function:backdrop-dev-reconcile"]
    deleter = ["arn:aws:lambda:us-east-1:123456789012:function:backdrop-dev-delete_job_data"]
    # each may start only the webhook sender; the API also the archive builder, the reconciler (a
    # large cancelled job's closing) and the deleter (a large job's delete), which the deleter
    # itself (to go on) and the sweep (a stranded delete) may start too
    assert all(s["Resource"] in (sender, builder, closer, deleter) for s in invokers.values())
    api_invokes = [s["Resource"] for s in _statements(docs["api_handler"]) if "lambda:InvokeFunction" in s["Action"]]
    assert sorted(api_invokes) == sorted([sender, builder, closer, deleter])

    def invokes(name: str) -> list[list[str]]:
        return [s["Resource"] for s in _statements(docs[name]) if "lambda:InvokeFunction" in s["Action"]]

    assert invokes("delete_job_data") == [deleter]
    # a regeneration added to a large finished job: its report rewrite, by the reconciler's function
    assert invokes("finalize") == [closer]
    assert sorted(invokes("reconcile_sweep")) == sorted([sender, deleter])


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

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    import requests

    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    yield endpoint
    server.stop()


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


@dataclass
class MotoDeployer(Deployer):
    """The real deployer, but the auth stack is made through the Cognito API: moto's CloudFormation
    has no Cognito (docs/aws-notes.md#n25-moto-cloudformation); cfn-lint checks auth.yaml."""

    said: list[str] = field(default_factory=list)
    deleted: list[tuple[str, str, Path]] = field(default_factory=list)  # `chalice delete` calls

    def __post_init__(self) -> None:
        self.say = self.said.append
        self.session.events.register("after-call.cloudformation.DescribeStacks", _echo_lists_as_cloudformation_does)
        super().__post_init__()

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
    # the job-report topic keeps the AWS-managed key, which is fine for Step Functions' own role
    assert resources["Resources"]["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"


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
    from chalicelib.config import DEPLOYMENT_SETTINGS

    guide = (ROOT / "docs" / "deploy.md").read_text()
    missing = [s.name for s in DEPLOYMENT_SETTINGS if f"`{s.name}`" not in guide]
    assert missing == []


# ------------------------------------------------------------------------------ each user's own email


def test_create_user_subscribes_the_user_to_their_own_job_emails_only(deployer: MotoDeployer, moto_server: str) -> None:
    from chalicelib.notify import owner_attributes

    outputs = deployer.deploy(email="ops@example.com", model="stability-inpaint", max_concurrency=8)
    cognito, sns, sqs = (_client(s, moto_server) for s in ("cognito-idp", "sns", "sqs"))
    pool_id = cognito.list_user_pools(MaxResults=10)["UserPools"][0]["Id"]
    real_output = deployer.stack_output
    deployer.stack_output = lambda kind, key: pool_id if kind == "auth" else real_output(kind, key)  # type: ignore[method-assign]
    deployer.create_user("ann@example.com", "Ann-password-2026!")
    deployer.create_user("bob@example.com", "Bob-password-2026!")

    def sub_of(name: str) -> str:
        attributes = cognito.admin_get_user(UserPoolId=pool_id, Username=name)["UserAttributes"]
        return next(a["Value"] for a in attributes if a["Name"] == "sub")

    ann, bob = sub_of("ann@example.com"), sub_of("bob@example.com")
    job_topic = sns.list_subscriptions_by_topic(TopicArn=outputs["TopicArn"])["Subscriptions"]
    filters = {}
    for subscription in job_topic:
        assert subscription["Protocol"] == "email"
        attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
        assert attributes.get("FilterPolicyScope", "MessageAttributes") == "MessageAttributes"
        filters[subscription["Endpoint"]] = json.loads(attributes["FilterPolicy"])
    # each user, filtered on their own sub; the deployer's address is not on the job topic
    assert filters == {"ann@example.com": {"owner": [ann]}, "bob@example.com": {"owner": [bob]}}
    # (the alarm subscription is an AWS::SNS::Subscription, which moto's CloudFormation does not
    # create; the template test below checks it)

    # what those filter policies do (moto delivers to SQS, not to email): the same policies on two
    # inboxes; a job email published for Ann reaches Ann's inbox only, one without owner nobody's
    inboxes = {}
    for sub in (ann, bob):
        url = sqs.create_queue(QueueName=f"inbox-{sub[:8]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps(contracts.owner_filter_policy(sub))
        sns.subscribe(TopicArn=outputs["TopicArn"], Protocol="sqs", Endpoint=arn, Attributes={"FilterPolicy": policy})
        inboxes[sub] = url
    sns.publish(TopicArn=outputs["TopicArn"], Subject="no owner", Message="reaches nobody")
    sns.publish(TopicArn=outputs["TopicArn"], Subject="yours", Message="m", MessageAttributes=owner_attributes(ann))
    received = {sub: sqs.receive_message(QueueUrl=url).get("Messages", []) for sub, url in inboxes.items()}
    assert [json.loads(m["Body"])["Subject"] for m in received[ann]] == ["yours"]
    assert received[bob] == []


def test_every_alarm_goes_to_the_alarm_topic_and_the_job_topic_has_no_fixed_subscriber() -> None:
    resources = templates.load("resources")["Resources"]
    subscriptions = [r for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]
    assert [s["Properties"]["TopicArn"] for s in subscriptions] == [{"Ref": "AlarmTopic"}]
    workflow = templates.workflow_template(8)["Resources"]
    alarms = {name: r for name, r in workflow.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"FailedExecutionsAlarm", "TimedOutExecutionsAlarm", "ReconcilerErrorsAlarm"} <= set(alarms)
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopicArn"}] for a in alarms.values())
