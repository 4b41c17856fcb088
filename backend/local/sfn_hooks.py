"""Hooks that let moto's Step Functions interpreter run Backdrop's real workflow in-process.

Used only by the tests and the local stack; nothing here is deployed.

Why it exists: moto (5.2.5) executes ASL, but (a) its Docker-free Lambda backend echoes the
payload instead of running code, and (b) it has no `arn:aws:states:::bedrock:invokeModel`
integration (it forwards to the control-plane client and fails with an uncatchable
States.Runtime). These hooks make Lambda tasks run Python handlers in-process and answer the
optimized Bedrock integration (Input.S3Uri / Output.S3Uri / inline Body) with a callable — the
Bedrock stand-in — so every other line is the code that runs on AWS.

They touch private moto APIs, so they are pinned: `LambdaSimpleBackend.invoke` (signature
function_name, qualifier, body, headers, response_headers),
`state_task_factory.state_task_service_for`, which the factory imports by name, the
`boto3` module that `asl.utils.boto_client.boto_client_for` calls, the `time` module whose
`sleep` a Retry waits with (`retrier_decl`) and the list of interpreter threads (`TMP_THREADS`)
(docs/aws-notes.md#n23-moto-step-functions-interpreter). Check them again before moving off moto 5.2.5.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

MOTO_VERSION = "5.2.5"

LambdaHandler = Callable[[dict[str, Any]], Any]
BedrockModel = Callable[[str, dict[str, Any]], dict[str, Any]]


class LambdaUnavailable(Exception):
    """Raised by a handler to answer like a throttled Lambda service (HTTP 429), which Step
    Functions retries: the local stack uses it while its app side is down."""


class BedrockError(Exception):
    """Raised by a Bedrock stand-in: Step Functions sees the error as `Bedrock.<code>`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _function_name(name_or_arn: str) -> str:
    """'arn:aws:lambda:r:a:function:name:qualifier' or 'name' → 'name'."""
    if ":function:" in name_or_arn:
        return name_or_arn.split(":function:", 1)[1].split(":", 1)[0]
    return name_or_arn.split(":", 1)[0]


def _split_s3_uri(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://") or "/" not in uri[5:]:
        raise BedrockError("ValidationException", f"not an S3 URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def _check_version() -> None:
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"backend.local.sfn_hooks is pinned to moto {MOTO_VERSION} (it patches private moto APIs) but moto "
            f"{moto.__version__} is installed; re-check the hooks against that version and update MOTO_VERSION"
        )


def _bedrock_task_class(model: BedrockModel) -> type:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils import boto_client

    class StateTaskServiceBedrock(StateTaskServiceCallback):
        def __init__(self) -> None:
            # invokeModel supports only the request-response pattern
            super().__init__(supported_integration_patterns=set())

        def _get_supported_parameters(self) -> set[str] | None:
            if self.resource.api_action.lower() == "invokemodel":
                return {
                    "ModelId",
                    "Body",
                    "Input",
                    "Output",
                    "ContentType",
                    "Accept",
                    "Trace",
                    "GuardrailIdentifier",
                    "GuardrailVersion",
                }
            return None

        def _from_error(self, env: Any, ex: Exception) -> Any:
            if isinstance(ex, BedrockError):
                error, cause = f"Bedrock.{ex.code}", ex.message
            elif isinstance(ex, ClientError):  # e.g. the S3 read of Input.S3Uri failed
                error = f"Bedrock.{ex.response['Error']['Code']}"
                cause = ex.response["Error"].get("Message", str(ex))
            else:
                return super()._from_error(env=env, ex=ex)
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(error_name=error),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=error,
                        cause=cause,
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )

        def _eval_service_task(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> None:
            params = normalised_parameters
            if "Body" in params and "Input" in params:
                raise BedrockError("ValidationException", "Body and Input are mutually exclusive")
            # looked up per call: the local stack caches moto's clients (backend/local/moto_bounds.py)
            s3 = boto_client.boto_client_for(
                region=resource_runtime_part.region, service="s3", state_credentials=state_credentials
            )
            if "Input" in params:
                bucket, key = _split_s3_uri(params["Input"].get("S3Uri"))
                body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            else:
                body = params.get("Body")
                body = json.loads(body) if isinstance(body, str) else body
            response = model(str(params["ModelId"]), body)
            if "Output" in params:
                bucket, key = _split_s3_uri(params["Output"].get("S3Uri"))
                s3.put_object(
                    Bucket=bucket, Key=key, Body=json.dumps(response).encode(), ContentType="application/json"
                )
                # UNCONFIRMED what AWS returns with Output set; the body is in S3 and the state
                # machine discards this result (ResultPath null).
                env.stack.append({"ContentType": "application/json", "Output": {"S3Uri": params["Output"]["S3Uri"]}})
            else:
                env.stack.append({"Body": response, "ContentType": "application/json"})

    return StateTaskServiceBedrock


class RetryWaits:
    """The waits moto's interpreter makes between a Task's attempts (its Retry: IntervalSeconds,
    BackoffRate, MaxDelaySeconds, full jitter), each recorded and slept `scale` times as long.

    moto 5.2.5 sleeps every one for real (`retrier_decl`: `time.sleep(interval_seconds)`), so an
    outage test would spend the minutes its retries wait on AWS
    (docs/aws-notes.md#n119-retry-waits-in-motos-interpreter-recorded-not-slept). With `scale` 0 nothing is slept
    and a test asserts the waits the definition asked for (`waits`, in seconds) instead. `hold()`
    makes every wait block until `release()`: an outage then lasts as long as the test says, not
    some number of seconds. The local stack keeps scale 1 for `make run` (retries as AWS paces
    them); its tests choose 0."""

    # a held wait gives up after this long, so a test that fails while holding cannot hang the run
    HOLD_LIMIT_S = 300.0

    def __init__(self, scale: float = 1.0, sleep: Callable[[float], None] = time.sleep, keep: int = 10_000) -> None:
        self.scale = scale
        self.waits: collections.deque[float] = collections.deque(maxlen=keep)  # the latest requested, in order
        # the same waits with the ErrorEquals of the retrier that asked for each
        self.asked: collections.deque[tuple[tuple[str, ...], float]] = collections.deque(maxlen=keep)
        self.count = 0  # every wait requested since the start (waits keeps only the latest `keep`)
        self._sleep = sleep
        self._changed = threading.Condition()
        self._open = threading.Event()
        self._open.set()

    def __call__(self, seconds: float) -> None:
        errors = _retrier_errors(sys._getframe(1))
        with self._changed:
            self.waits.append(seconds)
            self.asked.append((errors, seconds))
            self.count += 1
            self._changed.notify_all()
        self._open.wait(self.HOLD_LIMIT_S)
        if self.scale > 0 and seconds > 0:
            self._sleep(seconds * self.scale)

    def waits_for(self, error: str) -> list[float]:
        """The waits asked for by retriers whose ErrorEquals names `error` (e.g. "WebhookRetry")."""
        return [seconds for errors, seconds in list(self.asked) if error in errors]

    def hold(self) -> None:
        """From now on every wait blocks until release() (at most HOLD_LIMIT_S)."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_for(self, count: int, timeout_s: float, what: str) -> None:
        """Block until `count` waits have been requested since the start; AssertionError naming
        `what` if that takes longer than `timeout_s`."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.count >= count, timeout_s):
                raise AssertionError(
                    f"waited {timeout_s:.0f} s for {what}: {self.count} of {count} Retry waits requested"
                )


def _retrier_errors(frame: Any) -> tuple[str, ...]:
    """The ErrorEquals names of the moto RetrierDecl whose `_eval_body` is `frame` (the caller
    of the sleep), or () when the sleep was called from anywhere else."""
    retrier = frame.f_locals.get("self") if frame is not None else None
    names = getattr(getattr(retrier, "error_equals", None), "error_names", None) or []
    return tuple(str(getattr(name, "error_name", name)) for name in names)


def install_retry_waits(waits: Callable[[float], None]) -> Callable[[], None]:
    """Every Retry wait of moto's interpreter goes to `waits(seconds)` instead of time.sleep
    (a RetryWaits, or any recorder); returns a function that undoes it."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    original = retrier_decl.time
    retrier_decl.time = types.SimpleNamespace(sleep=waits)  # type: ignore[assignment]

    def uninstall() -> None:
        retrier_decl.time = original
        if isinstance(waits, RetryWaits):
            waits.release()  # nothing stays blocked on a hold

    return uninstall


def interpreter_threads() -> list[threading.Thread]:
    """The interpreter's threads still running: one per execution, Map iteration and Task state
    under way (moto lists every one it starts in TMP_THREADS)."""
    from moto.stepfunctions.parser.utils import TMP_THREADS

    return [thread for thread in list(TMP_THREADS) if thread.is_alive()]


def wait_until_interpreter_idle(
    timeout_s: float = 60.0, every_s: float = 0.02, started_before: Iterable[threading.Thread] = ()
) -> None:
    """Block until no execution, Map iteration or Task state is under way in this process (an
    aborted execution's Tasks run to their end: their Lambda or model call is not interrupted),
    leaving out the threads in `started_before` (another test's, in a process that runs several);
    AssertionError naming the threads still running after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    earlier = set(started_before)
    while running := [thread for thread in interpreter_threads() if thread not in earlier]:
        if time.monotonic() >= deadline:
            names = sorted({thread.name for thread in running})
            raise AssertionError(
                f"the Step Functions interpreter was still running {len(running)} thread(s) after {timeout_s:.0f} s: {names}"
            )
        time.sleep(every_s)


def _run_quietly(handler: LambdaHandler, event: dict[str, Any]) -> None:
    try:
        handler(event)
    except Exception:  # Lambda would log it and retry; the handler records its own outcome
        logging.getLogger("backdrop.local").exception("asynchronous invocation failed")


class _InterpreterBoto3:
    """Stands in for the `boto3` module inside moto's interpreter. Its clients are created one at a
    time (boto3's default session is not thread-safe, and the Distributed Map runs children in
    parallel threads) and, given credentials, sign with them instead of the fixed key "ak"/"sk":
    the local stack's endpoint accepts only its own credentials."""

    def __init__(self, credentials: Mapping[str, str] | None) -> None:
        import threading

        self.credentials = dict(credentials or {})
        self._lock = threading.Lock()

    def client(self, *args: Any, **kwargs: Any) -> Any:
        import boto3

        kwargs.update(self.credentials)
        with self._lock:
            return boto3.client(*args, **kwargs)


# Step Functions' limit on a task's, state's or execution's input or output: 262,144 bytes of
# UTF-8 (the history events' Length Constraints), States.DataLimitExceeded above it, which
# States.ALL does not catch (docs/aws-notes.md#n73-the-256-kib-state-payload-as-emulated).
STATE_PAYLOAD_MAX_BYTES = 262_144


def payload_bytes(value: Any) -> int:
    """A state payload's size as Step Functions counts it: its JSON text in UTF-8. moto 5.2.5
    counts json.dumps' default text (non-ASCII escaped to \\uXXXX, spaces after , and :), so it
    both over-counts non-ASCII text and has no check on inputs."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8"))


def within_payload_limit(value: Any) -> bool:
    return payload_bytes(value) <= STATE_PAYLOAD_MAX_BYTES


def _data_limit_exceeded(env: Any, cause: str) -> Exception:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error = StatesErrorNameType.StatesStatesDataLimitExceeded
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                executionFailedEventDetails=ExecutionFailedEventDetails(error=error.to_name(), cause=cause)
            ),
        )
    )


def install_data_limit() -> Callable[[], None]:
    """The 256 KiB payload limit as Step Functions applies it, in moto's interpreter: every state's
    input on entering it, every task's parameters when it is scheduled, every output (moto's own
    check, counted exactly), States.ALL neither retrying nor catching the error, and StartExecution
    refusing an input over the limit. Returns a function that undoes it."""
    from moto.stepfunctions.parser.asl.component.common.error_name import error_equals_decl
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state import state as state_module
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task, state_task_lambda
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service

    counted = (state_module, state_task_lambda, state_task_service)  # each imported is_within_size_quota by name
    original_quota = [m.is_within_size_quota for m in counted]
    state_class = state_module.CommonStateField
    original_input = state_class._eval_state_input
    original_parameters = state_task.StateTask._eval_parameters
    original_lambda_parameters = state_task_lambda.StateTaskLambda._eval_parameters
    original_equals = error_equals_decl.ErrorEqualsDecl._eval_body
    data_limit = StatesErrorName(typ=StatesErrorNameType.StatesStatesDataLimitExceeded)
    states_all = StatesErrorName(typ=StatesErrorNameType.StatesALL)

    def eval_state_input(self: Any, env: Any) -> None:
        size = payload_bytes(env.states.get_input())
        if size > STATE_PAYLOAD_MAX_BYTES:
            raise _data_limit_exceeded(
                env, f"The state '{self.name}' was entered with an input of {size:,} bytes (at most 262,144)."
            )
        original_input(self, env)

    def checked(parameters: Any, name: str, env: Any) -> Any:
        size = payload_bytes(parameters)
        if size > STATE_PAYLOAD_MAX_BYTES:
            raise _data_limit_exceeded(
                env, f"The task '{name}' was scheduled with parameters of {size:,} bytes (at most 262,144)."
            )
        return parameters

    def eval_parameters(self: Any, env: Any) -> Any:
        return checked(original_parameters(self, env), self.name, env)

    def eval_lambda_parameters(self: Any, env: Any) -> Any:
        return checked(original_lambda_parameters(self, env), self.name, env)

    def error_equals(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        if error_name == data_limit and states_all in self.error_names:
            env.stack.pop()
            env.stack.append(False)  # only an ErrorEquals naming it matches
            return
        original_equals(self, env)

    from moto.stepfunctions.exceptions import ValidationException
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original_start = StepFunctionsParserBackend.start_execution

    def start_execution(
        self: Any, state_machine_arn: str, name: Any = None, execution_input: Any = None, **kw: Any
    ) -> Any:
        # StartExecution's `input` is a string of at most 262,144 bytes: a longer one is refused
        # like any parameter over its length constraint (ValidationException), before anything runs
        size = len((execution_input or "").encode("utf-8"))
        if size > STATE_PAYLOAD_MAX_BYTES:
            raise ValidationException(
                "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have "
                f"length less than or equal to {STATE_PAYLOAD_MAX_BYTES} (it has {size:,} bytes)"
            )
        return original_start(self, state_machine_arn, name, execution_input, **kw)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]
    for module in counted:
        module.is_within_size_quota = within_payload_limit  # type: ignore[attr-defined]
    state_class._eval_state_input = eval_state_input  # type: ignore[method-assign]
    state_task.StateTask._eval_parameters = eval_parameters  # type: ignore[method-assign]
    state_task_lambda.StateTaskLambda._eval_parameters = eval_lambda_parameters  # type: ignore[method-assign]
    error_equals_decl.ErrorEqualsDecl._eval_body = error_equals  # type: ignore[method-assign]

    def uninstall() -> None:
        StepFunctionsParserBackend.start_execution = original_start  # type: ignore[method-assign]
        for module, quota in zip(counted, original_quota, strict=True):
            module.is_within_size_quota = quota  # type: ignore[attr-defined]
        state_class._eval_state_input = original_input  # type: ignore[method-assign]
        state_task.StateTask._eval_parameters = original_parameters  # type: ignore[method-assign]
        state_task_lambda.StateTaskLambda._eval_parameters = original_lambda_parameters  # type: ignore[method-assign]
        error_equals_decl.ErrorEqualsDecl._eval_body = original_equals  # type: ignore[method-assign]

    return uninstall


def install_quiet_is_present() -> Callable[[], None]:
    """A Choice rule's Variable that is not in the input (`IsPresent` on `$.settings.reviewSeconds`
    for a job without review) is an ordinary outcome on AWS: IsPresent answers false and the
    execution goes on, with nothing logged (docs/aws-notes.md#n96-a-missing-path-in-a-choice-rule).
    moto evaluates it the same way, but its EvalComponent.eval logs the missed lookup as an
    `ERROR ... NoSuchJsonPathError` line before the Variable catches it: one such line per job.
    The Variable here samples the path with the sampler's own body (no logging wrapper around
    it); the value, and NoSuchVariable for a missing path, are what moto's Variable computes."""
    from moto.stepfunctions.parser.asl.component.state.choice.comparison import variable

    original = variable.Variable._eval_body

    def eval_body(self: Any, env: Any) -> None:
        try:
            self.string_sampler._eval_body(env=env)
            value = env.stack.pop()
        except Exception as exc:  # as moto's Variable: any failed lookup is "no such variable"
            value = variable.NoSuchVariable(f"{self.string_sampler.literal_value}, {exc}")
        env.stack.append(value)

    variable.Variable._eval_body = eval_body  # type: ignore[method-assign]

    def uninstall() -> None:
        variable.Variable._eval_body = original  # type: ignore[method-assign]

    return uninstall


def install(
    lambda_handlers: Mapping[str, LambdaHandler],
    bedrock: BedrockModel,
    credentials: Mapping[str, str] | None = None,
) -> Callable[[], None]:
    """Patch moto; returns a function that undoes the patches. `credentials`
    (aws_access_key_id, aws_secret_access_key, aws_session_token) are what the interpreter's
    own AWS calls sign with, as the state machine's role would."""
    _check_version()
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.utils import boto_client

    routes = {_function_name(key): handler for key, handler in lambda_handlers.items()}

    def invoke(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any) -> bytes:
        name = _function_name(function_name)
        handler = routes.get(name)
        if handler is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {"errorType": "ResourceNotFoundException", "errorMessage": f"Function not found: {function_name}"}
            ).encode()
        if (headers or {}).get("X-Amz-Invocation-Type") == "Event":
            # asynchronous, as Lambda runs an Event invocation: the caller gets 202 at once
            event = json.loads(body) if body else {}
            threading.Thread(target=_run_quietly, args=(handler, event), name=f"lambda-{name}", daemon=True).start()
            return b""
        try:
            event = json.loads(body) if body else {}
            return json.dumps(handler(event)).encode()
        except LambdaUnavailable as exc:
            from moto.awslambda.exceptions import LambdaClientError

            error = LambdaClientError("TooManyRequestsException", str(exc) or "Rate exceeded")
            error.code = 429
            raise error from exc
        except Exception as exc:  # Lambda reports unhandled errors with errorType = class name
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()

    original_invoke = LambdaSimpleBackend.invoke
    original_factory = state_task_factory.state_task_service_for
    bedrock_task = _bedrock_task_class(bedrock)

    def service_for(service_name: str) -> Any:
        return bedrock_task() if service_name == "bedrock" else original_factory(service_name)

    original_boto3 = boto_client.boto3
    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    state_task_factory.state_task_service_for = service_for
    boto_client.boto3 = _InterpreterBoto3(credentials)  # type: ignore[assignment]
    undo_data_limit = install_data_limit()
    undo_quiet_is_present = install_quiet_is_present()

    def uninstall() -> None:
        undo_quiet_is_present()
        undo_data_limit()
        LambdaSimpleBackend.invoke = original_invoke  # type: ignore[method-assign]
        state_task_factory.state_task_service_for = original_factory
        boto_client.boto3 = original_boto3

    return uninstall


@contextlib.contextmanager
def hooks(lambda_handlers: Mapping[str, LambdaHandler], bedrock: BedrockModel) -> Iterator[None]:
    uninstall = install(lambda_handlers, bedrock)
    try:
        yield
    finally:
        uninstall()
