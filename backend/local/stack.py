"""All of Backdrop on one machine, no AWS account: moto on 127.0.0.1 plus the real app.

What runs is the code that runs on AWS, except three local deliveries: Bedrock is the stand-in,
Rekognition is the stand-in (both take their cut-outs and subject boxes from the local cut-out
engine, backend/local/cutout.py), and Lambda's event-source polling of the DynamoDB stream and
its invocation of the workflow Lambdas are done in-process (backend/local/streams.py,
sfn_hooks.py). The API verifies ID tokens against the local user pool's JWKS, as API Gateway would.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from backend.local.cutout import CutoutEngine

from backend.local.loops import BackgroundLoop
from backend.local.meter import Meter
from backend.resource_names import lambda_function, user_topic_arn_prefix
from chalicelib.core import contracts, eta, pace
from chalicelib.core.functions import WEBHOOK_SENDER, WORKFLOW_FUNCTIONS, function

LOCAL_ACCOUNT = "123456789012"
DEMO_USER = "demo@example.com"
DEMO_PASSWORD = "Backdrop-demo-2026!"
# the stand-in's one token bucket (bedrock_standin.py, `images_per_minute`), which every model
# call draws from: in the pace rule it is one quota that all the calls share
STANDIN_QUOTA = "stand-in"
UI_BANNER_ENV = "BACKDROP_UI_BANNER"  # frontend/session.py shows it on every page
log = logging.getLogger("backdrop.local")


class PortInUse(RuntimeError):
    """A port the stack was asked to serve on is taken; the message names it and the flag."""

    def __init__(self, host: str, port: int, what: str, flag: str) -> None:
        super().__init__(
            f"port {port} on {host} is already in use, so the {what} cannot start; choose another with {flag}"
        )
        self.port = port
        self.flag = flag


def ensure_port_free(host: str, port: int, what: str, flag: str) -> None:
    """Raise PortInUse if a server could not listen on host:port (0 = any free port: always fine)."""
    if not port:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP servers do
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(host, port, what, flag) from exc
            raise


LambdaHandler = Callable[[dict[str, Any]], Any]


def workflow_function_arns(prefix: str, region: str) -> dict[str, str]:
    """Each workflow function's name → the ARN the local state machine invokes it by."""
    return {f.name: f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{prefix}-{f.name}" for f in WORKFLOW_FUNCTIONS}


def workflow_handlers(
    arns: Mapping[str, str], available: Callable[[], bool] = lambda: True, meter: Meter | None = None
) -> dict[str, LambdaHandler]:
    """Each workflow function's ARN → its real handler in app.py, called as Lambda calls it.
    While `available()` is false, invocations fail like a throttled Lambda service. A `meter`
    counts each invocation and its duration."""
    import app as backdrop_app
    from backend.local.sfn_hooks import LambdaUnavailable

    def invoker(name: str, handler: Callable[[dict[str, Any], Any], Any]) -> LambdaHandler:
        run = meter.timed(name, handler) if meter else handler

        def invoke(event: dict[str, Any]) -> Any:
            if not available():
                raise LambdaUnavailable("the local app side is stopped")
            return run(event, None)

        return invoke

    return {arn: invoker(name, getattr(backdrop_app, name)) for name, arn in arns.items()}


def provision_workflow(
    client: Callable[[str], Any], *, prefix: str, region: str, bucket: str, max_concurrency: int, inbox: bool = True
) -> dict[str, Any]:
    """The state machine wired to the workflow functions' ARNs and to the users' job-email topics
    (each user's own, made with the user: `add_user`), with (`inbox`) one local inbox that
    `add_user` subscribes to every user's topic.

    Shared by the local stack (moto server) and the tests' `stack` fixture (moto in-process):
    `client(service)` returns a boto3 client for whichever moto is running.
    """
    from backend.statemachine import render_definition

    functions = workflow_function_arns(prefix, region)
    stage = prefix.removeprefix("backdrop-")
    topic_arn_prefix = user_topic_arn_prefix(stage, region, LOCAL_ACCOUNT, "aws")
    queue_url = queue_arn = None
    if inbox:
        sqs = client("sqs")
        queue_url = sqs.create_queue(QueueName=f"{prefix}-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    definition = render_definition(
        {
            **{function(name).arn_placeholder: arn for name, arn in functions.items()},
            "UserTopicArnPrefix": topic_arn_prefix,
            "BucketName": bucket,
            "MapExecutionType": "STANDARD",  # moto rejects EXPRESS: docs/aws-notes.md#n23-moto-step-functions-interpreter
            "MapMaxConcurrency": max_concurrency,
        }
    )
    machine_arn = client("stepfunctions").create_state_machine(
        name=f"{prefix}-workflow",
        definition=definition,
        roleArn=f"arn:aws:iam::{LOCAL_ACCOUNT}:role/{prefix}-workflow",
    )["stateMachineArn"]
    return {
        "functions": functions,
        "stage": stage,
        "user_topic_arn_prefix": topic_arn_prefix,
        "queue_url": queue_url,
        "queue_arn": queue_arn,
        "state_machine_arn": machine_arn,
    }


def add_user(client: Callable[[str], Any], stage: str, sub: str, queue_arn: str) -> str:
    """A user's job-email topic, as `backend.deploy create-user` makes it, subscribed to an SQS
    queue standing in for their address (moto delivers to SQS, not to email). Answers the topic."""
    from backend import user_topics

    return user_topics.subscribe(client("sns"), stage, sub, queue_arn, protocol="sqs").topic_arn


@dataclass
class LocalStack:
    host: str = "127.0.0.1"
    api_port: int = 8000
    moto_port: int = 0
    region: str = "us-east-1"
    stage: str = "local"
    latency_s: float = 0.0
    images_per_minute: float | None = None
    # the Map's MaxConcurrency; None: from the stand-in's quota by the deploy's own rule (map_pace)
    max_concurrency: int | None = 4
    # DynamoDB's partition throughput (1,000 write / 3,000 read units per second per partition key
    # value, backend/local/dynamodb_rules.py); transaction conflicts and client tokens always apply
    partition_limits: bool = True
    # how long moto's interpreter really sleeps each Retry wait, as a share of what the definition
    # asks (1: as AWS paces retries; tests choose 0 and read `retry_waits` instead: sfn_hooks.py)
    retry_time_scale: float = 1.0
    cutout: CutoutEngine | None = None  # None: the model if installed, else the estimate (cutout.engine())
    on_email: Callable[[dict[str, Any]], None] | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)  # each with "To": the user whose inbox got it
    inboxes: dict[str, str] = field(default_factory=dict)  # user → their SQS "email" queue
    meter: Meter = field(default_factory=Meter)  # Lambda durations and S3 requests, as AWS bills them
    outputs: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)  # every variable the stack set in this process
    _loops: dict[str, BackgroundLoop] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lambda_up: threading.Event = field(default_factory=threading.Event)
    _app_threads: list[threading.Thread] = field(default_factory=list)
    _undo: list[Callable[[], None]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    # moto's state is per process and each start resets it: only the latest stack started has its
    # AWS side (tests that share one stack between tests check `aws_side_intact`)
    _starts: ClassVar[int] = 0
    _start_number: int = 0

    def map_pace(self) -> pace.Pace:
        """The Map's concurrency and pace by the rule the deploy, the bench and the ETA use
        (chalicelib/core/pace.py). The stand-in has one token bucket that every model call draws
        from, so it is one quota for the default model's two calls (remove-background, inpaint)."""
        calls = [(STANDIN_QUOTA, self.latency_s)] * 2
        if self.max_concurrency is not None:
            seconds = sum(t for _, t in calls) + pace.LAMBDA_SECONDS_PER_IMAGE
            return pace.pace_of_concurrency(self.max_concurrency, seconds)
        quotas = {STANDIN_QUOTA: self.images_per_minute} if self.images_per_minute else {}
        return pace.quota_pace(quotas, calls)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> LocalStack:
        from backend.local import cutout

        ensure_port_free(self.host, self.api_port, "API", "--port (make run PORT=...)")
        from backend.local import memory

        memory.return_large_frees()  # RSS follows the images alive, not the largest ever freed
        if self.cutout is None:
            self.cutout = cutout.engine()  # loaded once per process, before the first image
        try:
            self._start()
        except BaseException:
            self.stop()  # nothing half-started is left behind
            raise
        return self

    def _start(self) -> None:
        from backend.local.aws_gateway import Credentials, LocalAwsServer

        # moto behind the checks AWS makes (signatures, POST policies, per-run token key)
        self.credentials = Credentials.generate()
        self._moto = LocalAwsServer(self.host, self.moto_port, self.credentials).start()
        self._undo.append(self._moto.stop)
        port = self._moto.get_host_and_port()[1]
        self.endpoint = f"http://{self.host}:{port}"
        # Credentials made for this run and the loopback endpoint for everything in this process:
        # nothing here can reach real AWS, and nobody outside the process can sign for the stack.
        self._set_env(
            {
                **self.credentials.env(),
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "MOTO_PORT": str(port),  # moto's Step Functions tasks call http://localhost:$MOTO_PORT
                "AWS_ENDPOINT_URL": self.endpoint,  # botocore's own setting
            }
        )
        import requests

        # moto's state is per process: a stack starts from nothing (tests may start several)
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()
        LocalStack._starts += 1
        self._start_number = LocalStack._starts
        requests.post(
            f"{self.endpoint}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
            timeout=10,
        ).raise_for_status()
        # every call the app's code makes is checked against its function's IAM policy, as AWS
        # would: a denied one is an ERROR line and AWS's AccessDenied answer (backend/local/iam.py)
        from backend.local import iam

        self._undo.append(iam.install_for(iam.local_deployment(self.stage, self.region)))
        self._install_standins()  # before the state machine exists: moto binds task services at parse time
        self._provision()
        self._moto.gateway.seal()
        self.start_app()

    # The "app side" (API server, stream delivery, Lambda invocations) can be stopped and started
    # while the AWS side (moto) keeps its state, as Lambda and API instances come and go on AWS.

    def start_app(self) -> None:
        self._app_stop = threading.Event()
        self._lambda_up.set()
        self._start_stream_delivery()
        self._start_execution_events()
        self._start_api()

    def stop_app(self) -> None:
        """Kill the app side mid-flight: the API stops answering, stream records wait, and
        Lambda invocations are throttled (Step Functions retries them) until start_app()."""
        self._lambda_up.clear()
        self._app_stop.set()
        self._wake_loops()
        for thread in self._app_threads:
            thread.join(timeout=5)
        self._app_threads.clear()
        self._api_server.shutdown()
        self._api_server.server.server_close()

    def stop(self) -> None:
        self._stop.set()
        if getattr(self, "_app_stop", None) is not None:
            self._app_stop.set()
        self._wake_loops()
        for thread in self._app_threads:
            thread.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        while self._undo:
            try:
                self._undo.pop()()
            except Exception:  # keep tearing down the rest
                log.exception("while stopping the local stack")

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _set_env(self, values: dict[str, str]) -> None:
        """Set variables for this process; stop() puts the previous values back."""
        import boto3

        from chalicelib.store import clients as aws

        previous = {name: os.environ.get(name) for name in values}

        def restore() -> None:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            boto3.DEFAULT_SESSION = None
            aws.reset()

        os.environ.update(values)
        self.environment.update(values)
        boto3.DEFAULT_SESSION = None  # its credentials are read once: read them again
        self._undo.append(restore)

    # ---------------------------------------------------------------- pieces

    def aws_side_intact(self) -> bool:
        """False once another stack has started in this process: its start reset moto's state."""
        return self._start_number == LocalStack._starts

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        # SigV4 and path-style addressing for S3, as the app's own clients (chalicelib/store/clients.py)
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"}) if service == "s3" else None
        return boto3.client(
            service,
            config=config,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.credentials.access_key,
            aws_secret_access_key=self.credentials.secret_key,
            aws_session_token=self.credentials.session_token,
        )

    def _provision(self) -> None:
        from backend.resources import create_resources
        from chalicelib.store import clients as aws

        prefix = f"backdrop-{self.stage}"
        resources = create_resources(
            bucket=f"{prefix}-bucket", table=f"{prefix}-jobs", endpoint_url=self.endpoint, region=self.region
        )
        workflow = provision_workflow(
            self.client,
            prefix=prefix,
            region=self.region,
            bucket=resources["bucket"],
            max_concurrency=self.map_pace().concurrency,
            inbox=False,  # each user gets their own inbox, subscribed to their own topic (create_user)
        )
        self.outputs["user_topic_arn_prefix"] = workflow["user_topic_arn_prefix"]

        cognito = self.client("cognito-idp")
        pool_id = cognito.create_user_pool(
            PoolName=f"{prefix}-users", AdminCreateUserConfig={"AllowAdminCreateUserOnly": True}
        )["UserPool"]["Id"]
        self._sign_tokens_with_a_key_of_this_run(pool_id)
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=f"{prefix}-app",
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
        self.create_user(DEMO_USER, DEMO_PASSWORD, pool_id=pool_id)

        self._set_env(
            {
                "USER_TOPIC_ARN_PREFIX": workflow["user_topic_arn_prefix"],
                "BUCKET_NAME": resources["bucket"],
                "JOBS_TABLE_NAME": resources["table"],
                "STATE_MACHINE_ARN": workflow["state_machine_arn"],
                "JOBS_STREAM_ARN": resources["stream_arn"],
                "WEBHOOK_FUNCTION_NAME": lambda_function(self.stage, WEBHOOK_SENDER),
                # the ETA plans from the Map's concurrency, as the deploy tells the Lambdas
                eta.CONCURRENCY_ENV: str(self.map_pace().concurrency),
            }
        )
        aws.reset()
        self.outputs.update(
            {
                **resources,
                **workflow,
                "queue_url": self.inboxes[DEMO_USER],
                "user_pool_id": pool_id,
                "client_id": client_id,
            }
        )

    def _sign_tokens_with_a_key_of_this_run(self, pool_id: str) -> None:
        """moto ships its token signing key publicly; the pool's tokens are signed with a key
        made now instead, and the pool's JWKS (what the API verifies against) is its public half."""
        from backend.local.aws_gateway import MOTO_TOKEN_KID, install_pool_key, new_token_key, public_jwks

        self.token_key = new_token_key()
        install_pool_key(pool_id, self.region, LOCAL_ACCOUNT, self.token_key)
        self._moto.gateway.publish_jwks(pool_id, public_jwks(self.token_key, MOTO_TOKEN_KID))

    def create_user(self, username: str, password: str, *, pool_id: str | None = None) -> None:
        """A user, and their own inbox: as `backend.deploy create-user` makes the user's own topic
        and subscribes their email to it, an SQS queue is subscribed here to the same topic."""
        cognito = self.client("cognito-idp")
        pool_id = pool_id or self.outputs["user_pool_id"]
        created = cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=username,
            MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": username}, {"Name": "email_verified", "Value": "true"}],
        )
        cognito.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
        sub = next(a["Value"] for a in created["User"]["Attributes"] if a["Name"] == "sub")
        sqs = self.client("sqs")
        queue_url = sqs.create_queue(QueueName=f"backdrop-{self.stage}-inbox-{len(self.inboxes)}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        add_user(self.client, self.stage, sub, queue_arn)
        self.inboxes[username] = queue_url

    def _install_standins(self) -> None:
        from backend.local import dynamodb_rules, moto_bounds, rekognition_standin, sfn_hooks, sns_rules
        from backend.local.bedrock_standin import StandInBedrock, install_control_plane

        self._undo.append(moto_bounds.install())
        # DynamoDB's answers where moto is softer: conflicts, partition throughput, client tokens
        self._undo.append(dynamodb_rules.install(partition_limits=self.partition_limits))
        self._undo.append(sns_rules.install())  # SNS's filter-policy quotas
        self._undo.append(self.meter.install())
        assert self.cutout is not None
        self.bedrock = StandInBedrock(
            latency_s=self.latency_s, images_per_minute=self.images_per_minute, cutout=self.cutout, region=self.region
        )
        self._undo.append(install_control_plane())
        handlers = workflow_handlers(
            workflow_function_arns(f"backdrop-{self.stage}", self.region), self._lambda_up.is_set, self.meter
        )
        interpreter_credentials = {
            "aws_access_key_id": self.credentials.access_key,
            "aws_secret_access_key": self.credentials.secret_key,
            "aws_session_token": self.credentials.session_token,
        }
        self._undo.append(sfn_hooks.install(handlers, self.bedrock, interpreter_credentials))
        self.retry_waits = sfn_hooks.RetryWaits(self.retry_time_scale)
        self._undo.append(sfn_hooks.install_retry_waits(self.retry_waits))
        s3 = self.client("s3")
        self._undo.append(
            rekognition_standin.install(
                lambda bucket, key: s3.get_object(Bucket=bucket, Key=key)["Body"].read(), self.cutout
            )
        )

    def _loop(
        self, name: str, every_s: float, work: Callable[[], Any], stop: threading.Event, threads: list[threading.Thread]
    ) -> None:
        loop = self._loops[name] = BackgroundLoop(name, every_s, work, stop)
        thread = threading.Thread(target=loop.run, name=name, daemon=True)
        thread.start()
        threads.append(thread)

    def _wake_loops(self) -> None:
        for loop in self._loops.values():
            loop.wake()

    def pause_deliveries(self) -> None:
        """Hold every background delivery between rounds until resume_deliveries() (returns once
        the rounds under way have ended): tests that share one stack pause it between tests."""
        for loop in self._loops.values():
            loop.pause()

    def resume_deliveries(self) -> None:
        for loop in self._loops.values():
            loop.resume()

    def settle(self, timeout_s: float = 30.0) -> None:
        """Run each background delivery once more, now, and wait for it: the stream's records to
        the starter, the ended executions' events to the reconciler, then the inbox (so every
        email those sent is in `emails`). What a test waits for instead of sleeping past the
        loops' intervals; AssertionError naming the loop that did not come round in time."""
        for name in ("stream-delivery", "execution-events", "inbox"):
            self._loops[name].next_round(timeout_s)

    def wait_for_email(self, about: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """The emails whose subject names `about` (a job id), once there is one: each round of the
        deliveries is waited for (`settle`), not slept past. AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [e for e in self.emails if about in e.get("Subject", "")]
            if found:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"no email about {about} within {timeout_s:.0f} s ({len(self.emails)} others)")
            self.settle(max(deadline - time.monotonic(), 1.0))

    def _start_stream_delivery(self) -> None:
        import app as backdrop_app
        from backend.local import moto_bounds
        from backend.local.streams import StreamPoller

        poller = StreamPoller(
            self.client("dynamodbstreams"),
            self.outputs["stream_arn"],
            self.meter.timed("start_workflow", lambda event: backdrop_app.start_workflow(event, None)),
        )
        table = self.outputs["table"]

        def deliver() -> None:
            poller.poll_once()
            # what AWS expires by itself (delivered stream records, used iterators, finished
            # task threads), moto keeps: drop it so a long run stays flat
            moto_bounds.trim_stream(
                table, max(poller.delivered_through.values(), key=int, default=None), poller.iterators
            )
            moto_bounds.prune_threads()

        # a new poller starts from the oldest record kept: redelivery is harmless (idempotent start)
        self._loop("stream-delivery", 0.25, deliver, self._app_stop, self._app_threads)
        if not self._threads:  # the inbox belongs to the AWS side: it runs once per stack
            self._loop("inbox", 0.5, self._read_inbox, self._stop, self._threads)

    def _start_execution_events(self) -> None:
        """EventBridge's execution status changes, to the reconciler (moto sends none)."""
        import app as backdrop_app
        from backend.local.executions import ExecutionEventPoller

        poller = ExecutionEventPoller(
            self.client("stepfunctions"),
            self.outputs["state_machine_arn"],
            lambda event: backdrop_app.reconcile(event, None),
            self.region,
            LOCAL_ACCOUNT,
        )
        self._loop("execution-events", 0.5, poller.poll_once, self._app_stop, self._app_threads)

    def _read_inbox(self) -> None:
        if getattr(self, "_inbox_sqs", None) is None:  # one client: building one costs ~10 ms of CPU
            self._inbox_sqs = self.client("sqs")
        sqs = self._inbox_sqs
        for user, queue_url in list(self.inboxes.items()):
            for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
                email = {**json.loads(message["Body"]), "To": user}
                self.emails.append(email)
                if self.on_email:
                    self.on_email(email)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _start_api(self) -> None:
        import app as backdrop_app
        from backend.local.gateway import CognitoTokenVerifier, serve

        pool_id = self.outputs["user_pool_id"]
        verifier = CognitoTokenVerifier(
            jwks_url=f"{self.endpoint}/{pool_id}/.well-known/jwks.json",
            issuer=f"https://cognito-idp.{self.region}.amazonaws.com/{pool_id}",
            audience=self.outputs["client_id"],
        )
        port = int(self.api_url.rsplit(":", 1)[1]) if getattr(self, "api_url", None) else self.api_port
        try:
            server, _ = serve(backdrop_app.app, verifier, self.host, port)
        except OSError as exc:  # taken between the check in start() and now
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(self.host, port, "API", "--port (make run PORT=...)") from exc
        self._api_server = server
        from backend.local.iam import check_invoke
        from chalicelib.core.functions import BACKGROUND_WORKER

        def invoke_async(event: Any) -> None:
            """Lambda's asynchronous invoke of the background worker: checked as
            lambda:InvokeFunction by the caller's function, then the worker's handler in a thread
            (it runs as its own function; one run: no time limit here)."""
            check_invoke(BACKGROUND_WORKER)
            name = f"background-{event.get('kind', '').lower()}"
            threading.Thread(target=backdrop_app.background_work, args=(event, None), name=name, daemon=True).start()

        # every piece of background work (a large job's closing, deletion, report rewrite, archive)
        backdrop_app.start_background = invoke_async
        if not getattr(self, "api_url", None):
            self._undo.append(lambda: (self._api_server.shutdown(), self._api_server.server.server_close()))
        self.api_url = f"http://{self.host}:{server.server.server_address[1]}"

    def banner(self) -> str:
        """What answers in place of AWS's models here, said on every page of the UI."""
        name = self.cutout.name if self.cutout else "local cut-out engine"
        return (
            f"Local stack, not AWS. Cut-outs and subject boxes: the {name}, not Bedrock or Rekognition. "
            "Prompt backgrounds: a stand-in that draws a plain synthetic backdrop, not generated art."
        )

    def start_ui(self, port: int = 8501) -> str:
        """Start the Streamlit front end against this stack's API (a child process)."""
        import subprocess
        import sys
        from pathlib import Path

        import requests

        if not port:  # any free port: choose it here, so that the address printed is the UI's
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((self.host, 0))
                port = probe.getsockname()[1]
        ensure_port_free(self.host, port, "web UI", "--ui-port (make run UI_PORT=...)")
        app_path = Path(__file__).resolve().parents[2] / "frontend" / "streamlit_app.py"
        env = {
            # the UI host holds no AWS credentials, as when deployed: only the user's token
            **{k: v for k, v in os.environ.items() if k not in self.credentials.env()},
            "BACKDROP_API_URL": self.api_url,
            "BACKDROP_COGNITO_CLIENT_ID": self.outputs["client_id"],
            "BACKDROP_COGNITO_ENDPOINT": self.endpoint,
            "BACKDROP_REGION": self.region,
            UI_BANNER_ENV: self.banner(),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(app_path),
                "--server.address",
                self.host,
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                # the real per-file limit (Streamlit's own default is 200 MB) and no "Deploy" button
                "--server.maxUploadSize",
                str(contracts.MAX_UPLOAD_BYTES // 2**20),
                "--client.toolbarMode",
                "minimal",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def stop_ui() -> None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

        self._undo.append(stop_ui)
        url = f"http://{self.host}:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                said = process.stderr.read().decode()[-2000:] if process.stderr else ""
                if "already in use" in said:  # taken between the check above and now
                    raise PortInUse(self.host, port, "web UI", "--ui-port (make run UI_PORT=...)")
                raise RuntimeError(f"the Streamlit UI exited: {said}")
            try:
                if requests.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                    # the job emails link to this web app's job page, as a deployment's link to
                    # its BACKDROP_APP_URL (chalicelib/delivery/report.py); the Lambdas run in this process
                    self._set_env({"BACKDROP_APP_URL": url})
                    return url
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the Streamlit UI did not start within 60 s")
