"""Every AWS call made by Backdrop's code in the tests and the local stack is checked against the IAM
policy of the Lambda function that makes it (docs/aws-notes.md#n61-iam-evaluation-as-the-guard-does-it).

moto enforces no IAM: a role missing an action passes every test and fails on the first real
account. This guard closes that gap, and nothing of it is deployed:

- the policies are the real ones, rendered by `backend.policies.lambda_policies` from
  chalicelib/core/functions.py for the tests' (or the local stack's) resource names;
- each botocore operation is mapped to the IAM action(s) and resource ARN(s) AWS authorizes it
  as (the Service Authorization Reference, docs/aws-notes.md#n62-operations-and-the-actions-they-need);
  an operation a function calls that is not in the map fails loudly, so a new call must be mapped;
- the call is evaluated before it is made: Allow statements with IAM's wildcards and the
  `StringLike` conditions the policies use, everything else implicitly denied. A denied call
  raises the ClientError AWS answers (S3 `AccessDenied` 403, DynamoDB `AccessDeniedException`...);
- a GetObject/HeadObject of a missing key by a function without `s3:ListBucket` answers 403, not
  404 (docs/aws-notes.md#n63-s3-answers-403-for-a-missing-key-without-listbucket);
- the caller is a contextvar "principal", set while a handler registered by app.py runs (every
  handler is wrapped at install; the API's routes run as `api_handler`); thread pools started
  inside a handler keep it. Calls with no principal (test setup, uploads, tooling) are not checked.

`BACKDROP_IAM_MUTATION=function:kind:value[,...]` removes declared units (`finalize:table_actions:Query`,
`start_workflow:grants:stop-workflow`, `record_failure:s3_read:scratch/`) before rendering:
backend/local/iam_mutations.py removes each in turn and expects a test to fail.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import dataclasses
import functools
import json
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote

from chalicelib.core.functions import API_HANDLER, FUNCTIONS, Grant, LambdaFunction

log = logging.getLogger("backdrop.local.iam")

MUTATION_ENV = "BACKDROP_IAM_MUTATION"
_MODEL_SETTINGS = ("BACKDROP_MODEL_REGISTRY", "BACKDROP_EXTENDED_ACCESS_MODELS")
_principal: contextvars.ContextVar[str | None] = contextvars.ContextVar("backdrop_iam_principal", default=None)

# The kinds of declared permission units in a LambdaFunction (chalicelib/core/functions.py)
UNIT_KINDS = ("s3_read", "s3_write", "s3_delete", "table_actions", "grants")


# ------------------------------------------------------------------------------------------------
# Where: the resource names the policies are rendered for


@dataclass(frozen=True, eq=False)  # hashed by identity: it keys every cached decision
class Deployment:
    """The names a stage's resources have in the tests or the local stack; `aliases` are ARN
    prefixes that name the same resource another way (the tests' conftest names its default state
    machine `backdrop-test`, the stack fixture's is `backdrop-test-workflow`)."""

    stage: str
    bucket: str
    table: str
    region: str = "us-east-1"
    account: str = "123456789012"
    aliases: tuple[tuple[str, str], ...] = ()

    @property
    def table_arn(self) -> str:
        return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{self.table}"

    @property
    def state_machine_arn(self) -> str:
        from backend.policies import state_machine_arn

        return state_machine_arn(self.region, self.account, self.stage, "aws")

    def outputs(self) -> dict[str, str]:
        prefix = f"arn:aws:{{}}:{self.region}:{self.account}:backdrop-{self.stage}"
        return {
            "BucketName": self.bucket,
            "TableArn": self.table_arn,
            # moto names the stream by its creation time: any of this table's streams
            "StreamArn": f"{self.table_arn}/stream/*",
            "TopicArn": f"{prefix.format('sns')}-notifications",
            "StreamFailureQueueArn": f"{prefix.format('sqs')}-stream-failures",
            "BackgroundFailureQueueArn": f"{prefix.format('sqs')}-background-failures",
            # moto names a key by a random id: the tests' and the stack's stage has one signing key
            "CredentialsKeyArn": f"arn:aws:kms:{self.region}:{self.account}:key/*",
        }

    def canonical(self, arn: str) -> str:
        for alias, real in self.aliases:
            if arn == alias or arn.startswith(alias + ":"):
                return real + arn[len(alias) :]
        return arn


@functools.cache  # one object per Region: decisions are cached by deployment
def tests_deployment(region: str = "us-east-1") -> Deployment:
    """The tests' names (tests/conftest.py), in `region` (a test marked `region`)."""
    base = f"arn:aws:states:{region}:123456789012"
    topic = f"arn:aws:sns:{region}:123456789012:backdrop-test"
    aliases = (
        (f"{base}:stateMachine:backdrop-test", f"{base}:stateMachine:backdrop-test-workflow"),
        (f"{base}:execution:backdrop-test", f"{base}:execution:backdrop-test-workflow"),
        (topic, f"{topic}-notifications"),
    )
    return Deployment("test", bucket="backdrop-test-bucket", table="backdrop-test-jobs", region=region, aliases=aliases)


TESTS = tests_deployment()


def local_deployment(stage: str, region: str) -> Deployment:
    """The local stack's names (backend/local/stack.py: prefix backdrop-<stage>)."""
    return Deployment(stage, bucket=f"backdrop-{stage}-bucket", table=f"backdrop-{stage}-jobs", region=region)


# ------------------------------------------------------------------------------------------------
# Mutations: a declaration with units removed


def parse_mutation(text: str | None) -> tuple[tuple[str, str, str], ...]:
    units = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, kind, value = part.strip().split(":", 2)
        if kind not in UNIT_KINDS:
            raise ValueError(f"{MUTATION_ENV}: unknown kind {kind!r} in {part!r} (one of {UNIT_KINDS})")
        units.append((name, kind, value))
    return tuple(units)


def declared_units(declared: LambdaFunction) -> list[tuple[str, str]]:
    """(kind, value) for every permission unit the declaration holds."""
    out: list[tuple[str, str]] = []
    for kind in UNIT_KINDS:
        values = getattr(declared, kind)
        out += [(kind, str(v)) for v in (sorted(values) if kind == "grants" else values)]
    return out


def mutate(functions: Sequence[LambdaFunction], units: Sequence[tuple[str, str, str]]) -> tuple[LambdaFunction, ...]:
    out = list(functions)
    names = [f.name for f in out]
    for name, kind, value in units:
        if name not in names:
            raise ValueError(f"{MUTATION_ENV}: no function {name!r}")
        i = names.index(name)
        current = getattr(out[i], kind)
        if kind == "grants":
            grant = Grant(value)
            if grant not in current:
                raise ValueError(f"{MUTATION_ENV}: {name} has no grant {value!r}")
            out[i] = dataclasses.replace(out[i], grants=frozenset(current - {grant}))
        else:
            if value not in current:
                raise ValueError(f"{MUTATION_ENV}: {name}.{kind} has no {value!r}")
            kept: Any = tuple(v for v in current if v != value)
            out[i] = dataclasses.replace(out[i], **{kind: kept})
    return tuple(out)


# ------------------------------------------------------------------------------------------------
# The evaluator: Allow statements, wildcards, StringLike conditions; otherwise implicit deny


@functools.cache
def _glob(pattern: str, *, case: bool) -> re.Pattern[str]:
    """IAM's wildcards: `*` any run of characters (across `/` and `:`), `?` one character."""
    body = "".join(".*" if p == "*" else "." if p == "?" else re.escape(p) for p in re.split(r"([*?])", pattern))
    return re.compile(body if case else f"(?i:{body})", re.DOTALL)


@dataclass(frozen=True)
class _Statement:
    sid: str
    actions: tuple[re.Pattern[str], ...]
    resources: tuple[tuple[re.Pattern[str], str], ...]  # pattern, the declared unit it comes from
    action_units: Mapping[str, str]  # lower-case action → unit (the jobs table's actions)
    conditions: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]  # StringLike key → values
    unit: str | None  # the unit of the whole statement (a Grant), if it has one


@dataclass(frozen=True)
class Decision:
    principal: str
    action: str
    resource: str
    allowed: bool
    units: tuple[str, ...] = ()  # the declared units that allowed it ("function:kind:value")
    sid: str = ""
    operation: str = ""  # the call that needed it (service.Operation), for the denial's message


class Policy:
    """One function's rendered policy, compiled once; `units_of` names each statement's origin."""

    def __init__(self, name: str, document: Mapping[str, Any], units_of: Callable[[Mapping[str, Any]], Any]) -> None:
        self.name = name
        self.statements: list[_Statement] = []
        for st in document["Statement"]:
            if st.get("Effect") != "Allow":
                raise ValueError(f"{name}: only Allow statements are rendered (got {st.get('Effect')})")
            unit, resource_units, action_units = units_of(st)
            conditions = []
            for operator, keys in (st.get("Condition") or {}).items():
                if operator != "StringLike":  # the only operator backend/policies.py uses
                    raise ValueError(f"{name}: condition operator {operator} is not evaluated here")
                for key, values in keys.items():
                    values = [values] if isinstance(values, str) else values
                    conditions.append((key, tuple(_glob(v, case=True) for v in values)))
            resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
            actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
            self.statements.append(
                _Statement(
                    sid=st.get("Sid", ""),
                    actions=tuple(_glob(a, case=False) for a in actions),
                    resources=tuple((_glob(r, case=True), resource_units.get(r, "")) for r in resources),
                    action_units=action_units,
                    conditions=tuple(conditions),
                    unit=unit,
                )
            )

    def evaluate(self, action: str, resource: str, context: Mapping[str, str] | None = None) -> Decision:
        context = context or {}
        for st in self.statements:
            if not any(p.fullmatch(action) for p in st.actions):
                continue
            matched = [unit for pattern, unit in st.resources if pattern.fullmatch(resource)]
            if not matched:
                continue
            # StringLike: the key must be in the request and match one value (a missing key never matches)
            if not all(
                key in context and any(v.fullmatch(context[key]) for v in values) for key, values in st.conditions
            ):
                continue
            units = [u for u in (st.unit, st.action_units.get(action.lower()), *matched) if u]
            return Decision(self.name, action, resource, True, tuple(dict.fromkeys(units)), st.sid)
        return Decision(self.name, action, resource, False)


def _render(deployment: Deployment, functions: Sequence[LambdaFunction]) -> dict[str, dict[str, Any]]:
    from backend import policies
    from chalicelib.models import registry

    return policies.lambda_policies(
        deployment.outputs(),
        deployment.stage,
        deployment.region,
        deployment.account,
        registry.selectable_models(),
        "aws",
        functions=functions,
    )


def compile_policies(
    deployment: Deployment, functions: Sequence[LambdaFunction] = FUNCTIONS, only: str | None = None
) -> dict[str, Policy]:
    """Each function's compiled policy (`only`: that function's), each statement tied to the
    declared unit it comes from: S3 prefixes and table actions by name, a Grant by rendering the
    declaration without it."""
    documents = _render(deployment, functions)
    functions = [f for f in functions if only is None or f.name == only]
    grant_sids: dict[str, dict[str, str]] = {}
    for declared in functions:
        sids = {st.get("Sid") for st in documents[declared.name]["Statement"]}
        grant_sids[declared.name] = {}
        for grant in declared.grants - {Grant.OWNER_INDEX}:
            without = dataclasses.replace(declared, grants=frozenset(declared.grants - {grant}))
            rest = {st.get("Sid") for st in _render(deployment, [without])[declared.name]["Statement"]}
            for sid in sids - rest:
                grant_sids[declared.name][str(sid)] = f"{declared.name}:grants:{grant.value}"

    bucket = f"arn:aws:s3:::{deployment.bucket}"
    compiled = {}
    for declared in functions:
        name = declared.name

        def units_of(st: Mapping[str, Any], declared: LambdaFunction = declared) -> tuple[Any, ...]:
            sid = st.get("Sid", "")
            by_resource: dict[str, str] = {}
            by_action: dict[str, str] = {}
            kind = {"ReadObjects": "s3_read", "WriteObjects": "s3_write", "DeleteObjects": "s3_delete"}.get(sid)
            if kind:
                by_resource = {f"{bucket}/{p}*": f"{declared.name}:{kind}:{p}" for p in getattr(declared, kind)}
                return None, by_resource, by_action
            if sid == "JobsTable":
                by_action = {
                    f"dynamodb:{a}".lower(): f"{declared.name}:table_actions:{a}" for a in declared.table_actions
                }
                index = f"{deployment.table_arn}/index/*"
                by_resource = {index: f"{declared.name}:grants:{Grant.OWNER_INDEX.value}"}
                return None, by_resource, by_action
            return grant_sids[declared.name].get(sid), by_resource, by_action

        compiled[name] = Policy(name, documents[name], units_of)
    return compiled


# ------------------------------------------------------------------------------------------------
# Operations → actions and resources (Service Authorization Reference; docs/aws-notes.md#n62-operations-and-the-actions-they-need)


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


class UnmappedOperation(RuntimeError):
    """A function called an operation the guard cannot authorize: map it here."""


def _s3_object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _table(region: str, account: str, name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def _function_arn(region: str, account: str, name: str) -> str:
    if name.startswith("arn:"):
        parts = name.split(":")
        return ":".join(parts[:7])  # without a qualifier: the policy names the function
    return f"arn:aws:lambda:{region}:{account}:function:{name.split(':')[0]}"


def _queue_arn(region: str, url: str) -> str:
    # https://sqs.<region>.amazonaws.com/<account>/<name> (moto: http://localhost:port/<account>/<name>)
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_STATES_BY_EXECUTION = {"StopExecution", "DescribeExecution", "GetExecutionHistory"}
_STATES_BY_MACHINE = {"StartExecution", "ListExecutions", "DescribeStateMachine", "StartSyncExecution"}
_S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",  # HEAD needs READ: s3:GetObject
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
}


def requests_for(service: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Request]:
    """The IAM action(s) and resource(s) AWS authorizes `operation` as."""
    if service == "s3":
        if operation in _S3_OBJECT_ACTIONS:
            return [Request(_S3_OBJECT_ACTIONS[operation], _s3_object(params["Bucket"], params["Key"]))]
        if operation in ("CopyObject", "UploadPartCopy"):
            source = params["CopySource"]
            if isinstance(source, str):
                src_bucket, _, src_key = unquote(source.lstrip("/").split("?")[0]).partition("/")
            else:
                src_bucket, src_key = source["Bucket"], source["Key"]
            return [
                Request("s3:GetObject", _s3_object(src_bucket, src_key)),
                Request("s3:PutObject", _s3_object(params["Bucket"], params["Key"])),
            ]
        if operation == "DeleteObjects":
            return [
                Request("s3:DeleteObject", _s3_object(params["Bucket"], o["Key"])) for o in params["Delete"]["Objects"]
            ]
        if operation in ("ListObjectsV2", "ListObjects"):
            return [
                Request("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", {"s3:prefix": params.get("Prefix", "")})
            ]
        if operation == "ListMultipartUploads":
            return [Request("s3:ListBucketMultipartUploads", f"arn:aws:s3:::{params['Bucket']}")]
        if operation == "HeadBucket":
            return [Request("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}")]
    if service == "dynamodb":
        if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "DescribeTable"):
            return [Request(f"dynamodb:{operation}", _table(region, account, params["TableName"]))]
        if operation in ("Query", "Scan"):
            resource = _table(region, account, params["TableName"])
            if params.get("IndexName"):
                resource += f"/index/{params['IndexName']}"
            return [Request(f"dynamodb:{operation}", resource)]
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [Request(f"dynamodb:{operation}", _table(region, account, t)) for t in params["RequestItems"]]
        if operation == "TransactWriteItems":
            out = []
            for item in params["TransactItems"]:
                [(kind, body)] = item.items()
                out.append(Request(f"dynamodb:{_TRANSACT_WRITE[kind]}", _table(region, account, body["TableName"])))
            return out
        if operation == "TransactGetItems":
            return [
                Request("dynamodb:GetItem", _table(region, account, item["Get"]["TableName"]))
                for item in params["TransactItems"]
            ]
    if service == "dynamodbstreams" and operation in ("DescribeStream", "GetRecords", "GetShardIterator"):
        arn = params.get("StreamArn") or str(params.get("ShardIterator", ""))
        return [Request(f"dynamodb:{operation}", arn)]
    if service == "stepfunctions":
        if operation in _STATES_BY_EXECUTION:
            return [Request(f"states:{operation}", params["executionArn"])]
        if operation in _STATES_BY_MACHINE:
            return [Request(f"states:{operation}", params["stateMachineArn"])]
        if operation in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
            # the token names no ARN: authorized on the state machine the policy names (the caller's)
            return [Request(f"states:{operation}", "<task-token>")]
    if service == "sns" and operation == "Publish":
        return [Request("sns:Publish", params.get("TopicArn") or params.get("TargetArn", ""))]
    if service == "sqs" and operation in ("SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage"):
        return [Request(f"sqs:{operation}", _queue_arn(region, params["QueueUrl"]))]
    if service == "lambda" and operation == "Invoke":
        return [Request("lambda:InvokeFunction", _function_arn(region, account, params["FunctionName"]))]
    if service == "kms" and operation in ("Sign", "GetPublicKey"):
        key = str(params["KeyId"])
        return [
            Request(f"kms:{operation}", key if key.startswith("arn:") else f"arn:aws:kms:{region}:{account}:key/{key}")
        ]
    if service == "rekognition" and operation in ("DetectLabels", "DetectText"):
        return [Request(f"rekognition:{operation}", "*")]  # no resource-level permissions
    if service == "bedrock":
        if operation == "GetFoundationModel":
            model = params["modelIdentifier"]
            arn = model if model.startswith("arn:") else f"arn:aws:bedrock:{region}::foundation-model/{model}"
            return [Request("bedrock:GetFoundationModel", arn)]
        if operation == "ListFoundationModels":
            return [Request("bedrock:ListFoundationModels", "*")]
    if service == "bedrock-runtime" and operation in ("InvokeModel", "InvokeModelWithResponseStream"):
        model = params["modelId"]
        arn = model if model.startswith("arn:") else f"arn:aws:bedrock:{region}::foundation-model/{model}"
        return [Request(f"bedrock:{operation}", arn)]
    raise UnmappedOperation(
        f"{service}.{operation} is not mapped to IAM actions in backend/local/iam.py: add it "
        "(from the Service Authorization Reference) before a Lambda may call it"
    )


# What each service answers a denied call with (its own error code and HTTP status)
_DENIAL = {
    "s3": ("AccessDenied", 403),
    "dynamodb": ("AccessDeniedException", 400),
    "dynamodbstreams": ("AccessDeniedException", 400),
    "stepfunctions": ("AccessDeniedException", 400),
    "lambda": ("AccessDeniedException", 403),
    "rekognition": ("AccessDeniedException", 400),
    "kms": ("AccessDeniedException", 400),
    "bedrock": ("AccessDeniedException", 403),
    "bedrock-runtime": ("AccessDeniedException", 403),
    "sns": ("AuthorizationError", 403),
    "sqs": ("AccessDenied", 403),
}


# ------------------------------------------------------------------------------------------------
# The guard


class Guard:
    """Evaluates and records; `denials` and `checked` are what the tests and the stack report."""

    def __init__(self, deployment: Deployment, mutation: str | None = None) -> None:
        self.deployment = deployment
        self.mutation = parse_mutation(mutation)
        self._lock = threading.Lock()
        self.checked = 0
        self.denials: list[Decision] = []
        self.unmapped: list[str] = []
        self.missing_key_403s = 0  # GET/HEAD of a missing key answered 403, as S3 does without ListBucket
        self.used_units: Counter[str] = Counter()
        # every decision, counted by who, what, the outcome and the units that allowed it (not by
        # resource: a 10,000-image local run would keep a key per object)
        self.decisions: Counter[tuple[str, str, bool, tuple[str, ...]]] = Counter()
        self.on_denial: Callable[[Decision], None] | None = None
        self._policies: dict[tuple[Deployment, tuple[str | None, ...]], dict[str, Policy]] = {}

    @staticmethod
    def _models_key() -> tuple[str | None, ...]:
        """What decides the models a deploy renders bedrock:GetFoundationModel for (backend/deploy.py:
        registry.selectable_models() under the stage's settings), so a test that changes it gets the
        policy such a deployment would have."""
        return tuple(os.environ.get(k) for k in _MODEL_SETTINGS)

    def policies(
        self, key: tuple[str | None, ...] | None = None, deployment: Deployment | None = None
    ) -> dict[str, Policy]:
        deployment = deployment or self.deployment
        full_key = (deployment, self._models_key() if key is None else key)
        if full_key not in self._policies:
            with self._lock:
                self._policies[full_key] = compile_policies(deployment, mutate(FUNCTIONS, self.mutation))
        return self._policies[full_key]

    def use(self, deployment: Deployment) -> Callable[[], None]:
        """Evaluate for another deployment's names (the local stack started inside a test run)."""
        previous, self.deployment = self.deployment, deployment

        def restore() -> None:
            self.deployment = previous

        return restore

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one guard per run; the same call repeats thousands of times
    def _evaluate(
        self,
        deployment: Deployment,
        key: tuple[str | None, ...],
        principal: str,
        action: str,
        resource: str,
        context: tuple[tuple[str, str], ...],
    ) -> Decision:
        if resource == "<task-token>":
            resource = deployment.state_machine_arn
        policy = self.policies(key, deployment).get(principal)
        if policy is None:
            raise UnmappedOperation(f"{principal!r} is not a function declared in chalicelib/core/functions.py")
        return policy.evaluate(action, deployment.canonical(resource), dict(context))

    def check(self, principal: str, request: Request, operation: str = "") -> Decision:
        context = tuple(sorted(request.context.items()))
        models = self._models_key()
        decision = self._evaluate(self.deployment, models, principal, request.action, request.resource, context)
        if operation and not decision.allowed:
            decision = dataclasses.replace(decision, operation=operation)
        self.record(decision)
        return decision

    def record(self, decision: Decision) -> None:
        with self._lock:
            self.checked += 1
            self.decisions[(decision.principal, decision.action, decision.allowed, decision.units)] += 1
            if decision.allowed:
                self.used_units.update(decision.units)
            else:
                self.denials.append(decision)
        if not decision.allowed:
            log.error(
                "IAM: %s may not %s on %s (%s; no statement of its policy allows it: chalicelib/core/functions.py)",
                decision.principal,
                decision.action,
                decision.resource,
                decision.operation or "a call",
            )
            if self.on_denial:
                self.on_denial(decision)

    def note_missing_key(self, decision: Decision, key: str) -> None:
        with self._lock:
            self.missing_key_403s += 1
        log.warning("IAM: S3 answered 403 to %s for missing %s (%s)", decision.principal, key, decision.operation)

    def has_list_bucket(self, principal: str, bucket: str) -> bool:
        """Whether S3 would say 404 to this principal for a missing key. Conservative: only an
        unconditioned s3:ListBucket counts (a GET carries no s3:prefix to meet a condition)."""
        bucket_arn = f"arn:aws:s3:::{bucket}"
        return self._evaluate(self.deployment, self._models_key(), principal, "s3:ListBucket", bucket_arn, ()).allowed

    def authorize(self, principal: str, service: str, operation: str, params: Mapping[str, Any], region: str) -> None:
        """Raise the service's own AccessDenied ClientError for a call the principal may not make."""
        try:
            requests = requests_for(service, operation, params, region, self.deployment.account)
        except UnmappedOperation as exc:
            with self._lock:
                self.unmapped.append(f"{principal}: {service}.{operation}")
            raise exc
        for request in requests:
            decision = self.check(principal, request, f"{service}.{operation}")
            if not decision.allowed:
                raise access_denied(service, operation, decision)


def access_denied(service: str, operation: str, decision: Decision) -> Exception:
    from botocore.exceptions import ClientError

    code, status = _DENIAL.get(service, ("AccessDeniedException", 403))
    role = f"arn:aws:sts::123456789012:assumed-role/backdrop-{decision.principal}/{decision.principal}"
    message = (
        f"User: {role} is not authorized to perform: {decision.action} on resource: {decision.resource} "
        f"because no identity-based policy allows the {decision.action} action"
    )
    if service == "s3" and operation == "HeadObject":  # a HEAD answer has no body: botocore says "403"
        code, message = "403", "Forbidden"
    return ClientError(
        cast(Any, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}),
        operation,
    )


# ------------------------------------------------------------------------------------------------
# Attribution


def current_principal() -> str | None:
    return _principal.get()


@contextmanager
def running_as(principal: str | None) -> Iterator[None]:
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)


class RunsAs:
    """A handler that runs as its declared function; everything else is the handler's."""

    def __init__(self, principal: str, handler: Callable[..., Any]) -> None:
        self.runs_as = principal
        self.wrapped_handler = handler

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with running_as(self.runs_as):
            return self.wrapped_handler(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # what Chalice's handler objects carry (func, name...)
        return getattr(self.wrapped_handler, name)


def check_invoke(function_name: str) -> None:
    """An asynchronous Lambda invoke the local stack replaces by a thread is checked as the invoke
    it stands for (lambda:InvokeFunction of the target, by the caller)."""
    guard, principal = _installed, current_principal()
    if guard is None or principal is None:
        return
    from backend.resource_names import lambda_function

    arn = _function_arn(
        guard.deployment.region, guard.deployment.account, lambda_function(guard.deployment.stage, function_name)
    )
    decision = guard.check(principal, Request("lambda:InvokeFunction", arn))
    if not decision.allowed:
        raise access_denied("lambda", "Invoke", decision)


# ------------------------------------------------------------------------------------------------
# Installation: botocore, the presigners, the app's handlers, thread pools

_installed: Guard | None = None
_last: Guard | None = None  # the guard of this run, for the summary after it is uninstalled


def installed() -> Guard | None:
    return _installed


def last_guard() -> Guard | None:
    return _last


def install_for(deployment: Deployment) -> Callable[[], None]:
    """The local stack's entry: install the guard, or, inside a test run that has one, point it
    at this deployment's names until the undo."""
    if _installed is not None:
        return _installed.use(deployment)
    return install(deployment)


def install(deployment: Deployment, mutation: str | None = None) -> Callable[[], None]:
    """Check every call from now on; returns the undo. `mutation` defaults to $BACKDROP_IAM_MUTATION."""
    global _installed, _last
    import botocore.client
    import botocore.signers

    if _installed is not None:
        raise RuntimeError("the IAM guard is already installed")
    guard = Guard(deployment, os.environ.get(MUTATION_ENV) if mutation is None else mutation)
    guard.policies()  # compiled now: a declaration the guard cannot render fails here, not in a handler
    undo: list[Callable[[], None]] = []

    def patch(owner: Any, name: str, new: Any) -> None:
        old = owner.__dict__[name]
        setattr(owner, name, new)
        undo.append(lambda: setattr(owner, name, old))

    client_class: Any = botocore.client.BaseClient
    real_emit = client_class._emit_api_params
    real_call = client_class._make_api_call

    def emit_api_params(self: Any, api_params: Any, operation_model: Any, context: Any) -> Any:
        params = real_emit(self, api_params, operation_model, context)
        principal = _principal.get()
        # a presigned POST first builds a CreateBucket request (botocore.signers): its key is checked below
        if principal is not None and not (context.get("is_presign_request") and operation_model.name == "CreateBucket"):
            guard.authorize(
                principal, self.meta.service_model.service_name, operation_model.name, params, self.meta.region_name
            )
        return params

    def make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return real_call(self, operation_name, api_params)
        except ClientError as exc:
            principal = _principal.get()
            missing = exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")
            if (
                principal is None
                or not missing
                or self.meta.service_model.service_name != "s3"
                or operation_name not in ("GetObject", "HeadObject")
                or guard.has_list_bucket(principal, api_params["Bucket"])
            ):
                raise
            # S3 answers 403 to a caller that may not list the bucket (docs/aws-notes.md#n63-s3-answers-403-for-a-missing-key-without-listbucket). It is
            # AWS's answer, not a permission the function lacks: counted apart, and the test fails
            # only if the code mishandles it (a lost cause, a 500 for a 404)
            bucket = f"arn:aws:s3:::{api_params['Bucket']}"
            decision = Decision(
                principal, "s3:ListBucket", bucket, False, operation=f"s3.{operation_name} of a missing key"
            )
            guard.note_missing_key(decision, api_params["Key"])
            raise access_denied("s3", operation_name, decision) from None

    real_post = botocore.signers.S3PostPresigner.generate_presigned_post

    def presigned_post(
        self: Any, request_dict: Any, fields: Any = None, conditions: Any = None, expires_in: int = 3600
    ) -> Any:
        principal = _principal.get()
        if principal is not None:
            bucket = next(c["bucket"] for c in conditions or [] if isinstance(c, dict) and "bucket" in c)
            decision = guard.check(principal, Request("s3:PutObject", _s3_object(bucket, fields["key"])))
            if not decision.allowed:
                raise access_denied("s3", "PutObject", decision)
        return real_post(self, request_dict, fields, conditions, expires_in)

    patch(botocore.client.BaseClient, "_emit_api_params", emit_api_params)
    patch(botocore.client.BaseClient, "_make_api_call", make_api_call)
    patch(botocore.signers.S3PostPresigner, "generate_presigned_post", presigned_post)

    # a pool's workers keep the principal of the code that submitted the work
    real_submit = concurrent.futures.ThreadPoolExecutor.submit

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return real_submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    patch(concurrent.futures.ThreadPoolExecutor, "submit", submit)
    undo.append(_wrap_app_handlers())
    _installed = _last = guard

    def uninstall() -> None:
        global _installed
        while undo:
            undo.pop()()
        _installed = None

    return uninstall


def _wrap_app_handlers() -> Callable[[], None]:
    """Every handler app.py registers runs as its function: in the Chalice handler map (the test
    client's `lambda_.invoke`), as module attributes (the local stack and direct calls), and the
    routes as the API handler (an http middleware, outermost)."""
    import app as backdrop_app

    app = backdrop_app.app
    declared = {f.name for f in FUNCTIONS}
    saved_map = dict(app.handler_map)
    saved_attrs: dict[str, Any] = {}
    for name, handler in saved_map.items():
        if name not in declared:
            continue  # routes are registered by path; authorizers are not Lambda functions of ours
        wrapped = RunsAs(name, handler)
        app.handler_map[name] = wrapped
        for attr, value in vars(backdrop_app).items():
            if value is handler:
                saved_attrs[attr] = value
                setattr(backdrop_app, attr, wrapped)

    def as_api(event: Any, get_response: Callable[[Any], Any]) -> Any:
        with running_as(API_HANDLER):
            return get_response(event)

    app.middleware_handlers.insert(0, (as_api, "http"))

    def undo() -> None:
        app.handler_map.clear()
        app.handler_map.update(saved_map)
        for attr, value in saved_attrs.items():
            setattr(backdrop_app, attr, value)
        app.middleware_handlers.remove((as_api, "http"))

    return undo


def summary(guard: Guard) -> str:
    return (
        f"IAM guard: {guard.checked} AWS calls checked against their function's policy, {len(guard.denials)} denied; "
        f"{guard.missing_key_403s} reads of a missing key answered 403 as S3 does without s3:ListBucket"
    )


def denial_lines(decisions: Sequence[Decision]) -> list[str]:
    seen = dict.fromkeys(
        f"{d.principal} may not {d.action} on {d.resource}" + (f" ({d.operation})" if d.operation else "")
        for d in decisions
    )
    return list(seen)


def dump_usage(guard: Guard, path: str, usage: Mapping[str, set[str]]) -> None:
    with open(path, "w") as out:
        json.dump({unit: sorted(tests) for unit, tests in sorted(usage.items())}, out, indent=1)


__all__ = [
    "TESTS",
    "Decision",
    "Deployment",
    "Guard",
    "Policy",
    "RunsAs",
    "check_invoke",
    "compile_policies",
    "current_principal",
    "declared_units",
    "install",
    "installed",
    "local_deployment",
    "mutate",
    "parse_mutation",
    "requests_for",
    "running_as",
]
