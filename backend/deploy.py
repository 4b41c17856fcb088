"""Deploy Backdrop to your AWS account with one command; tear it down with one.

  python -m backend.deploy deploy --stage dev --region us-east-1 [--email you@example.com]
                                  [--model stability-inpaint] [--max-concurrency 8]
  python -m backend.deploy create-user --stage dev --region us-east-1 --email someone@example.com
  python -m backend.deploy teardown --stage dev --region us-east-1 [--yes]

deploy: checks credentials and the model's access and lifecycle, deploys the resources and
auth stacks, runs `chalice deploy` with their outputs as the stage's environment and
hand-written per-function policies, then deploys the workflow stack wired to the Lambda ARNs.
Re-running it updates in place; a stack whose template and parameters did not change is left
alone. See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError, NoCredentialsError

from backend import chalice_config, policies, templates
from chalicelib.functions import WORKFLOW_FUNCTIONS
from chalicelib.models import registry
from chalicelib.models.base import LifecycleStatus, ModelSpec
from chalicelib.models.lifecycle import LifecycleChecker

ROOT = Path(__file__).resolve().parents[1]
CHALICE_DIR = ROOT / ".chalice"


class DeployError(Exception):
    pass


def stack_name(stage: str, kind: str) -> str:
    return f"backdrop-{stage}-{kind}"


def _chalice() -> str:
    """The chalice command of this environment (it has no `python -m chalice`)."""
    return str(Path(sys.executable).parent / "chalice")


@dataclass
class ChaliceResult:
    api_url: str
    function_arns: dict[str, str]


def run_chalice_deploy(stage: str, env: dict[str, str], region: str) -> ChaliceResult:
    """`chalice deploy`, then the ARNs it recorded in .chalice/deployed/<stage>.json."""
    process_env = {**os.environ, **env, "AWS_DEFAULT_REGION": region}
    subprocess.run([_chalice(), "deploy", "--stage", stage], cwd=ROOT, env=process_env, check=True)
    deployed = json.loads((CHALICE_DIR / "deployed" / f"{stage}.json").read_text())
    arns: dict[str, str] = {}
    api_url = ""
    for resource in deployed["resources"]:
        if resource.get("resource_type") == "lambda_function":
            arns[resource["name"]] = resource["lambda_arn"]
        if resource.get("resource_type") == "rest_api":
            api_url = resource["rest_api_url"]
    return ChaliceResult(api_url, {name: arn for name, arn in arns.items()})


@dataclass
class Deployer:
    stage: str
    region: str
    session: Any = None
    say: Callable[[str], None] = print
    run_chalice: Callable[[str, dict[str, str], str], ChaliceResult] = run_chalice_deploy
    chalice_dir: Path = CHALICE_DIR
    outputs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.session = self.session or boto3.Session(region_name=self.region)
        self.cfn = self.client("cloudformation")

    def client(self, service: str) -> Any:
        return self.session.client(service)

    # ---------------------------------------------------------------- checks

    def account(self) -> str:
        try:
            return self.client("sts").get_caller_identity()["Account"]
        except (NoCredentialsError, ClientError) as exc:
            raise DeployError(f"no usable AWS credentials for {self.region}: {exc}") from exc

    def check_model(self, key: str) -> ModelSpec:
        spec = registry.get_model(key)
        lifecycle, source = LifecycleChecker(self.client("bedrock")).lifecycle(spec)
        usable = ", ".join(m.key for m in registry.selectable_models())
        if not registry.is_selectable(spec, lifecycle):
            raise DeployError(
                f"model {key} reached end of life ({lifecycle.eol_date or 'date not recorded'}); usable models: {usable}"
            )
        if lifecycle.status is LifecycleStatus.LEGACY:
            self.say(
                f"warning: {key} is Legacy and reaches end of life on {lifecycle.eol_date}; plan a move to: {usable}"
            )
        if source != "bedrock":
            self.say(f"note: could not read {key}'s lifecycle from Bedrock here ({source}); using the recorded state")
        return spec

    # ---------------------------------------------------------------- stacks

    def _current(self, name: str) -> dict[str, Any] | None:
        try:
            stack = self.cfn.describe_stacks(StackName=name)["Stacks"][0]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return None if stack["StackStatus"] == "DELETE_COMPLETE" else stack

    def deploy_stack(self, kind: str, template: dict[str, Any], parameters: dict[str, str]) -> dict[str, str]:
        name = stack_name(self.stage, kind)
        body = templates.to_json(template)
        params = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())]
        current = self._current(name)
        common = {
            "StackName": name,
            "TemplateBody": body,
            "Parameters": params,
            "Capabilities": ["CAPABILITY_IAM"],
            "Tags": [{"Key": "app", "Value": "backdrop"}, {"Key": "stage", "Value": self.stage}],
        }
        if current is None:
            self.say(f"creating stack {name} ...")
            self.cfn.create_stack(**common)
            self.cfn.get_waiter("stack_create_complete").wait(
                StackName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 360}
            )
        elif self._unchanged(name, body, params, current):
            self.say(f"stack {name}: no changes")
        else:
            self.say(f"updating stack {name} ...")
            try:
                self.cfn.update_stack(**common)
            except ClientError as exc:
                if "No updates are to be performed" not in str(exc):
                    raise
            else:
                self.cfn.get_waiter("stack_update_complete").wait(
                    StackName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 360}
                )
        stack = self.cfn.describe_stacks(StackName=name)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def _unchanged(self, name: str, body: str, params: list[dict[str, str]], current: dict[str, Any]) -> bool:
        deployed = self.cfn.get_template(StackName=name)["TemplateBody"]
        deployed_text = deployed if isinstance(deployed, str) else json.dumps(deployed)
        try:
            same_template = json.loads(deployed_text) == json.loads(body)
        except ValueError:
            same_template = False
        # deployed parameters include the template's defaults for those not passed
        deployed_params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in current.get("Parameters", [])}
        return same_template and all(deployed_params.get(p["ParameterKey"]) == p["ParameterValue"] for p in params)

    # ---------------------------------------------------------------- the whole deploy

    def write_chalice_config(self, env: dict[str, str], account: str, models: list[ModelSpec]) -> None:
        config_path = self.chalice_dir / "config.json"
        config = json.loads(config_path.read_text())
        stage = config["stages"].setdefault(self.stage, {"api_gateway_stage": "api"})
        stage["environment_variables"] = env
        stage["autogen_policy"] = False
        functions = chalice_config.apply_function_settings(stage)["lambda_functions"]
        for name, document in policies.lambda_policies(self.outputs, self.stage, self.region, account, models).items():
            file_name = f"policy-{self.stage}-{name}.json"
            (self.chalice_dir / file_name).write_text(json.dumps(document, indent=2))
            functions.setdefault(name, {})["iam_policy_file"] = file_name
        config_path.write_text(chalice_config.render(config))

    def deploy(self, *, email: str, model: str, max_concurrency: int) -> dict[str, str]:
        account = self.account()
        self.say(f"deploying Backdrop stage {self.stage} to account {account} in {self.region}")
        spec = self.check_model(model)
        self.outputs.update(
            self.deploy_stack(
                "resources", templates.load("resources"), {"Stage": self.stage, "NotificationEmail": email}
            )
        )
        self.outputs.update(self.deploy_auth())
        env = {
            "BUCKET_NAME": self.outputs["BucketName"],
            "JOBS_TABLE_NAME": self.outputs["TableName"],
            "JOBS_STREAM_ARN": self.outputs["StreamArn"],
            "STATE_MACHINE_ARN": policies.state_machine_arn(self.region, account, self.stage),
            "USER_POOL_ARN": self.outputs["UserPoolArn"],
        }
        self.write_chalice_config(env, account, registry.selectable_models() or [spec])
        chalice = self.run_chalice(self.stage, env, self.region)
        missing = [f.name for f in WORKFLOW_FUNCTIONS if f.name not in chalice.function_arns]
        if missing:
            raise DeployError(f"chalice deploy did not report the workflow functions {missing}")
        parameters = {
            "Stage": self.stage,
            "BucketName": self.outputs["BucketName"],
            "NotificationTopicArn": self.outputs["TopicArn"],
            "ModelResourceArns": ",".join(
                sorted(
                    {
                        arn
                        for m in registry.selectable_models() or [spec]
                        for arn in policies.model_resource_arns(m, self.region, account)
                    }
                )
            ),
            **{f.arn_placeholder: chalice.function_arns[f.name] for f in WORKFLOW_FUNCTIONS},
        }
        self.outputs.update(self.deploy_stack("workflow", templates.workflow_template(max_concurrency), parameters))
        self.outputs["ApiUrl"] = chalice.api_url
        return self.outputs

    def deploy_auth(self) -> dict[str, str]:
        return self.deploy_stack("auth", templates.load("auth"), {"Stage": self.stage})

    # ---------------------------------------------------------------- users and teardown

    def create_user(self, email: str, password: str | None) -> None:
        outputs = self.cfn.describe_stacks(StackName=stack_name(self.stage, "auth"))["Stacks"][0]["Outputs"]
        pool_id = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "UserPoolId")
        cognito = self.client("cognito-idp")
        attributes = [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}]
        if password:
            cognito.admin_create_user(
                UserPoolId=pool_id, Username=email, UserAttributes=attributes, MessageAction="SUPPRESS"
            )
            cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
        else:  # Cognito emails a temporary password; the user sets their own at first sign-in
            cognito.admin_create_user(
                UserPoolId=pool_id, Username=email, UserAttributes=attributes, DesiredDeliveryMediums=["EMAIL"]
            )

    def teardown(self) -> None:
        resources = self._current(stack_name(self.stage, "resources"))
        outputs = {o["OutputKey"]: o["OutputValue"] for o in (resources or {}).get("Outputs", [])}
        auth = self._current(stack_name(self.stage, "auth"))
        auth_outputs = {o["OutputKey"]: o["OutputValue"] for o in (auth or {}).get("Outputs", [])}
        self._delete_stack("workflow")
        if (self.chalice_dir / "deployed" / f"{self.stage}.json").exists():
            subprocess.run([_chalice(), "delete", "--stage", self.stage], cwd=ROOT, check=False)
        self._delete_stack("auth")
        self._delete_stack("resources")
        # the stateful resources are Retain (no accidental loss); teardown removes them on purpose
        if outputs.get("BucketName"):
            self._empty_and_delete_bucket(outputs["BucketName"])
        if outputs.get("TableName"):
            self.client("dynamodb").delete_table(TableName=outputs["TableName"])
        if auth_outputs.get("UserPoolId"):
            self.client("cognito-idp").delete_user_pool(UserPoolId=auth_outputs["UserPoolId"])
        self.say(f"Backdrop stage {self.stage} removed from {self.region}")

    def _delete_stack(self, kind: str) -> None:
        name = stack_name(self.stage, kind)
        if self._current(name) is None:
            return
        self.say(f"deleting stack {name} ...")
        self.cfn.delete_stack(StackName=name)
        self.cfn.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 360})

    def _empty_and_delete_bucket(self, bucket: str) -> None:
        s3 = self.client("s3")
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for start in range(0, len(doomed), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True})
        s3.delete_bucket(Bucket=bucket)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend.deploy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("deploy", "create-user", "teardown"):
        p = sub.add_parser(name)
        p.add_argument("--stage", default="dev")
        p.add_argument(
            "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        )
        if name == "deploy":
            p.add_argument("--email", default="", help="where job-finished emails go (confirm the subscription)")
            p.add_argument("--model", default=registry.default_model_key())
            p.add_argument(
                "--max-concurrency",
                type=int,
                default=8,
                help="parallel images; derive it from your Bedrock quota (docs/deploy.md)",
            )
        if name == "create-user":
            p.add_argument("--email", required=True)
            p.add_argument("--password-stdin", action="store_true")
        if name == "teardown":
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    deployer = Deployer(stage=args.stage, region=args.region)
    try:
        if args.command == "deploy":
            out = deployer.deploy(email=args.email, model=args.model, max_concurrency=args.max_concurrency)
            print(
                f"\nBackdrop is deployed.\n  API:          {out['ApiUrl']}\n  User pool:    {out['UserPoolId']}\n"
                f"  App client:   {out['UserPoolClientId']}\n  Bucket:       {out['BucketName']}\n"
                f"Next: python -m backend.deploy create-user --stage {args.stage} --region {args.region} --email you@example.com"
                + ("\nConfirm the SNS subscription email to receive job reports." if args.email else "")
            )
        elif args.command == "create-user":
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
            deployer.create_user(args.email, password)
            print(f"user {args.email} created" + ("" if password else "; Cognito emails a temporary password"))
        else:
            if not args.yes:
                answer = input(
                    f"Delete Backdrop stage {args.stage} in {args.region}, including every image, result and job? [y/N] "
                )
                if answer.strip().lower() not in ("y", "yes"):
                    print("nothing deleted")
                    return 1
            deployer.teardown()
    except (DeployError, ClientError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
