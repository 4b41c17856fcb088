"""Deploy Backdrop to your AWS account with one command; tear it down with one.

  python -m backend.deploy doctor --stage dev --region us-east-1 [--smoke models|workflow] [--yes] [--keep]
  python -m backend.deploy deploy --stage dev --region us-east-1 [--email you@example.com]
                                  [--model stability-inpaint] [--max-concurrency N]
  python -m backend.deploy create-user --stage dev --region us-east-1 --email someone@example.com
  python -m backend.deploy subscribe-user --stage dev --region us-east-1 --email someone@example.com
  python -m backend.deploy delete-user --stage dev --region us-east-1 --email someone@example.com
  python -m backend.deploy redrive JOB --stage dev --region us-east-1
  python -m backend.deploy teardown --stage dev --region us-east-1 [--yes]

doctor: checks what the deployment needs from the account (backend/doctor.py) and prints a
table with the fix for each ✗. deploy: runs the same checks first and stops on any ✗; then
deploys the resources and
auth stacks, runs `chalice deploy` with their outputs as the stage's environment and
hand-written per-function policies, then deploys the workflow stack wired to the Lambda ARNs.
Re-running it updates in place; a stack whose template and parameters did not change is left
alone. See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, WaiterError

from backend import (
    gateway_responses,
    policies,
    project,
    resource_names,
    runtime,
    statemachine,
    stream_trigger,
    templates,
    user_topics,
    webapp,
)
from backend import settings as deployment_settings
from backend.doctor import DEFAULT_MAX_CONCURRENCY, Doctor, Findings, format_findings, models_for_deployment
from backend.errors import DeployError
from backend.regions import invoke_arns, partition_for_region, partition_of_arn
from chalicelib.core import contracts, eta
from chalicelib.core.functions import BACKGROUND_WORKER, WEBHOOK_SENDER, WORKFLOW_FUNCTIONS
from chalicelib.models import registry
from chalicelib.models.base import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


__all__ = ["ChaliceResult", "DeployError", "Deployer", "main", "stack_name"]
# what AWS answers when the thing to delete is already gone
_GONE = frozenset(
    {"NoSuchBucket", "ResourceNotFoundException", "ResourceNotFound", "UserPoolNotFound", "NotFoundException"}
)


# CloudFormation takes a template in the request (TemplateBody) up to 51,200 bytes, or from S3
# (TemplateURL) up to 1 MB (docs/aws-notes.md#n77-cloudformation-template-size-limits). A
# template over INLINE_TEMPLATE_MAX_BYTES goes through the stage's bucket: a margin below the
# hard limit, so the S3 path is the one a growing template already takes (the workflow template,
# about 44 KB with its state machine, does), long before an edit could make a deploy fail.
TEMPLATE_BODY_LIMIT: Final = 51_200
# Lambda's asynchronous retries of a failed background task (0-2; two is Lambda's default, kept
# explicit): docs/aws-notes.md#n120-one-background-worker-on-lambda-asynchronous-invoke
BACKGROUND_RETRY_ATTEMPTS: Final = 2
TEMPLATE_URL_LIMIT: Final = 1_000_000
INLINE_TEMPLATE_MAX_BYTES: Final = 40 * 1024
# Where a template waits for CloudFormation to read it (deleted once the stack operation ended);
# outside every prefix the Lambdas may touch.
TEMPLATES_PREFIX: Final = "deploy/templates/"
APP_URL_SETTING: Final = "BACKDROP_APP_URL"


def template_url(bucket: str, key: str, region: str) -> str:
    """The virtual-hosted S3 URL of an object, as CloudFormation's TemplateURL takes it."""
    suffix = "amazonaws.com.cn" if partition_for_region(region) == "aws-cn" else "amazonaws.com"
    return f"https://{bucket}.s3.{region}.{suffix}/{key}"


def stack_name(stage: str, kind: str) -> str:
    return f"backdrop-{stage}-{kind}"


@dataclass
class ChaliceResult:
    api_url: str
    function_arns: dict[str, str]
    rest_api_id: str = ""


def run_chalice_deploy(stage: str, env: dict[str, str], region: str, project_dir: Path) -> ChaliceResult:
    """`chalice deploy` of the stage's generated project, then the ARNs chalice recorded.

    app.py reads some settings while chalice imports it (the authorizer's pool, the stream, the
    upload event filter, CORS), so the same environment is given to the chalice process."""
    process_env = {**os.environ, **env, "AWS_DEFAULT_REGION": region}
    python = runtime.chalice_python()
    runtime.require_supported(python)  # the Lambdas' runtime is that interpreter's (backend/runtime.py)
    subprocess.run(
        [*runtime.chalice_command(python), "--project-dir", str(project_dir), "deploy", "--stage", stage],
        cwd=project_dir,
        env=process_env,
        check=True,
    )
    deployed = project.deployed_record(project_dir, stage)
    if deployed is None:
        raise DeployError(f"chalice deploy left no record in {project_dir}/.chalice/deployed/{stage}.json")
    arns: dict[str, str] = {}
    api_url = ""
    rest_api_id = ""
    for resource in deployed["resources"]:
        if resource.get("resource_type") == "lambda_function":
            arns[resource["name"]] = resource["lambda_arn"]
        if resource.get("resource_type") == "rest_api":
            api_url = resource["rest_api_url"]
            rest_api_id = resource.get("rest_api_id", "")
    return ChaliceResult(api_url, {name: arn for name, arn in arns.items()}, rest_api_id)


def run_chalice_delete(stage: str, region: str, project_dir: Path) -> None:
    """`chalice delete` of the stage's project, in the stage's Region; a failure raises."""
    subprocess.run(
        [*runtime.chalice_command(), "--project-dir", str(project_dir), "delete", "--stage", stage],
        cwd=project_dir,
        env={**os.environ, "AWS_DEFAULT_REGION": region, "AWS_REGION": region},
        check=True,
    )


@dataclass
class Deployer:
    stage: str
    region: str
    session: Any = None
    say: Callable[[str], None] = print
    run_chalice: Callable[[str, dict[str, str], str, Path], ChaliceResult] = run_chalice_deploy
    run_chalice_delete: Callable[[str, str, Path], None] = run_chalice_delete
    project_dir: Path | None = None  # the stage's generated Chalice project (default .deploy/<stage>)
    outputs: dict[str, str] = field(default_factory=dict)
    client_overrides: dict[str, Any] = field(default_factory=dict)  # tests: stubbed clients by service

    def __post_init__(self) -> None:
        self.session = self.session or boto3.Session(region_name=self.region)
        self.project_dir = self.project_dir or project.stage_dir(self.stage)
        self.cfn = self.client("cloudformation")

    @property
    def project(self) -> Path:
        assert self.project_dir is not None
        return self.project_dir

    @property
    def chalice_dir(self) -> Path:
        return self.project / ".chalice"

    def client(self, service: str) -> Any:
        if service in self.client_overrides:
            return self.client_overrides[service]
        return self.session.client(service)

    # ---------------------------------------------------------------- checks

    def identity(self) -> tuple[str, str]:
        """(account, partition) of the deployer's credentials."""
        try:
            answer = self.client("sts").get_caller_identity()
        except (NoCredentialsError, ClientError) as exc:
            raise DeployError(f"no usable AWS credentials for {self.region}: {exc}") from exc
        return answer["Account"], partition_of_arn(answer["Arn"])

    def account(self) -> str:
        return self.identity()[0]

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
        current = self._recoverable(kind, self._current(name))
        common = {
            "StackName": name,
            "Parameters": params,
            "Capabilities": ["CAPABILITY_IAM"],
            "Tags": [{"Key": "app", "Value": "backdrop"}, {"Key": "stage", "Value": self.stage}],
        }
        if current is not None and self._unchanged(name, body, params, current):
            self.say(f"stack {name}: template {len(body.encode()):,} bytes, deployed already")
            self.say(f"stack {name}: no changes")
        else:
            source, uploaded = self._template_source(name, body)
            try:
                if current is None:
                    self.say(f"creating stack {name} ...")
                    self.cfn.create_stack(**common, **source)
                    self._wait(name, "stack_create_complete")
                else:
                    self.say(f"updating stack {name} ...")
                    try:
                        self.cfn.update_stack(**common, **source)
                    except ClientError as exc:
                        if "No updates are to be performed" not in str(exc):
                            raise
                    else:
                        self._wait(name, "stack_update_complete")
            finally:
                if uploaded:  # CloudFormation read it when the operation started
                    self._forget_template(*uploaded)
        stack = self.cfn.describe_stacks(StackName=name)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def _template_source(self, name: str, body: str) -> tuple[dict[str, str], tuple[str, str] | None]:
        """TemplateBody, or TemplateURL for a template over INLINE_TEMPLATE_MAX_BYTES (uploaded to
        the stage's bucket: returned as (bucket, key) to delete afterwards). Says each size."""
        size = len(body.encode())
        limits = f"TemplateBody limit {TEMPLATE_BODY_LIMIT:,}"
        if size <= INLINE_TEMPLATE_MAX_BYTES:
            self.say(f"stack {name}: template {size:,} bytes, sent in the request ({limits})")
            return {"TemplateBody": body}, None
        if size > TEMPLATE_URL_LIMIT:
            raise DeployError(
                f"the template of stack {name} is {size:,} bytes: over CloudFormation's {TEMPLATE_URL_LIMIT:,}-byte "
                "limit even from S3 (docs/aws-notes.md#n77-cloudformation-template-size-limits); split it into stacks"
            )
        bucket = self.outputs.get("BucketName")
        if not bucket:  # the resources stack creates the bucket: its template can only go inline
            if size <= TEMPLATE_BODY_LIMIT:
                self.say(f"stack {name}: template {size:,} bytes, sent in the request ({limits}; no bucket yet)")
                return {"TemplateBody": body}, None
            raise DeployError(
                f"the template of stack {name} is {size:,} bytes, over CloudFormation's {TEMPLATE_BODY_LIMIT:,}-byte "
                "TemplateBody limit, and the bucket that would carry it to CloudFormation does not exist yet"
            )
        key = f"{TEMPLATES_PREFIX}{name}-{hashlib.sha256(body.encode()).hexdigest()[:16]}.json"
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
        self.say(f"stack {name}: template {size:,} bytes, passed as TemplateURL from s3://{bucket}/{key} ({limits})")
        return {"TemplateURL": template_url(bucket, key, self.region)}, (bucket, key)

    def _forget_template(self, bucket: str, key: str) -> None:
        try:
            self.client("s3").delete_object(Bucket=bucket, Key=key)
        except ClientError as exc:  # harmless: a few KB, removed with the bucket at teardown
            self.say(f"note: could not delete s3://{bucket}/{key} ({exc})")

    def _wait(self, name: str, waiter: str) -> None:
        try:
            self.cfn.get_waiter(waiter).wait(StackName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 360})
        except WaiterError as exc:
            reason = self._failure_reason(name) or str(exc)
            raise DeployError(
                f"stack {name} failed: {reason}. Fix the cause and re-run deploy (a stack left in "
                "ROLLBACK_COMPLETE is deleted and created again), or remove everything with teardown."
            ) from exc

    def _recoverable(self, kind: str, current: dict[str, Any] | None) -> dict[str, Any] | None:
        """The stack to update, None to create it; a failed first create is deleted first."""
        if current is None:
            return None
        name, status = current["StackName"], current["StackStatus"]
        if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED"):
            self.say(f"stack {name} is {status} after a failed first deploy: deleting it to create it again")
            problems: list[str] = []
            self._delete_stack(kind, problems)
            if problems:
                raise DeployError(problems[0])
            return None
        if status.endswith("_IN_PROGRESS"):
            raise DeployError(f"stack {name} is {status}: wait until that operation ends, then re-run deploy")
        if status == "UPDATE_ROLLBACK_FAILED":
            raise DeployError(
                f"stack {name} is UPDATE_ROLLBACK_FAILED: continue its rollback (CloudFormation console, or "
                f"`aws cloudformation continue-update-rollback --stack-name {name}`), then re-run deploy"
            )
        if status == "DELETE_FAILED":
            raise DeployError(f"stack {name} is DELETE_FAILED: run teardown, then deploy again")
        return current

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

    def stage_environment(
        self,
        account: str,
        partition: str,
        settings: dict[str, str],
        unreachable: Iterable[str] = (),
        max_concurrency: int | None = None,
    ) -> dict[str, str]:
        """What every Lambda reads: the stacks' outputs, then each deployment setting given.
        `unreachable`: the models the doctor found this Region cannot call (its Bedrock look-ups),
        which POST /jobs then refuses by name (chalicelib.models.registry.region_refusal)."""
        env = {
            "BUCKET_NAME": self.outputs["BucketName"],
            "JOBS_TABLE_NAME": self.outputs["TableName"],
            "JOBS_STREAM_ARN": self.outputs["StreamArn"],
            "STATE_MACHINE_ARN": policies.state_machine_arn(self.region, account, self.stage, partition),
            "USER_POOL_ARN": self.outputs["UserPoolArn"],
            "BACKDROP_STAGE": self.stage,  # the metrics' stage dimension
            # each user's own job-email topic is this prefix and their sub (backend/user_topics.py)
            "USER_TOPIC_ARN_PREFIX": resource_names.user_topic_arn_prefix(self.stage, self.region, account, partition),
            # a cancel starts the webhook sender itself (the job has no workflow left to do it)
            "WEBHOOK_FUNCTION_NAME": resource_names.lambda_function(self.stage, WEBHOOK_SENDER),
            # every piece of background work (a large job's closing, deletion, report rewrite, archive)
            # is started on this function (chalicelib/workflow/background.py)
            "BACKGROUND_FUNCTION_NAME": resource_names.lambda_function(self.stage, BACKGROUND_WORKER),
            # the results' Content Credentials are signed with this key (chalicelib/delivery/provenance_sign.py)
            "BACKDROP_C2PA_KMS_KEY_ID": self.outputs.get("CredentialsKeyArn", ""),
        }
        env.update({k: v for k, v in settings.items() if k != "BACKDROP_MODEL_REGISTRY"})
        if unreachable:
            env[registry.UNREACHABLE_MODELS_ENV] = ",".join(sorted(unreachable))
        if max_concurrency is not None:
            # the Map's MaxConcurrency, which the ETA plans the quota's pace from (chalicelib/core/pace.py)
            env[eta.CONCURRENCY_ENV] = str(max_concurrency)
        return env

    def build_project(
        self, env: dict[str, str], account: str, partition: str, models: list[ModelSpec], settings: dict[str, str]
    ) -> dict[str, str]:
        """The stage's Chalice project with its environment and policies; returns the final
        environment (a custom registry is packaged, and its variable points inside the package)."""
        documents = policies.lambda_policies(self.outputs, self.stage, self.region, account, models, partition)
        project.build(
            self.project,
            self.stage,
            env,
            documents,
            registry_file=settings.get("BACKDROP_MODEL_REGISTRY"),
        )
        config = json.loads((self.chalice_dir / "config.json").read_text())
        return dict(config["stages"][self.stage]["environment_variables"])

    def resource_parameters(self, email: str, settings: dict[str, str]) -> dict[str, str]:
        from chalicelib.core.config import RESULT_RETENTION_DAYS, UPLOAD_RETENTION_DAYS, retention_days

        return {
            "Stage": self.stage,
            "NotificationEmail": email,
            "UploadRetentionDays": str(retention_days(UPLOAD_RETENTION_DAYS, settings)),
            "ResultRetentionDays": str(retention_days(RESULT_RETENTION_DAYS, settings)),
            "CorsAllowedOrigin": settings.get("CORS_ALLOW_ORIGIN", ""),
        }

    def doctor(self, model: str | None = None, skip: frozenset[str] = frozenset()) -> Doctor:
        return Doctor(
            session=self.session,
            region=self.region,
            stage=self.stage,
            models=models_for_deployment(model),
            say=self.say,
            skip=skip,
            clients=dict(self.client_overrides),
        )

    def preflight(self, model: str, skip: frozenset[str] = frozenset()) -> Findings:
        """The doctor's checks before anything is created; any ✗ stops the deploy here."""
        found = self.doctor(model, skip).run(deployed=False)
        self.say(format_findings(found, f"Checks for stage {self.stage} in {self.region}:"))
        if found.failed:
            raise DeployError(
                "not deploying: " + "; ".join(f"{c.name}: {c.detail} (fix: {c.fix})" for c in found.failed)
            )
        return found

    def deploy(
        self,
        *,
        email: str,
        model: str,
        max_concurrency: int | None = None,
        skip: frozenset[str] = frozenset(),
        settings: dict[str, str] | None = None,
        with_webapp: bool = True,
    ) -> dict[str, str]:
        """Deploy the stage. `settings` must already be applied to this process
        (backend.settings.apply), so the checks and IAM see the same models as the Lambdas.
        `with_webapp`: the team's web app too (its URL becomes the stage's BACKDROP_APP_URL)."""
        settings = dict(settings or {})
        self.say(deployment_settings.describe(settings))
        found = self.preflight(model, skip)
        account, partition = found.account, found.partition
        self.say(f"deploying Backdrop stage {self.stage} to account {account} in {self.region}")
        models = registry.selectable_models() or [registry.get_model(model)]
        routes = [r for r in found.routes if r.model_key in {m.key for m in models}]
        if max_concurrency is None:
            max_concurrency = found.max_concurrency or DEFAULT_MAX_CONCURRENCY
            self.say(f"Map MaxConcurrency: {max_concurrency}")
        # each image's child execution: STANDARD while its worst case is past Express's cap
        execution_type = statemachine.child_execution_type()
        self.say(f"image children run {execution_type} (a child's worst case: {statemachine.worst_child_s():.0f} s)")
        legacy_topic = self._legacy_job_topic()
        if legacy_topic:  # before the resources stack's update removes it
            self.move_legacy_subscriptions(legacy_topic)
        self.outputs.update(
            self.deploy_stack("resources", templates.load("resources"), self.resource_parameters(email, settings))
        )
        self.outputs.update(self.deploy_auth())
        env = self.stage_environment(account, partition, settings, found.unreachable, max_concurrency)
        env = self.build_project(env, account, partition, models, settings)
        deployment_settings.save(self.project, settings)
        chalice = self.run_chalice(self.stage, env, self.region, self.project)
        missing = [f.name for f in WORKFLOW_FUNCTIONS if f.name not in chalice.function_arns]
        missing += [name for name in (stream_trigger.FUNCTION, BACKGROUND_WORKER) if name not in chalice.function_arns]
        if missing:
            raise DeployError(f"chalice deploy did not report the functions {missing}")
        self.configure_stream_trigger(chalice.function_arns[stream_trigger.FUNCTION])
        self.configure_background_worker(chalice.function_arns[BACKGROUND_WORKER])
        if chalice.rest_api_id:  # API Gateway's own errors in Backdrop's {code, message, details}
            gateway_responses.apply(
                self.client("apigateway"),
                chalice.rest_api_id,
                project.API_GATEWAY_STAGE,
                settings.get("CORS_ALLOW_ORIGIN") or None,
            )
        parameters = {
            "Stage": self.stage,
            "BucketName": self.outputs["BucketName"],
            "UserTopicArnPrefix": resource_names.user_topic_arn_prefix(self.stage, self.region, account, partition),
            "AlarmTopicArn": self.outputs["AlarmTopicArn"],
            "ModelResourceArns": ",".join(invoke_arns(routes)),
            **{f.arn_placeholder: chalice.function_arns[f.name] for f in WORKFLOW_FUNCTIONS},
            "MapExecutionType": execution_type,
        }
        self.outputs.update(self.deploy_stack("workflow", templates.workflow_template(max_concurrency), parameters))
        self.outputs["ApiUrl"] = chalice.api_url
        if not with_webapp:
            return self.outputs
        previous = self._stack_outputs("webapp").get("AppEndpoint")
        self.outputs.update(self.deploy_webapp(chalice.api_url))
        remembered = settings.get(APP_URL_SETTING, "")
        if remembered != self.outputs["AppUrl"] and remembered in ("", webapp.app_url(previous or "")):
            # the emails link to the web app (the Lambdas' BACKDROP_APP_URL), and its URL exists
            # only now: remembered for the stage, and given to the Lambdas by one more chalice
            # deploy (a first deploy only: the URL stays while the service does)
            settings[APP_URL_SETTING] = self.outputs["AppUrl"]
            deployment_settings.save(self.project, settings)
            self.say(f"{APP_URL_SETTING}={self.outputs['AppUrl']}: the job emails link to it (chalice deploy again)")
            env = self.build_project(
                self.stage_environment(account, partition, settings, found.unreachable, max_concurrency),
                account,
                partition,
                models,
                settings,
            )
            self.run_chalice(self.stage, env, self.region, self.project)
        elif remembered != self.outputs["AppUrl"]:
            self.say(
                f"{APP_URL_SETTING} stays {remembered} (your own); the web app answers at {self.outputs['AppUrl']}"
            )
        return self.outputs

    def _stack_outputs(self, kind: str) -> dict[str, str]:
        current = self._current(stack_name(self.stage, kind))
        return {o["OutputKey"]: o["OutputValue"] for o in (current or {}).get("Outputs", [])}

    def deploy_webapp(self, api_url: str) -> dict[str, str]:
        """The web app for the team (backend/templates/webapp.yaml): this checkout's source zip in
        the stage's bucket, then the ECS Express Mode service that runs it over HTTPS."""
        data = webapp.source_zip()
        key = webapp.source_key(data)
        bucket = self.outputs["BucketName"]
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/zip")
        self.say(f"web app source: s3://{bucket}/{key} ({len(data) / 1e6:.1f} MB)")
        parameters = {
            "Stage": self.stage,
            "BucketName": bucket,
            "SourceKey": key,
            "ApiUrl": api_url,
            "UserPoolClientId": self.outputs["UserPoolClientId"],
        }
        outputs = self.deploy_webapp_stack(parameters)
        self._forget_old_sources(bucket, keep=key)
        return {**outputs, "AppUrl": webapp.app_url(outputs["AppEndpoint"])}

    def deploy_webapp_stack(self, parameters: dict[str, str]) -> dict[str, str]:
        return self.deploy_stack("webapp", templates.load("webapp"), parameters)

    def _forget_old_sources(self, bucket: str, keep: str) -> None:
        """The zips of earlier deploys: the running task fetched its own at start, and a task
        started from now on runs `keep`."""
        s3 = self.client("s3")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=webapp.SOURCE_PREFIX).get("Contents", [])
        for item in listed:
            if item["Key"] != keep:
                s3.delete_object(Bucket=bucket, Key=item["Key"])

    def configure_stream_trigger(self, function_arn: str) -> None:
        """What Chalice cannot set on the stream's trigger (backend/stream_trigger.py)."""
        try:
            stream_trigger.configure(
                self.client("lambda"), function_arn, self.outputs["StreamArn"], self.outputs["StreamFailureQueueArn"]
            )
        except LookupError as exc:
            raise DeployError(str(exc)) from exc
        self.say(
            f"stream trigger: job inserts only, {stream_trigger.MAXIMUM_RETRY_ATTEMPTS} retries with bisection, "
            f"then to {self.outputs['StreamFailureQueueArn'].rsplit(':', 1)[-1]}"
        )

    def configure_background_worker(self, function_arn: str) -> None:
        """What Chalice cannot set on the background worker: its asynchronous retries and where a
        task that failed every attempt goes (docs/aws-notes.md#n122-lambda-on-failure-destinations-for-asynchronous-invocations)."""
        queue_arn = self.outputs["BackgroundFailureQueueArn"]
        self.client("lambda").put_function_event_invoke_config(
            FunctionName=function_arn,
            MaximumRetryAttempts=BACKGROUND_RETRY_ATTEMPTS,
            DestinationConfig={"OnFailure": {"Destination": queue_arn}},
        )
        self.say(f"background worker: {BACKGROUND_RETRY_ATTEMPTS} retries, then to {queue_arn.rsplit(':', 1)[-1]}")

    def api_url(self) -> str:
        """The stage's API URL, from chalice's record of its last deploy ("" if none)."""
        record = self.chalice_dir / "deployed" / f"{self.stage}.json"
        if not record.exists():
            return ""
        for resource in json.loads(record.read_text()).get("resources", []):
            if resource.get("resource_type") == "rest_api":
                return str(resource["rest_api_url"])
        return ""

    def deploy_auth(self) -> dict[str, str]:
        return self.deploy_stack("auth", templates.load("auth"), {"Stage": self.stage})

    # ---------------------------------------------------------------- redrive

    def redrive(self, job_id: str) -> str:
        """Redrive a job's failed, timed-out or aborted execution from where it stopped (failed
        Map children included); images that already succeeded are not run again."""
        sfn = self.client("stepfunctions")
        account, partition = self.identity()
        arn = policies.state_machine_arn(self.region, account, self.stage, partition).replace(
            ":stateMachine:", ":execution:"
        )
        arn = f"{arn}:{job_id}"  # the execution is named after the job
        try:
            execution = sfn.describe_execution(executionArn=arn)
        except ClientError as exc:
            raise DeployError(f"job {job_id} has no execution in stage {self.stage} ({arn}): {exc}") from exc
        status = execution["status"]
        if status in ("RUNNING", "PENDING_REDRIVE"):
            return f"job {job_id} is still running ({status}); nothing to redrive"
        if status == "SUCCEEDED":
            return (
                f"job {job_id}'s workflow succeeded; to run its failed images again, retry the job "
                f"(POST /jobs/{job_id}/retry, `backdrop retry {job_id}` or the web app)"
            )
        if execution.get("redriveStatus") == "NOT_REDRIVABLE":
            raise DeployError(
                f"job {job_id}'s execution ({status}) cannot be redriven: {execution.get('redriveStatusReason', '')}; "
                "retry the job instead"
            )
        sfn.redrive_execution(executionArn=arn)
        return f"job {job_id}: execution {status} redriven; follow it with GET /jobs/{job_id} or the web app"

    # ---------------------------------------------------------------- users and teardown

    def stack_output(self, kind: str, key: str) -> str:
        outputs = self.cfn.describe_stacks(StackName=stack_name(self.stage, kind))["Stacks"][0]["Outputs"]
        return next(o["OutputValue"] for o in outputs if o["OutputKey"] == key)

    def create_user(self, email: str, password: str | None) -> None:
        pool_id = self.stack_output("auth", "UserPoolId")
        cognito = self.client("cognito-idp")
        attributes = [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}]
        if password:
            created = cognito.admin_create_user(
                UserPoolId=pool_id, Username=email, UserAttributes=attributes, MessageAction="SUPPRESS"
            )
            cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
        else:  # Cognito emails a temporary password; the user sets their own at first sign-in
            created = cognito.admin_create_user(
                UserPoolId=pool_id, Username=email, UserAttributes=attributes, DesiredDeliveryMediums=["EMAIL"]
            )
        sub = next(a["Value"] for a in created["User"]["Attributes"] if a["Name"] == "sub")
        self.subscribe_user(sub, email)

    def subscribe_existing_user(self, email: str) -> str:
        """Subscribe a user created before (or whose confirmation link expired) to their job emails."""
        cognito = self.client("cognito-idp")
        user = cognito.admin_get_user(UserPoolId=self.stack_output("auth", "UserPoolId"), Username=email)
        attributes = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
        return self.subscribe_user(attributes["sub"], attributes.get("email", email))

    def subscribe_user(self, sub: str, email: str) -> str:
        """The user's own job emails: their own topic (named after their sub) with one email
        subscription, no filter policy (backend/user_topics.py). SNS asks the address to confirm."""
        return user_topics.subscribe(self.client("sns"), self.stage, sub, email).subscription_arn

    def delete_user(self, email: str) -> str:
        """The user, and their job-email topic with its subscription. Their jobs and files stay
        (DELETE /jobs/{jobId} removes those); a job that ends later is recorded NO_SUBSCRIPTION."""
        cognito = self.client("cognito-idp")
        pool_id = self.stack_output("auth", "UserPoolId")
        user = cognito.admin_get_user(UserPoolId=pool_id, Username=email)
        sub = str({a["Name"]: a["Value"] for a in user["UserAttributes"]}["sub"])
        account, partition = self.identity()
        prefix = resource_names.user_topic_arn_prefix(self.stage, self.region, account, partition)
        user_topics.delete(self.client("sns"), contracts.user_topic_arn(prefix, sub))
        cognito.admin_delete_user(UserPoolId=pool_id, Username=email)
        return sub

    def _legacy_job_topic(self) -> str | None:
        """The shared job topic of a stage deployed before each user had their own topic."""
        current = self._current(stack_name(self.stage, "resources"))
        outputs = {o["OutputKey"]: o["OutputValue"] for o in (current or {}).get("Outputs", [])}
        return outputs.get("TopicArn")

    def move_legacy_subscriptions(self, topic_arn: str) -> int:
        """Give every user subscribed to the old shared topic (one filter policy {"owner": [sub]}
        each) their own topic and subscription; the old topic goes with the stack update. The
        addresses confirm again (SNS confirms each subscription). Answers how many moved."""
        sns = self.client("sns")
        moved, pending = 0, []
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
            for subscription in page.get("Subscriptions", []):
                if subscription.get("Protocol") != "email":
                    continue
                if not subscription["SubscriptionArn"].startswith("arn:"):
                    pending.append(subscription["Endpoint"])  # no ARN to read its filter policy by
                    continue
                attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
                owners = json.loads(attributes["Attributes"].get("FilterPolicy") or "{}").get(
                    contracts.NOTIFY_OWNER_ATTRIBUTE, []
                )
                if len(owners) == 1:
                    self.subscribe_user(str(owners[0]), subscription["Endpoint"])
                    moved += 1
        self.say(f"job emails: {moved} user(s) moved to their own topic; each confirms the new subscription email")
        if pending:
            self.say(
                f"job emails: {len(pending)} address(es) never confirmed on the old topic ({', '.join(pending[:5])}"
                + (" ..." if len(pending) > 5 else "")
                + "): run `subscribe-user --email <address>` for each"
            )
        return moved

    def teardown(self) -> None:
        """Remove everything the stage created, including the retained stateful resources, and
        say what could not be removed. Safe to re-run: retained resources are found by name."""
        account, _ = self.identity()
        problems: list[str] = []
        auth = self._current(stack_name(self.stage, "auth"))
        auth_outputs = {o["OutputKey"]: o["OutputValue"] for o in (auth or {}).get("Outputs", [])}
        self._delete_stack("webapp", problems)  # its load balancer and certificate go with it
        self._delete_stack("workflow", problems)
        if project.deployed_record(self.project, self.stage) is not None:
            self.say(f"chalice delete --stage {self.stage} ({self.region}) ...")
            try:
                self.run_chalice_delete(self.stage, self.region, self.project)
            except (subprocess.CalledProcessError, OSError) as exc:
                problems.append(
                    f"chalice delete failed ({exc}): the stage's Lambdas, API and roles remain; "
                    f"its record is kept in {self.project}"
                )
        self._delete_stack("auth", problems)
        self._delete_stack("resources", problems)
        # the stateful resources are Retain (no accidental loss); teardown removes them on purpose
        self._remove(
            problems, "bucket", self._empty_and_delete_bucket, resource_names.bucket(self.stage, account, self.region)
        )
        self._remove(problems, "table", self._delete_table, resource_names.table(self.stage))
        pool_id = auth_outputs.get("UserPoolId") or self._user_pool_id(resource_names.user_pool(self.stage))
        if pool_id:
            self._remove(problems, "user pool", self._delete_user_pool, pool_id)
        for group in resource_names.lambda_log_groups(self.stage):
            self._remove(problems, "log group", self._delete_log_group, group)
        sns = self.client("sns")
        for topic in list(user_topics.topics(sns, self.stage)):  # every user's job-email topic
            self._remove(problems, "topic", lambda arn: user_topics.delete(sns, arn), topic)
        if problems:
            raise DeployError(
                f"teardown of stage {self.stage} in {self.region} is incomplete; fix these and run it again:\n- "
                + "\n- ".join(problems)
            )
        shutil.rmtree(self.project, ignore_errors=True)
        self.say(f"Backdrop stage {self.stage} removed from {self.region}")

    def _remove(self, problems: list[str], what: str, remove: Callable[[str], None], name: str) -> None:
        try:
            remove(name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _GONE:
                return
            problems.append(f"{what} {name}: {code or exc}")

    def _delete_stack(self, kind: str, problems: list[str]) -> None:
        name = stack_name(self.stage, kind)
        for attempt in (1, 2):  # a DELETE_FAILED stack often deletes on a second try
            if self._current(name) is None:
                return
            self.say(f"deleting stack {name} ...")
            self.cfn.delete_stack(StackName=name)
            try:
                self.cfn.get_waiter("stack_delete_complete").wait(
                    StackName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 360}
                )
                return
            except WaiterError as exc:
                reason = self._failure_reason(name) or str(exc)
                if attempt == 2:
                    problems.append(f"stack {name} could not be deleted: {reason}")
                else:
                    self.say(f"stack {name} did not delete ({reason}); trying once more")

    def _failure_reason(self, name: str) -> str:
        """The first failed resource's reason from the stack's events ("" if none is found)."""
        try:
            events = self.cfn.describe_stack_events(StackName=name)["StackEvents"]
        except ClientError:
            return ""
        failed = [e for e in events if e.get("ResourceStatus", "").endswith("_FAILED")]
        if not failed:
            return ""
        event = failed[-1]  # events come newest first: the last failed one is the first cause
        return f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', event['ResourceStatus'])}"

    def _delete_table(self, name: str) -> None:
        self.client("dynamodb").delete_table(TableName=name)

    def _delete_user_pool(self, pool_id: str) -> None:
        self.client("cognito-idp").delete_user_pool(UserPoolId=pool_id)

    def _delete_log_group(self, name: str) -> None:
        self.client("logs").delete_log_group(logGroupName=name)

    def _user_pool_id(self, name: str) -> str:
        cognito = self.client("cognito-idp")
        for page in cognito.get_paginator("list_user_pools").paginate(MaxResults=60):
            for pool in page.get("UserPools", []):
                if pool["Name"] == name:
                    return str(pool["Id"])
        return ""

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


def _region_default() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _skip(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def run_doctor(deployer: Deployer, args: argparse.Namespace) -> int:
    doctor = deployer.doctor(args.model, _skip(args.skip_checks))
    found = doctor.run(deployed=True)
    if args.smoke == "models":
        doctor.smoke_models(found, yes=args.yes)
        if found.call_seconds:  # the concurrency again, from the measured call times
            found.checks = [c for c in found.checks if not c.name.startswith(("quota", "lambda concurrency"))]
            found.max_concurrency = None
            doctor.check_quotas(found)
            doctor.check_lambda_concurrency(found)
    elif args.smoke == "workflow":
        from backend.smoke import WorkflowSmoke

        api_url = deployer.api_url()
        if not api_url:
            raise DeployError(f"stage {args.stage} has no API yet: deploy it first")
        WorkflowSmoke(
            deployer.session, deployer.region, deployer.stage, api_url, keep=getattr(args, "keep", False)
        ).run(found, yes=args.yes)
    print(format_findings(found, f"Backdrop doctor: stage {args.stage} in {args.region}"))
    return 1 if found.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend.deploy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("doctor", "deploy", "create-user", "subscribe-user", "delete-user", "redrive", "teardown"):
        p = sub.add_parser(name)
        p.add_argument("--stage", default="dev")
        p.add_argument("--region", default=_region_default())
        if name in ("doctor", "deploy"):
            p.add_argument("--model", default=None, help="the model to check (default: the registry's default)")
            p.add_argument(
                "--set",
                action="append",
                default=[],
                metavar="NAME=VALUE",
                help="a deployment setting (docs/deploy.md, 'Settings'); remembered for the stage",
            )
            p.add_argument("--unset", action="append", default=[], metavar="NAME", help="forget a remembered setting")
            p.add_argument(
                "--skip-checks",
                default="",
                metavar="NAMES",
                help="comma-separated check names (e.g. access,quota) whose ✗ you accept knowingly",
            )
        if name == "doctor":
            p.add_argument(
                "--smoke",
                choices=("models", "workflow"),
                help="models: one smallest Bedrock call per model with your credentials (subscribes the account); "
                "workflow: one job of each background kind, a review and a failure through the deployed stack, "
                "then what only AWS can tell",
            )
            p.add_argument("--yes", action="store_true", help="do not ask before spending money")
            p.add_argument(
                "--keep", action="store_true", help="--smoke workflow: keep its jobs instead of deleting them"
            )
        if name == "deploy":
            p.add_argument("--email", default="", help="the operations address: alarms only (confirm the subscription)")
            p.add_argument(
                "--max-concurrency",
                type=int,
                default=None,
                help="parallel images; by default derived from your Bedrock quotas (docs/deploy.md)",
            )
            p.add_argument(
                "--no-webapp",
                action="store_true",
                help="the API only: no web app for the team (an existing one is left as it is)",
            )
        if name == "redrive":
            p.add_argument("job_id", metavar="JOB", help="the job id (its execution has the same name)")
        if name == "create-user":
            p.add_argument("--email", required=True)
            p.add_argument("--password-stdin", action="store_true")
        if name in ("subscribe-user", "delete-user"):  # subscribe: an existing user, or an expired link
            p.add_argument("--email", required=True, help="the user's sign-in address")
        if name == "teardown":
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    deployer = Deployer(stage=args.stage, region=args.region)
    try:
        settings: dict[str, str] = {}
        if args.command in ("doctor", "deploy"):
            settings = deployment_settings.effective(
                deployer.project, deployment_settings.parse_assignments(args.set), args.unset
            )
            deployment_settings.apply(settings)
            args.model = args.model or registry.default_model_key()
        if args.command == "doctor":
            return run_doctor(deployer, args)
        if args.command == "deploy":
            out = deployer.deploy(
                email=args.email,
                model=args.model,
                max_concurrency=args.max_concurrency,
                skip=_skip(args.skip_checks),
                settings=settings,
                with_webapp=not args.no_webapp,
            )
            app = (
                f"  Web app:      {out['AppUrl']}   (sign in with a user made by create-user)\n"
                if out.get("AppUrl")
                else ""
            )
            print(
                f"\nBackdrop is deployed.\n{app}  API:          {out['ApiUrl']}\n  User pool:    {out['UserPoolId']}\n"
                f"  App client:   {out['UserPoolClientId']}\n  Bucket:       {out['BucketName']}\n"
                f"Next: python -m backend.deploy create-user --stage {args.stage} --region {args.region} --email you@example.com"
                + (
                    "\nConfirm the SNS subscription email for alarms: until you do, SNS drops every alarm to that "
                    "address. Job emails go to each user created with create-user (they confirm their own). "
                    "`python -m backend.deploy doctor` shows whether subscriptions are confirmed."
                    if args.email
                    else ""
                )
            )
        elif args.command == "redrive":
            print(deployer.redrive(args.job_id))
        elif args.command == "subscribe-user":
            deployer.subscribe_existing_user(args.email)
            print(f"{args.email} subscribed to their own job emails (they confirm the SNS email)")
        elif args.command == "delete-user":
            deployer.delete_user(args.email)
            print(f"user {args.email} and their job-email topic deleted")
        elif args.command == "create-user":
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
            deployer.create_user(args.email, password)
            print(
                f"user {args.email} created and subscribed to their own job emails (they confirm the SNS email)"
                + ("" if password else "; Cognito emails a temporary password")
            )
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
