"""IAM for the models comes from Bedrock's own inference-profile data; Regions are refused by name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from backend import policies
from backend.errors import DeployError
from backend.regions import ModelRoutes, invoke_arns, partition_for_region
from chalicelib.models import registry

ACCOUNT = "123456789012"
REMOVE = "us.stability.stable-image-remove-background-v1:0"
INPAINT = "us.stability.stable-image-inpaint-v1:0"


def _profile(profile_id: str, regions: list[str], region: str = "us-east-1", partition: str = "aws") -> dict[str, Any]:
    base = profile_id.split(".", 1)[1]
    return {
        "inferenceProfileName": f"US {base}",
        "inferenceProfileArn": f"arn:{partition}:bedrock:{region}:{ACCOUNT}:inference-profile/{profile_id}",
        "inferenceProfileId": profile_id,
        "models": [{"modelArn": f"arn:{partition}:bedrock:{r}::foundation-model/{base}"} for r in regions],
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    }


@pytest.fixture
def bedrock() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
    stub.assert_no_pending_responses()


def test_grants_exactly_the_destinations_bedrock_lists(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    # Bedrock may route to a Region models.json does not know yet: it is granted all the same
    regions = ["us-east-1", "us-east-2", "us-west-2", "us-west-1"]
    for profile_id in (INPAINT, REMOVE):
        stub.add_response(
            "get_inference_profile", _profile(profile_id, regions), {"inferenceProfileIdentifier": profile_id}
        )
    routes = ModelRoutes(client, "us-east-1", ACCOUNT, "aws").for_models([registry.get_model("stability-inpaint")])
    arns = invoke_arns(routes)
    for profile_id in (INPAINT, REMOVE):
        assert f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/{profile_id}" in arns
        base = profile_id.split(".", 1)[1]
        assert {f"arn:aws:bedrock:{r}::foundation-model/{base}" for r in regions} <= set(arns)
    assert len(arns) == 2 * (1 + len(regions))
    assert all(route.source == "Bedrock GetInferenceProfile" for route in routes)
    assert routes[0].destination_regions == ("us-east-1", "us-east-2", "us-west-1", "us-west-2")


def test_a_region_that_is_not_a_source_region_is_refused_with_the_allowed_ones(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_client_error(
        "get_inference_profile", "ResourceNotFoundException", "The specified inference profile doesn't exist", 404
    )
    with pytest.raises(DeployError) as refused:
        ModelRoutes(client, "eu-west-1", ACCOUNT, "aws").for_models([registry.get_model("stability-inpaint")])
    message = str(refused.value)
    assert "eu-west-1 is not one of its source Regions" in message
    assert "us-east-1, us-east-2, us-west-2" in message


def test_without_permission_to_ask_the_registry_lists_all_three_us_regions(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    for _ in range(2):
        stub.add_client_error("get_inference_profile", "AccessDeniedException", "not allowed", 403)
    routes = ModelRoutes(client, "us-east-2", ACCOUNT, "aws").for_models([registry.get_model("stability-inpaint")])
    arns = invoke_arns(routes)
    for region in ("us-east-1", "us-east-2", "us-west-2"):
        assert f"arn:aws:bedrock:{region}::foundation-model/stability.stable-image-inpaint-v1:0" in arns
    assert f"arn:aws:bedrock:us-east-2:{ACCOUNT}:inference-profile/{INPAINT}" in arns
    assert all("AccessDeniedException" in route.source for route in routes)


def test_registry_fallback_refuses_a_region_outside_its_list(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_client_error("get_inference_profile", "AccessDeniedException", "not allowed", 403)
    with pytest.raises(DeployError, match="us-east-1, us-east-2, us-west-2 only, not ap-south-1"):
        ModelRoutes(client, "ap-south-1", ACCOUNT, "aws").for_models([registry.get_model("stability-inpaint")])


def test_an_overridden_profile_uses_bedrocks_answer_and_has_no_registry_fallback(
    bedrock: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stub = bedrock
    eu_inpaint = "eu.stability.stable-image-inpaint-v1:0"
    monkeypatch.setenv("BACKDROP_MODEL_IDS", f'{{"stability-inpaint": {{"inpaint": "{eu_inpaint}"}}}}')
    spec = registry.get_model("stability-inpaint")
    stub.add_response(
        "get_inference_profile",
        _profile(eu_inpaint, ["eu-central-1", "eu-west-1"], region="eu-west-1"),
        {"inferenceProfileIdentifier": eu_inpaint},
    )
    route = ModelRoutes(client, "eu-west-1", ACCOUNT, "aws").route(spec, "inpaint", eu_inpaint)
    assert route.destination_regions == ("eu-central-1", "eu-west-1")
    stub.add_client_error("get_inference_profile", "AccessDeniedException", "not allowed", 403)
    with pytest.raises(DeployError, match="records no Regions for this id"):
        ModelRoutes(client, "eu-west-1", ACCOUNT, "aws").route(spec, "inpaint", eu_inpaint)


def test_partition_is_derived_not_assumed() -> None:
    assert partition_for_region("cn-north-1") == "aws-cn"
    assert partition_for_region("us-gov-west-1") == "aws-us-gov"
    outputs = {
        "BucketName": "b",
        "TableArn": f"arn:aws-cn:dynamodb:cn-north-1:{ACCOUNT}:table/t",
        "StreamArn": f"arn:aws-cn:dynamodb:cn-north-1:{ACCOUNT}:table/t/stream/x",
        "StreamFailureQueueArn": f"arn:aws-cn:sqs:cn-north-1:{ACCOUNT}:q",
    }
    documents = policies.lambda_policies(outputs, "dev", "cn-north-1", ACCOUNT, registry.selectable_models())
    text = repr(documents)
    assert "arn:aws:" not in text
    assert "arn:aws-cn:s3:::b/uploads/*" in text
    assert f"arn:aws-cn:sns:cn-north-1:{ACCOUNT}:backdrop-dev_user-*" in text  # the users' job-email topics
    assert policies.state_machine_arn("cn-north-1", ACCOUNT, "dev").startswith("arn:aws-cn:states:cn-north-1:")
