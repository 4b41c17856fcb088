"""botocore's data loader as the clients use it (chalicelib/store/sdk_data.py): the same models as
botocore's own loader, without listing every service's directory or building OrderedDicts."""

from __future__ import annotations

import os
from typing import Any

import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError

from chalicelib.store import clients as aws
from chalicelib.store import sdk_data

# every service a Backdrop Lambda builds a client for (chalicelib/store/clients.py callers)
SERVICES = ("dynamodb", "s3", "rekognition", "stepfunctions", "sns", "lambda", "kms", "sqs", "bedrock-runtime")


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("type_name", ["service-2", "endpoint-rule-set-1", "paginators-1"])
def test_models_load_as_botocore_loads_them(service: str, type_name: str) -> None:
    stock = botocore.loaders.Loader()
    quick = sdk_data.loader()
    try:
        expected = stock.load_service_model(service, type_name)
    except botocore.exceptions.DataNotFoundError:
        pytest.skip(f"{service} has no {type_name}")
    got = quick.load_service_model(service, type_name)
    assert got == expected  # the sdk-extras merged in as well (S3's service-2)
    assert list(got) == list(expected)  # and in the same order (botocore serialises members in order)


def test_endpoints_and_partitions_load_as_botocore_loads_them() -> None:
    stock, quick = botocore.loaders.Loader(), sdk_data.loader()
    for name in ("endpoints", "partitions", "sdk-default-configuration"):
        assert quick.load_data(name) == stock.load_data(name)
    assert type(quick.load_data("endpoints")) is dict


def test_an_unknown_service_is_still_refused_and_the_list_is_whole() -> None:
    quick = sdk_data.loader()
    with pytest.raises(UnknownServiceError):
        quick.load_service_model("no-such-service", "service-2")
    with pytest.raises(UnknownServiceError):
        quick.load_service_model("../dynamodb", "service-2")
    assert list(quick.list_available_services("service-2")) == botocore.loaders.Loader().list_available_services(
        "service-2"
    )


def test_building_the_clients_lists_no_directory_of_all_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first client of each model type used to list the data directory of every service
    (~450 directories, then each one's versions) to check the one it wanted."""
    listed: list[str] = []
    real = os.listdir

    def listdir(path: Any = ".") -> list[str]:
        listed.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    aws.reset()
    if hasattr(aws, "_loader"):  # a fresh loader: nothing cached from an earlier test
        aws._loader.cache_clear()
    try:
        aws.table("jobs")
        aws.client("s3")
    finally:
        aws.reset()
    data_root = os.path.dirname(botocore.loaders.__file__) + os.sep + "data"
    assert not [p for p in listed if os.path.normpath(p) == data_root]
    assert [p for p in listed if p.startswith(data_root + os.sep + "dynamodb")]  # its own versions, as before


def test_a_client_made_after_the_credentials_change_signs_with_the_new_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clients' session reads the environment when it is made; the local stack changes the
    credentials and expects the next clients to use them (as boto3's default session set to None)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first")
    aws.reset()
    try:
        assert aws.client("s3")._request_signer._credentials.access_key == "first"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second")
        assert aws.client("sqs")._request_signer._credentials.access_key == "second"
        assert aws.table("jobs").meta.client._request_signer._credentials.access_key == "second"
    finally:
        aws.reset()
