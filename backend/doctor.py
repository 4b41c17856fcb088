"""`python -m backend.deploy doctor`: what a deployment needs from this account, checked with the
deployer's own credentials, as a table of ✓ / ✗ / ! with the fix for each ✗.

Checks: the Region (and that the models can be called from it), the credentials, each model's
lifecycle and the account's access to it (GetFoundationModelAvailability), the Bedrock quotas
and the Map concurrency they imply, the Lambda runtime and account concurrency, and, once
deployed, whether the email subscriptions are confirmed. `deploy` runs the same checks first
and stops on any ✗, before anything is created.

Some answers only a real call gives (docs/deploy.md, "What only a real call can tell"):
- `--smoke models` makes the smallest InvokeModel per model call with the deployer's
  credentials (price printed first, confirmation asked unless --yes). The first call also
  subscribes the account to a Marketplace model, which needs `aws-marketplace:Subscribe`: the
  deployer has it, the workflow's role rightly does not.
- `--smoke workflow` (backend/smoke.py) runs, as a temporary user, one one-image job of each
  background kind the Region offers, a review approval and a failure path through the deployed
  stack (API, stream, state machine, Bedrock, report, email), one line each, then reports what
  moto could not confirm: whether a `us.` profile id is accepted as ModelId by the optimized
  Bedrock integration, the format of the Output.S3Uri object (on what still exists), and the
  error names that integration raises. Its jobs are deleted afterwards unless `--keep`.

✓ ok, ✗ blocks the deploy (exit 1), ! worth knowing but not blocking.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from backend.errors import DeployError
from backend.regions import CallRoute, ModelRoutes, error_code, is_profile, partition_of_arn
from chalicelib.core import pace
from chalicelib.models import registry
from chalicelib.models.base import Family, LifecycleStatus, ModelSpec
from chalicelib.models.lifecycle import LifecycleChecker

OK, FAIL, WARN = "✓", "✗", "!"

# Lambda's deprecation date for each Python runtime Chalice may choose (it picks the runtime from
# the interpreter that runs it). After deprecation, creating functions is blocked 30+ days later.
# docs/aws-notes.md#n32-lambda-python-runtime-deprecation
RUNTIME_DEPRECATION = {
    "python3.10": date(2026, 6, 30),
    "python3.11": date(2027, 6, 30),
    "python3.12": date(2028, 10, 31),
    "python3.13": date(2029, 6, 30),
    "python3.14": date(2029, 6, 30),
}
RUNTIME_WARN_DAYS = 180
CREATE_BLOCKED_AFTER_DAYS = 30

# Seconds one image spends outside Bedrock (prepare, build-mask, finalize on Lambda) and the
# assumed seconds per model call until `--smoke models` measures it (UNCONFIRMED estimate).
# (the one quota model's figures: chalicelib/core/pace.py)
LAMBDA_SECONDS_PER_IMAGE = pace.LAMBDA_SECONDS_PER_IMAGE
ASSUMED_MODEL_CALL_SECONDS = pace.ASSUMED_MODEL_CALL_SECONDS
DEFAULT_MAX_CONCURRENCY = pace.DEFAULT_MAP_CONCURRENCY
CONCURRENCY_HEADROOM = pace.HEADROOM
LAMBDA_CONCURRENCY_RESERVE = 10  # the API, the stream and the label handlers run alongside the Map
SMOKE_PROMPT = "a plain light grey studio background"
# SNS: standard topics per account by default, one per user (docs/aws-notes.md#n69-sns-filter-policy-and-topic-quotas)
TOPICS_PER_ACCOUNT = 100_000


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class Findings:
    checks: list[Check] = field(default_factory=list)
    account: str = ""
    partition: str = ""
    routes: list[CallRoute] = field(default_factory=list)
    max_concurrency: int | None = None  # what the quotas imply; None when they could not be read
    call_seconds: dict[str, float] = field(default_factory=dict)  # measured by --smoke models
    unreachable: set[str] = field(default_factory=set)  # optional models this Region cannot call

    def add(self, name: str, status: str, detail: str, fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def table(self) -> str:
        width = max((len(c.name) for c in self.checks), default=10)
        lines = [f"  {c.status} {c.name.ljust(width)}  {c.detail}" for c in self.checks]
        fixes = [(c.status, c.name, c.fix) for c in self.checks if c.fix and c.status != OK]
        if fixes:
            lines.append("")
            lines += [f"  {status} {name}: {fix}" for status, name, fix in fixes]
        return "\n".join(lines)


def _code(exc: BaseException) -> str:
    return error_code(exc)


def runtime_for_this_interpreter() -> str:
    """The Lambda runtime `chalice deploy` will choose: that of the interpreter the deploy runs
    chalice under (backend/runtime.py); "" when that one cannot run chalice."""
    from backend import runtime

    return runtime.lambda_runtime(runtime.chalice_python())


def max_concurrency(
    quotas_per_minute: dict[str, float], calls: Sequence[tuple[str, float]], lambda_s: float = LAMBDA_SECONDS_PER_IMAGE
) -> int:
    """Images in flight at the quotas' pace: `quotas_per_minute` by model id (Bedrock's quotas are
    per model), `calls` each model call of one image as (model id, seconds). The one rule the
    bench and the ETA use too (chalicelib/core/pace.py)."""
    return pace.quota_pace(quotas_per_minute, calls, lambda_s).concurrency


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def quota_matches(quota_name: str, model_id: str) -> bool:
    """Service Quotas names Bedrock's per-model quotas in words ("... per minute for Stable Image
    Inpaint"); a quota matches when every word of the model's name is in it."""
    base = model_id.split(".", 1)[1] if is_profile(model_id) else model_id
    provider_and_name = base.split(".", 1)[-1]
    name_words = [w for w in _words(provider_and_name.split(":")[0]) if not re.fullmatch(r"v\d+", w)]
    quota_words = set(_words(quota_name))
    return bool(name_words) and all(w in quota_words for w in name_words)


def pick_quota(quotas: Sequence[dict[str, Any]], model_id: str) -> dict[str, Any] | None:
    """The requests-per-minute quota that governs calls to model_id: the cross-Region one for an
    inference profile, the on-demand one otherwise."""
    candidates = [
        q
        for q in quotas
        if quota_matches(q.get("QuotaName", ""), model_id)
        and ("per minute" in q.get("QuotaName", "").lower() or (q.get("Period") or {}).get("PeriodUnit") == "MINUTE")
    ]
    cross = [q for q in candidates if "cross" in q["QuotaName"].lower()]
    on_demand = [q for q in candidates if "cross" not in q["QuotaName"].lower()]
    preferred = (cross or on_demand) if is_profile(model_id) else (on_demand or cross)
    return min(preferred, key=lambda q: float(q.get("Value") or 0)) if preferred else None


def smallest_calls(spec: ModelSpec) -> list[tuple[str, str, dict[str, Any]]]:
    """(call, model id, body) of the smallest valid request per call, built by the same adapter
    the workflow uses, on a tiny photo-like image."""
    from PIL import Image, ImageDraw

    from chalicelib.imaging import images as imaging
    from chalicelib.models.base import ImageTask, JobSettings
    from chalicelib.models.scene import SceneAdapter
    from chalicelib.models.stability import StabilityAdapter

    scene_adapter = registry.adapter_for(spec)
    if isinstance(scene_adapter, SceneAdapter):  # no input image: one text-to-image call
        from chalicelib.core.backgrounds import Background
        from chalicelib.core.contracts import BackgroundSource

        call = scene_adapter.scene_call(spec, Background(BackgroundSource.SCENE, prompt=SMOKE_PROMPT), 1, "1:1")
        return [(call.step, call.model_id, call.body)]
    photo = Image.new("RGB", (128, 128), (228, 228, 222))
    ImageDraw.Draw(photo).ellipse((36, 28, 92, 108), fill=(190, 40, 40))
    geometry = imaging.fit_canvas(photo.width, photo.height, spec.image_limits)
    canvas = imaging.encode_png(imaging.to_canvas(photo, geometry))
    settings = JobSettings(model=spec.key, prompt=SMOKE_PROMPT, quality=spec.qualities[0] if spec.qualities else None)
    task = ImageTask(image_id="0" * 32, key="uploads/smoke", name="smoke.png", labels=("Subject",))
    adapter = registry.adapter_for(spec)
    first = adapter.first_call(spec, settings, task, canvas)
    calls = [(first.step, first.model_id, first.body)]
    if isinstance(adapter, StabilityAdapter):
        w, h = geometry.canvas_width, geometry.canvas_height
        keep = Image.new("L", (w, h), 0)
        ImageDraw.Draw(keep).ellipse((w * 0.28, h * 0.2, w * 0.72, h * 0.85), fill=255)
        mask = imaging.encode_png(imaging.invert_mask(keep))
        second = adapter.mask_call(spec, settings, task, canvas, mask)
        calls.append((second.step, second.model_id, second.body))
    return calls


@dataclass
class Doctor:
    """The checks, given a boto3 session in the deploy Region (clients made on demand)."""

    session: Any
    region: str
    stage: str
    models: list[ModelSpec]
    say: Callable[[str], None] = print
    confirm: Callable[[str], bool] = lambda prompt: input(prompt).strip().lower() in ("y", "yes")
    today: Callable[[], date] = lambda: datetime.now(UTC).date()
    clock: Callable[[], float] = time.monotonic
    skip: frozenset[str] = frozenset()  # check names whose ✗ the deployer chose to accept
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.session.client(service, region_name=self.region)
        return self.clients[service]

    # ---------------------------------------------------------------- the pre-deploy checks

    def run(self, *, deployed: bool = True) -> Findings:
        found = Findings()
        self.check_region(found)
        if not self.check_credentials(found):
            return self._skipped(found)
        self.check_routes(found)
        for spec in self.models:
            self.check_lifecycle(found, spec)
            self.check_access(found, spec)
        self.check_quotas(found)
        self.check_lambda(found)
        if deployed:
            self.check_subscriptions(found)
        return self._skipped(found)

    def _skipped(self, found: Findings) -> Findings:
        for check in found.checks:
            if check.status == FAIL and check.name.split(" ")[0] in self.skip:
                check.status = WARN
                check.detail += " (accepted with --skip-checks)"
        return found

    def check_region(self, found: Findings) -> None:
        known = set(self.session.get_available_regions("bedrock")) | set(
            self.session.get_available_regions("bedrock", partition_name="aws-us-gov")
        )
        if not self.region:
            found.add("region", FAIL, "no Region chosen", "pass --region (us-east-1, us-east-2 or us-west-2)")
        elif known and self.region not in known:
            found.add(
                "region",
                FAIL,
                f"{self.region}: Bedrock is not offered there",
                "choose a Region where the models run (docs/deploy.md, 'Choosing the Region')",
            )
        else:
            found.add("region", OK, self.region)

    def check_credentials(self, found: Findings) -> bool:
        try:
            identity = self.client("sts").get_caller_identity()
        except (NoCredentialsError, ClientError, BotoCoreError) as exc:
            found.add(
                "credentials",
                FAIL,
                f"no usable credentials ({_code(exc)})",
                "configure credentials (aws configure / AWS_PROFILE) for an identity that may create IAM roles; "
                f"an opt-in Region such as {self.region} must also be enabled for the account",
            )
            return False
        found.account = identity["Account"]
        found.partition = partition_of_arn(identity["Arn"])
        found.add("credentials", OK, f"{identity['Arn']} (account {found.account})")
        return True

    def check_routes(self, found: Findings) -> None:
        routes = ModelRoutes(self.client("bedrock"), self.region, found.account, found.partition)
        for spec in self.models:
            try:
                spec_routes = routes.for_models([spec])
            except DeployError as exc:
                if spec.family is Family.TEXT_TO_IMAGE:
                    # only `scene` backgrounds need it: the rest of Backdrop works without it
                    where = f" (it runs in {', '.join(spec.regions)})" if spec.regions else ""
                    found.add(
                        f"region-for {spec.key}",
                        WARN,
                        f"cannot be called from {self.region}{where}: POST /jobs will refuse scene backgrounds here",
                        f"{exc} Or set BACKDROP_MODEL_IDS to an inference profile of it that this Region can call.",
                    )
                    found.unreachable.add(spec.key)
                    continue
                found.add(f"region-for {spec.key}", FAIL, "cannot be called from this Region", str(exc))
                continue
            found.routes += spec_routes
            regions = sorted({r for route in spec_routes for r in route.destination_regions})
            source = "; ".join(sorted({route.source for route in spec_routes}))
            found.add(f"region-for {spec.key}", OK, f"routes to {', '.join(regions)} ({source})")

    def check_lifecycle(self, found: Findings, spec: ModelSpec) -> None:
        noon = datetime.combine(self.today(), datetime.min.time(), UTC).timestamp() + 43_200
        lifecycle, source = LifecycleChecker(self.client("bedrock"), clock=lambda: noon).lifecycle(spec)
        where = "Bedrock" if source == "bedrock" else source
        if not registry.is_selectable(spec, lifecycle):
            usable = ", ".join(m.key for m in registry.selectable_models() if m.key != spec.key) or "none"
            found.add(
                f"lifecycle {spec.key}",
                FAIL,
                f"end of life {lifecycle.eol_date or ''} ({where})",
                f"use another model ({usable}), or list it in BACKDROP_EXTENDED_ACCESS_MODELS if AWS granted "
                "your account extended access",
            )
        elif lifecycle.status is LifecycleStatus.LEGACY:
            found.add(
                f"lifecycle {spec.key}",
                WARN,
                f"Legacy, end of life {lifecycle.eol_date} ({where})",
                "plan a move to an Active model before that date (docs/models.md)",
            )
        else:
            found.add(f"lifecycle {spec.key}", OK, f"{lifecycle.status.value} ({where})")

    def check_access(self, found: Findings, spec: ModelSpec) -> None:
        """GetFoundationModelAvailability per base model (docs/aws-notes.md#n31-bedrock-model-access-and-quotas)."""
        problems: list[str] = []
        pending: list[str] = []
        unknown: list[str] = []
        for base_id in sorted(set(spec.base_model_ids.values())):
            try:
                answer = self.client("bedrock").get_foundation_model_availability(modelId=base_id)
            except (ClientError, BotoCoreError) as exc:
                unknown.append(f"{base_id}: {_code(exc)}")
                continue
            agreement = (answer.get("agreementAvailability") or {}).get("status", "AVAILABLE")
            if answer.get("regionAvailability") == "NOT_AVAILABLE":
                problems.append(f"{base_id} is not offered in {self.region}")
            elif answer.get("authorizationStatus") == "NOT_AUTHORIZED":
                problems.append(f"{base_id}: your identity is not authorized (IAM or an SCP denies it)")
            elif agreement == "PENDING":
                pending.append(f"{base_id}: subscription in progress")
            elif agreement == "ERROR":
                message = (answer.get("agreementAvailability") or {}).get("errorMessage", "")
                problems.append(f"{base_id}: the Marketplace agreement failed ({message})")
            elif agreement == "NOT_AVAILABLE" or answer.get("entitlementAvailability") == "NOT_AVAILABLE":
                problems.append(f"{base_id}: the account is not subscribed yet")
        name = f"access {spec.key}"
        if problems:
            found.add(
                name,
                FAIL,
                "; ".join(problems),
                "run `python -m backend.deploy doctor --smoke models` (one call per model with your credentials, "
                "which subscribes the account; the workflow's role cannot), or request access in the Bedrock "
                "console (Model access); an IAM or SCP denial needs your administrator",
            )
        elif pending:
            found.add(name, WARN, "; ".join(pending), "wait a few minutes, then run doctor again")
        elif unknown:
            found.add(
                name,
                WARN,
                f"could not ask ({'; '.join(unknown)})",
                "only a real call can tell: `python -m backend.deploy doctor --smoke models`",
            )
        else:
            found.add(name, OK, "subscribed and authorized")

    def _bedrock_quotas(self) -> list[dict[str, Any]]:
        quotas: list[dict[str, Any]] = []
        paginator = self.client("service-quotas").get_paginator("list_service_quotas")
        for page in paginator.paginate(ServiceCode="bedrock"):
            quotas += page.get("Quotas", [])
        return quotas

    def check_quotas(self, found: Findings) -> None:
        if not found.routes:
            return
        try:
            quotas = self._bedrock_quotas()
        except (ClientError, BotoCoreError) as exc:
            found.add(
                "quotas",
                WARN,
                f"could not read Service Quotas ({_code(exc)}); Map concurrency stays {DEFAULT_MAX_CONCURRENCY}",
                "allow servicequotas:ListServiceQuotas, or pass --max-concurrency from your quota (docs/deploy.md)",
            )
            return
        implied: list[int] = []  # one MaxConcurrency per per-image model; the Map runs at the tightest
        for spec in self.models:
            routes = [r for r in found.routes if r.model_key == spec.key]
            per_model: dict[str, float] = {}
            described: list[str] = []
            missing: list[str] = []
            for route in routes:
                quota = pick_quota(quotas, route.model_id)
                if quota is None or not quota.get("Value"):
                    missing.append(route.model_id)
                    continue
                # by model id: AWS applies the quota per model, so two calls of one model share it
                # (docs/aws-notes.md#n112-one-quota-model-per-model-requests-per-minute)
                per_model[route.model_id] = float(quota["Value"])
                described.append(f"{route.call} {quota['Value']:g}/min ('{quota['QuotaName']}')")
            if spec.role == "scene":
                # one call per batch, made before the Map starts: its quota paces batches, never
                # the images in flight, so it does not bound MaxConcurrency
                # (docs/aws-notes.md#n75-bedrock-quotas-and-the-maps-concurrency)
                found.add(
                    f"quota {spec.key}",
                    OK if per_model and not missing else WARN,
                    f"{'; '.join(described) or 'no per-minute quota found'}: one call per batch, which does not "
                    "bound the Map's concurrency",
                )
                continue
            if missing or not per_model:
                found.add(
                    f"quota {spec.key}",
                    WARN,
                    f"no per-minute quota found for {', '.join(missing)}; Map concurrency stays "
                    f"{DEFAULT_MAX_CONCURRENCY}",
                    "look the model up in the Service Quotas console (Amazon Bedrock) and pass --max-concurrency",
                )
                continue
            calls = [(r.model_id, found.call_seconds.get(r.model_id, ASSUMED_MODEL_CALL_SECONDS)) for r in routes]
            concurrency = max_concurrency(per_model, calls, LAMBDA_SECONDS_PER_IMAGE)
            implied.append(concurrency)
            timing = "measured" if all(r.model_id in found.call_seconds for r in routes) else "assumed"
            found.add(
                f"quota {spec.key}",
                OK,
                f"{'; '.join(described)} → MaxConcurrency {concurrency} "
                f"({timing} {sum(t for _, t in calls):.1f} s of model time per image)",
            )
        if implied:
            found.max_concurrency = min(implied)

    def check_lambda(self, found: Findings) -> None:
        from backend.runtime import CHALICE_PYTHON_VARIABLE, SUPPORTED_RUNTIMES

        runtime = runtime_for_this_interpreter()
        deprecation = RUNTIME_DEPRECATION.get(runtime)
        today = self.today()
        # chalice picks the runtime from the interpreter that runs it: python3.11 is on Amazon Linux
        # 2, past its end of life (docs/aws-notes.md#n78-lambda-python-runtimes-and-their-wheels)
        get_one = f"run `make deploy-env` (or set {CHALICE_PYTHON_VARIABLE} to a Python 3.12/3.13 with chalice)"
        if deprecation is None or runtime not in SUPPORTED_RUNTIMES:
            found.add(
                "lambda runtime",
                FAIL,
                (f"{runtime}: Backdrop deploys {' or '.join(SUPPORTED_RUNTIMES)} (Amazon Linux 2023)")
                if runtime
                else "the Python the deploy runs chalice under cannot run chalice",
                get_one,
            )
        elif (today - deprecation).days > CREATE_BLOCKED_AFTER_DAYS:
            found.add(
                "lambda runtime",
                FAIL,
                f"{runtime} was deprecated on {deprecation}: Lambda no longer creates functions with it",
                get_one,
            )
        elif (deprecation - today).days < RUNTIME_WARN_DAYS:
            found.add(
                "lambda runtime",
                WARN,
                f"{runtime} is deprecated on {deprecation}",
                "plan the move to a newer Python (the runtime follows the deploy's interpreter)",
            )
        else:
            found.add("lambda runtime", OK, f"{runtime} (supported until {deprecation})")
        self.check_lambda_concurrency(found)

    def check_lambda_concurrency(self, found: Findings) -> None:
        """The account's concurrent executions must leave room for the Map; it caps the Map."""
        try:
            limit = self.client("lambda").get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
        except (ClientError, BotoCoreError, KeyError) as exc:
            found.add("lambda concurrency", WARN, f"could not read ({_code(exc)})")
            return
        ceiling = max(1, int(limit) - LAMBDA_CONCURRENCY_RESERVE)
        if found.max_concurrency is not None and found.max_concurrency > ceiling:
            found.add(
                "lambda concurrency",
                WARN,
                f"account limit {limit}: Map concurrency capped at {ceiling} (the quota allows "
                f"{found.max_concurrency})",
                "request a higher 'Concurrent executions' quota for Lambda in Service Quotas",
            )
            found.max_concurrency = ceiling
        elif int(limit) <= LAMBDA_CONCURRENCY_RESERVE:
            found.add(
                "lambda concurrency",
                FAIL,
                f"account limit {limit} concurrent executions leaves nothing for the workflow",
                "request a higher 'Concurrent executions' quota for Lambda in Service Quotas (new accounts start low)",
            )
        else:
            found.add("lambda concurrency", OK, f"account limit {limit}")

    def check_subscriptions(self, found: Findings) -> None:
        """Email subscriptions: the users' own job-email topics and the alarm topic. SNS drops every
        message to an address that has not confirmed, silently."""
        from backend.deploy import stack_name  # the deploy module owns stack names

        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=stack_name(self.stage, "resources"))
        except ClientError:
            found.add("email", WARN, f"stage {self.stage} is not deployed yet; confirm the emails after the deploy")
            return
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", [])}
        sns = self.client("sns")
        self.check_user_topics(found, sns, legacy_topic=outputs.get("TopicArn"))
        # alarms: the deployer's operations address (deploy --email)
        topic = outputs.get("AlarmTopicArn")
        if not topic:
            return
        label = "email alarms"
        subscriptions = []
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
            subscriptions += [s for s in page.get("Subscriptions", []) if s.get("Protocol") == "email"]
        if not subscriptions:
            found.add(label, WARN, "no email subscription", "re-run deploy with --email you@example.com")
            return
        pending = [s["Endpoint"] for s in subscriptions if s["SubscriptionArn"] == "PendingConfirmation"]
        if pending:
            found.add(
                label,
                FAIL,
                f"{', '.join(pending)}: confirmation pending; SNS drops every email until it is confirmed",
                "click the link in the 'AWS Notification - Subscription Confirmation' email (check spam); "
                "it is valid for 3 days: for a new one, "
                f"`aws sns subscribe --protocol email --topic-arn {topic} --notification-endpoint <address>`"
                " or 'Request confirmation' in the SNS console",
            )
        else:
            found.add(label, OK, ", ".join(s["Endpoint"] for s in subscriptions) + " confirmed")

    def check_user_topics(self, found: Findings, sns: Any, legacy_topic: str | None = None) -> None:
        """Users' job emails: each user's own topic (backend/user_topics.py) and whether its email
        subscription is confirmed, against SNS's 100,000 topics per account. One ListSubscriptions
        walk of the account (100 a page), not one call per user."""
        from backend import resource_names

        label = "users' job emails"
        if legacy_topic:
            found.add(
                label,
                WARN,
                f"stage deployed with one shared job topic ({legacy_topic}): it stops at 200 users "
                "(SNS's filter policies per topic)",
                "re-run deploy: it gives each subscribed user their own topic (they confirm again)",
            )
        marker = ":" + resource_names.user_topic_prefix(self.stage)
        topics: dict[str, list[dict[str, Any]]] = {}
        for page in sns.get_paginator("list_subscriptions").paginate():
            for subscription in page.get("Subscriptions", []):
                if marker in subscription.get("TopicArn", "") and subscription.get("Protocol") == "email":
                    topics.setdefault(subscription["TopicArn"], []).append(subscription)
        if not topics:
            found.add(label, WARN, "no user is subscribed", "create users with `python -m backend.deploy create-user`")
            return
        pending = sorted(
            s["Endpoint"] for subs in topics.values() for s in subs if s["SubscriptionArn"] == "PendingConfirmation"
        )
        counted = (
            f"{len(topics)} user(s) with their own topic, {len(topics) - len(pending)} confirmed "
            f"(SNS allows {TOPICS_PER_ACCOUNT:,} topics per account)"
        )
        if pending:
            shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
            found.add(
                label,
                WARN,
                f"{counted}; {shown}: confirmation pending, SNS drops their job emails until they confirm",
                "they click the link in the 'AWS Notification - Subscription Confirmation' email (check spam); "
                "valid for 3 days: for a new one, `python -m backend.deploy subscribe-user --email <address>`",
            )
        else:
            found.add(label, OK, counted)

    # ---------------------------------------------------------------- --smoke models

    def smoke_models(self, found: Findings, *, yes: bool) -> None:
        """One smallest InvokeModel per model call, with the deployer's credentials."""
        for key in sorted(found.unreachable):
            found.add(f"smoke {key}", WARN, "not run: the model cannot be called from this Region")
        plan = [
            (spec, call, model_id, body)
            for spec in self.models
            if spec.key not in found.unreachable
            for call, model_id, body in smallest_calls(spec)
        ]
        total = sum(spec.price_per_image_usd / max(1, len(spec.model_ids)) for spec, *_ in plan)
        self.say(
            f"--smoke models makes {len(plan)} Bedrock call(s) with your credentials in {self.region}, about "
            f"${total:.2f} in total (prices in models.json, UNCONFIRMED):"
        )
        for spec, call, model_id, _ in plan:
            self.say(
                f"  {spec.key} {call}: {model_id} (~${spec.price_per_image_usd / max(1, len(spec.model_ids)):.3f})"
            )
        if not yes and not self.confirm("Make these calls? [y/N] "):
            found.add("smoke models", WARN, "not run (declined)")
            return
        runtime = self.client("bedrock-runtime")
        for spec, call, model_id, body in plan:
            started = self.clock()
            try:
                answer = runtime.invoke_model(
                    modelId=model_id, body=json.dumps(body), contentType="application/json", accept="application/json"
                )
                payload = json.loads(answer["body"].read())
            except (ClientError, BotoCoreError) as exc:
                found.add(f"smoke {spec.key} {call}", FAIL, f"{model_id}: {_code(exc)}: {exc}", _invoke_fix(exc))
                continue
            seconds = self.clock() - started
            found.call_seconds[model_id] = seconds
            images = payload.get("images") if isinstance(payload, dict) else None
            if not images:
                found.add(
                    f"smoke {spec.key} {call}",
                    FAIL,
                    f"{model_id} answered without images: {str(payload)[:200]}",
                    "see the model's response contract in docs/models.md",
                )
            else:
                found.add(f"smoke {spec.key} {call}", OK, f"{model_id} answered in {seconds:.1f} s")


def _invoke_fix(exc: BaseException) -> str:
    code = _code(exc)
    if code == "AccessDeniedException":
        return (
            "your identity needs bedrock:InvokeModel on the profile and its models, and aws-marketplace:Subscribe, "
            "Unsubscribe and ViewSubscriptions for the first call of a third-party model (it subscribes the account); "
            "or request access in the Bedrock console (Model access)"
        )
    if code == "ResourceNotFoundException":
        return "the model id does not exist in this Region: check BACKDROP_MODEL_IDS and models.json"
    if code in ("ThrottlingException", "ServiceQuotaExceededException"):
        return "the quota is exhausted right now (or zero on a new account): retry later or request an increase"
    return "see the message; docs/deploy.md lists the common ones"


def format_findings(found: Findings, header: str) -> str:
    verdict = (
        f"{len(found.failed)} check(s) failed: fix them, then run doctor again" if found.failed else "ready to deploy"
    )
    concurrency = (
        f"\nMap MaxConcurrency from your quotas: {found.max_concurrency}" if found.max_concurrency is not None else ""
    )
    return f"{header}\n{found.table()}{concurrency}\n\n{verdict}"


def models_for_deployment(model: str | None) -> list[ModelSpec]:
    """The models a deployment grants and checks: every selectable one (the web app offers them
    all), and the one named on the command line even if it is not selectable (so doctor says why)."""
    models = registry.selectable_models()
    if model and model not in {m.key for m in models}:
        models = [registry.get_model(model), *models]
    return models
