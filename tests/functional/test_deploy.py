"""Deploy tooling: templates lint clean, policies stay least-privilege, deploy/teardown on moto."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from backend import policies, templates
from backend.deploy import ChaliceResult, Deployer, stack_name
from chalicelib import contracts
from chalicelib.functions import FUNCTIONS, WORKFLOW_FUNCTIONS
from chalicelib.models import registry

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "BucketName": "backdrop-dev-123456789012-us-east-1",
    "TableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/backdrop-dev-jobs",
    "StreamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/backdrop-dev-jobs/stream/2026-01-01T00:00:00.000",
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
    result = subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package", "--stage", "dev", str(out)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lint = _cfn_lint(out / "sam.json")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    size = (out / "deployment.zip").stat().st_size
    assert size < 20 * 1024 * 1024, f"package is {size / 2**20:.1f} MB"


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
                assert actions == ["rekognition:DetectLabels"], (name, statement)
            for resource in statement["Resource"]:
                if resource == f"arn:aws:s3:::{OUTPUTS['BucketName']}":  # listing, only under uploads/
                    assert actions == ["s3:ListBucket"] and statement["Condition"]["StringLike"]["s3:prefix"] == [
                        "uploads/*"
                    ]
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
    assert writers == {"finalize"}
    starters = {n for n, d in docs.items() for s in _statements(d) if "states:StartExecution" in s["Action"]}
    assert starters == {"start_workflow"}


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


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def _echo_lists_as_cloudformation_does(parsed: dict[str, Any], **_: Any) -> None:
    """moto echoes a CommaDelimitedList parameter as "['a', 'b']" where CloudFormation echoes "a,b"
    (docs/aws-notes.md#n25-moto-cloudformation): the deploy is shown what AWS would return."""
    for stack in parsed.get("Stacks", []):
        for parameter in stack.get("Parameters", []):
            value = parameter.get("ParameterValue", "")
            if value.startswith("[") and value.endswith("]"):
                parameter["ParameterValue"] = ",".join(str(v) for v in ast.literal_eval(value))


@dataclass
class MotoDeployer(Deployer):
    """The real deployer, but the auth stack is made through the Cognito API: moto's CloudFormation
    has no Cognito (docs/aws-notes.md#n25-moto-cloudformation); cfn-lint checks auth.yaml."""

    said: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.say = self.said.append
        self.session.events.register("after-call.cloudformation.DescribeStacks", _echo_lists_as_cloudformation_does)
        super().__post_init__()

    def deploy_auth(self) -> dict[str, str]:
        cognito = self.client("cognito-idp")
        pool = cognito.create_user_pool(PoolName="backdrop-dev-users")["UserPool"]
        client = cognito.create_user_pool_client(UserPoolId=pool["Id"], ClientName="backdrop-dev-app")["UserPoolClient"]
        return {"UserPoolId": pool["Id"], "UserPoolArn": pool["Arn"], "UserPoolClientId": client["ClientId"]}


@pytest.fixture
def deployer(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MotoDeployer:
    chalice_dir = tmp_path / ".chalice"
    chalice_dir.mkdir()
    shutil.copy(ROOT / ".chalice" / "config.json", chalice_dir / "config.json")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)  # the SDK's own setting, as on a real machine

    def fake_chalice(stage: str, env: dict[str, str], region: str) -> ChaliceResult:
        # `chalice deploy` itself is not run on moto: it builds a Lambda package and drives
        # API Gateway and Lambda APIs moto only partly has; everything around it is real.
        assert env["STATE_MACHINE_ARN"] == policies.state_machine_arn(region, "123456789012", stage)
        arns = {
            f.name: f"arn:aws:lambda:{region}:123456789012:function:backdrop-{stage}-{f.name}"
            for f in WORKFLOW_FUNCTIONS
        }
        return ChaliceResult(f"https://example.execute-api.{region}.amazonaws.com/api/", arns)

    return MotoDeployer(
        stage="dev",
        region="us-east-1",
        session=boto3.Session(region_name="us-east-1"),
        run_chalice=fake_chalice,
        chalice_dir=chalice_dir,
    )


def test_deploy_then_redeploy_then_teardown_on_moto(deployer: MotoDeployer, moto_server: str) -> None:
    outputs = deployer.deploy(email="", model="stability-inpaint", max_concurrency=8)
    cfn = _client("cloudformation", moto_server)
    for kind in ("resources", "workflow"):
        assert cfn.describe_stacks(StackName=stack_name("dev", kind))["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert outputs["BucketName"] == "backdrop-dev-123456789012-us-east-1"
    table = _client("dynamodb", moto_server).describe_table(TableName=outputs["TableName"])["Table"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    config = json.loads((deployer.chalice_dir / "config.json").read_text())["stages"]["dev"]
    assert config["autogen_policy"] is False
    assert config["environment_variables"]["BUCKET_NAME"] == outputs["BucketName"]
    assert config["lambda_functions"]["prepare"]["iam_policy_file"] == "policy-dev-prepare.json"
    assert (deployer.chalice_dir / "policy-dev-api_handler.json").exists()
    role_policy = _client("iam", moto_server).list_roles()["Roles"]
    assert any("WorkflowRole" in r["RoleName"] for r in role_policy)

    deployer.said.clear()
    deployer.deploy(email="", model="stability-inpaint", max_concurrency=8)
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
