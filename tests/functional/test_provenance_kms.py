"""Content Credentials signed with the stage's KMS key (issue #30): the callback signer sends each
claim to kms:Sign, and only Finalize may (chalicelib/delivery/provenance_sign.py, backend/policies.py)."""

from __future__ import annotations

import io

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from PIL import Image

from backend import policies
from backend.local import iam
from chalicelib.core.functions import FUNCTIONS, Grant
from chalicelib.delivery import provenance, provenance_sign


def _files() -> tuple[bytes, bytes]:
    original, result = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(original, "JPEG")
    Image.new("RGB", (64, 48), (30, 30, 200)).save(result, "JPEG")
    return original.getvalue(), result.getvalue()


def _record(original: bytes) -> provenance.Record:
    return provenance.record_for(
        job_id="job-k",
        image_id="img-k",
        variant=1,
        model="stability-inpaint",
        model_ids=("stability.stable-image-inpaint-v1:0",),
        seed=5,
        background="prompt",
        mode="PRECISE",
        blend=1.0,
        original=original,
        original_name="k.jpg",
        scorecard={"outcome": "PASS", "checks": [{"check": "subjectFidelity", "outcome": "PASS", "reason": "ok"}]},
        size=(64, 48),
        resized=False,
        produced_by=None,
    )


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch):
    with mock_aws():
        kms = boto3.client("kms")
        key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        monkeypatch.setattr(provenance_sign, "_kms_identities", {})  # one signer per test, not per process
        yield kms, key["Arn"]


def test_finalize_signs_with_the_stages_kms_key(signing_key) -> None:
    kms, key_arn = signing_key
    original, result = _files()
    environ = {provenance_sign.KMS_KEY_ENV: key_arn, "BACKDROP_STAGE": "prod"}
    with iam.running_as("finalize"):
        identity = provenance_sign.configured_identity(environ, lambda: kms)
        out = provenance_sign.deliver(
            result,
            "jpeg",
            _record(original),
            original,
            credentials=True,
            keep_location=False,
            identity=lambda: identity,
        )
    creds = provenance_sign.read(out)
    assert creds is not None
    # the KMS key's signature over the claim validates; the self-issued chain is on no trust list
    assert creds.state == "Valid" and not creds.tampered, creds.failures
    assert provenance_sign.self_issued_organization("prod") in creds.signer
    assert identity.description == f"KMS key {key_arn}"


@pytest.mark.iam_denial_expected
def test_no_other_function_may_sign(signing_key) -> None:
    kms, key_arn = signing_key
    with iam.running_as("build_mask"), pytest.raises(ClientError) as denied:
        kms.sign(KeyId=key_arn, Message=b"claim", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "kms:Sign" in denied.value.response["Error"]["Message"]


def test_the_grant_is_finalizes_alone_and_names_the_stack_key() -> None:
    assert [f.name for f in FUNCTIONS if Grant.SIGN_CREDENTIALS in f.grants] == ["finalize"]
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    outputs = {**iam.TESTS.outputs(), "CredentialsKeyArn": key}
    documents = policies.lambda_policies(outputs, "test", "us-east-1", "123456789012", [])
    kms_statements = [
        (name, st)
        for name, doc in documents.items()
        for st in doc["Statement"]
        if any(str(a).startswith("kms:") for a in st["Action"])
    ]
    assert [(name, st["Action"], st["Resource"]) for name, st in kms_statements] == [
        ("finalize", ["kms:GetPublicKey", "kms:Sign"], [key])
    ]


def test_a_large_claim_is_signed_as_a_digest() -> None:
    """kms:Sign takes at most 4,096 bytes RAW: a longer claim goes as its SHA-256 (MessageType DIGEST)."""
    sent: list[dict[str, object]] = []

    class Kms:
        def sign(self, **kwargs: object) -> dict[str, bytes]:
            sent.append(kwargs)
            return {"Signature": b"sig"}

    identity = provenance_sign.kms_identity(Kms(), "key", "chain")
    identity.sign(b"x" * 4096)
    identity.sign(b"x" * 4097)
    assert [s["MessageType"] for s in sent] == ["RAW", "DIGEST"]
    assert len(sent[1]["Message"]) == 32  # type: ignore[arg-type]
