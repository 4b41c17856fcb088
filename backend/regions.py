"""Where a deployment's models run, and exactly what IAM must allow for them.

A `us.` cross-region inference profile is called from one of its *source* Regions and routed by
Bedrock to any of its *destination* Regions. IAM must allow the profile ARN and the foundation
model's ARN in every destination Region, or calls Bedrock routes elsewhere fail with
AccessDenied (docs/aws-notes.md#n4-stability-inference-profiles-and-iam). Rather than a list kept by hand, the
deploy asks Bedrock (`GetInferenceProfile`, control plane) for the profile's model ARNs in the
deploy Region; models.json's `regions` is the fallback when the deployer may not ask, and the
list of allowed deploy Regions when Bedrock says the profile does not exist here.

The partition (`aws`, `aws-cn`, `aws-us-gov`) comes from the caller's identity or the Region,
never a literal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from backend.errors import DeployError
from chalicelib.models.base import ModelSpec

GEO_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "ca.", "jp.", "au.", "global.")
# GetInferenceProfile's answers when the profile does not exist in the Region asked
NOT_HERE = frozenset({"ResourceNotFoundException", "ValidationException"})


def partition_for_region(region: str) -> str:
    """`aws`, `aws-cn`, `aws-us-gov`, ... from botocore's endpoint data (no call)."""
    return boto3.Session().get_partition_for_region(region)


def partition_of_arn(arn: str) -> str:
    return arn.split(":", 2)[1]


def is_profile(model_id: str) -> bool:
    return model_id.startswith(GEO_PREFIXES)


def region_of_arn(arn: str) -> str:
    return arn.split(":")[3]


def foundation_model_arn(partition: str, region: str, model_id: str) -> str:
    return f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}"


def profile_arn(partition: str, region: str, account: str, profile_id: str) -> str:
    return f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{profile_id}"


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


@dataclass(frozen=True)
class CallRoute:
    """One model call of a deployment: the id the workflow passes as ModelId and what it needs."""

    model_key: str
    call: str
    model_id: str
    invoke_arns: tuple[str, ...]  # bedrock:InvokeModel must allow every one of these
    destination_regions: tuple[str, ...]
    source: str  # "Bedrock GetInferenceProfile" or "models.json (<why Bedrock was not asked>)"


@dataclass
class ModelRoutes:
    """Resolves each call of each model to its invoke ARNs, for one Region and account."""

    bedrock: Any | None  # control-plane client ("bedrock") in the deploy Region; None: models.json only
    region: str
    account: str
    partition: str

    def for_models(self, specs: Iterable[ModelSpec]) -> list[CallRoute]:
        routes: list[CallRoute] = []
        for spec in specs:
            for call, model_id in sorted(spec.model_ids.items()):
                routes.append(self.route(spec, call, model_id))
        return routes

    def route(self, spec: ModelSpec, call: str, model_id: str) -> CallRoute:
        if not is_profile(model_id):
            return self._foundation_model(spec, call, model_id)
        if self.bedrock is None:
            return self._from_registry(spec, call, model_id, "Bedrock not asked")
        try:
            profile = self.bedrock.get_inference_profile(inferenceProfileIdentifier=model_id)
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc)
            if code in NOT_HERE:
                raise DeployError(self._not_a_source_region(spec, call, model_id, code)) from exc
            return self._from_registry(spec, call, model_id, f"GetInferenceProfile: {code}")
        model_arns = sorted({m["modelArn"] for m in profile.get("models", []) if m.get("modelArn")})
        if not model_arns:
            return self._from_registry(spec, call, model_id, "GetInferenceProfile listed no models")
        return CallRoute(
            spec.key,
            call,
            model_id,
            tuple([profile["inferenceProfileArn"], *model_arns]),
            tuple(sorted({region_of_arn(arn) for arn in model_arns})),
            "Bedrock GetInferenceProfile",
        )

    def _registry_id(self, spec: ModelSpec, call: str, model_id: str) -> bool:
        """True when model_id is the registry's own (not a BACKDROP_MODEL_IDS override), so the
        registry's regions describe it."""
        from chalicelib.models import registry

        return registry.recorded_model_id(spec.key, call) in (None, model_id)

    def _not_a_source_region(self, spec: ModelSpec, call: str, model_id: str, code: str) -> str:
        allowed = ", ".join(spec.regions) if spec.regions and self._registry_id(spec, call, model_id) else ""
        where = f"; it can be called from: {allowed}" if allowed else ""
        return (
            f"model {spec.key}: the inference profile {model_id} does not exist in {self.region} ({code}), so "
            f"{self.region} is not one of its source Regions{where}. Deploy with --region set to one of them, "
            "or set BACKDROP_MODEL_IDS to the profile of your geography (docs/deploy.md, 'Choosing the Region')."
        )

    def _from_registry(self, spec: ModelSpec, call: str, model_id: str, why: str) -> CallRoute:
        if not spec.regions or not self._registry_id(spec, call, model_id):
            raise DeployError(
                f"model {spec.key}: could not read the inference profile {model_id} ({why}) and models.json "
                "records no Regions for this id. Allow bedrock:GetInferenceProfile to the deployer, or add "
                f"the profile's Regions to the model's 'regions' in models.json."
            )
        if self.region not in spec.regions:
            raise DeployError(
                f"model {spec.key} is called through {model_id}, which can be called from "
                f"{', '.join(spec.regions)} only, not {self.region}. Deploy with --region set to one of them."
            )
        base = spec.base_model_ids.get(call) or model_id.split(".", 1)[1]
        arns = [profile_arn(self.partition, self.region, self.account, model_id)]
        arns += [foundation_model_arn(self.partition, r, base) for r in spec.regions]
        return CallRoute(spec.key, call, model_id, tuple(arns), tuple(spec.regions), f"models.json ({why})")

    def _foundation_model(self, spec: ModelSpec, call: str, model_id: str) -> CallRoute:
        if spec.regions and self.region not in spec.regions:
            raise DeployError(
                f"model {spec.key} ({model_id}) is offered in {', '.join(spec.regions)} only, not {self.region}. "
                "Deploy with --region set to one of them."
            )
        arn = foundation_model_arn(self.partition, self.region, model_id)
        return CallRoute(spec.key, call, model_id, (arn,), (self.region,), "in-Region model")


def invoke_arns(routes: Iterable[CallRoute]) -> list[str]:
    return sorted({arn for route in routes for arn in route.invoke_arns})
