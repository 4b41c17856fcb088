"""The stream trigger cannot be poisoned: only job INSERTs reach the starter, and a job that cannot
start ends FAILED with its cause instead of staying SUBMITTED (moto Step Functions and S3)."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from builders import BUCKET, load_event

from backend import stream_trigger
from chalicelib.core import contracts
from chalicelib.store.jobs import JobStore, NewImage
from chalicelib.workflow.starter import START_RETRY, WorkflowStarter, execution_arn, job_inserts

OWNER = "owner-1"
JOB_ID = "20261124T120000Z-0123456789ab"


def _matches(record: Any, pattern: dict[str, Any]) -> bool:
    """Lambda's event filtering for the part of its syntax the trigger uses: nested objects whose
    leaves are lists of exact values."""
    for key, expected in pattern.items():
        value = record.get(key) if isinstance(record, dict) else None
        if isinstance(expected, dict):
            if not _matches(value, expected):
                return False
        elif value not in expected:
            return False
    return True


def _record(event_name: str, pk: str, sk: str) -> dict[str, Any]:
    record = copy.deepcopy(load_event("ddb-stream-job-insert")["Records"][0])
    record["eventName"] = event_name
    record["dynamodb"]["Keys"] = {"pk": {"S": pk}, "sk": {"S": sk}}
    record["dynamodb"]["NewImage"].update({"pk": {"S": pk}, "sk": {"S": sk}, "jobId": {"S": JOB_ID}})
    if event_name == "REMOVE":
        del record["dynamodb"]["NewImage"]
    return record


def test_only_job_inserts_pass_the_filter_and_the_starter_agrees() -> None:
    pattern = json.loads(stream_trigger.filter_criteria()["Filters"][0]["Pattern"])
    job = contracts.job_pk(JOB_ID)
    records = {
        "job insert": _record("INSERT", job, contracts.JOB_SK),
        "job status change": _record("MODIFY", job, contracts.JOB_SK),
        "image insert": _record("INSERT", job, contracts.image_sk("a" * 32)),
        "image status change": _record("MODIFY", job, contracts.image_sk("a" * 32)),
        "job removed (TTL)": _record("REMOVE", job, contracts.JOB_SK),
        "labels cached": _record("INSERT", contracts.labels_pk("uploads/x/y.png"), contracts.LABELS_SK),
        "idempotency record": _record("INSERT", contracts.idempotency_pk(OWNER), "POST/jobs#abc"),
    }
    passed = [name for name, record in records.items() if _matches(record, pattern)]
    assert passed == ["job insert"]
    # what Lambda lets through is exactly what the starter would act on anyway
    assert [j["jobId"] for j in job_inserts(list(records.values()))] == [JOB_ID]


def test_the_mapping_settings_bound_every_failure() -> None:
    settings = stream_trigger.mapping_settings("arn:aws:sqs:us-east-1:123456789012:q")
    assert 0 < settings["MaximumRetryAttempts"] <= 10 and settings["BisectBatchOnFunctionError"] is True
    assert 0 < settings["MaximumRecordAgeInSeconds"] < 24 * 3600  # before the stream drops the record
    assert settings["DestinationConfig"] == {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:123456789012:q"}}


# ---------------------------------------------------------------------------------- the starter


def _job(store: JobStore) -> dict[str, Any]:
    ref = contracts.image_ref_of("a" * 32, "b" * 32, "png")
    key = contracts.upload_key(OWNER, ref)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"png")
    store.put_job(
        job_id=JOB_ID,
        owner=OWNER,
        model="stability-inpaint",
        settings={"prompt": "a beach"},
        images=[NewImage(image_id="b" * 32, image_ref=ref, key=key, name="a.png")],
    )
    job = store.get_job(JOB_ID)
    assert job is not None
    return job


def _machine() -> str:
    return str(
        boto3.client("stepfunctions").create_state_machine(
            name="noop",
            roleArn="arn:aws:iam::123456789012:role/x",
            definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 5, "End": True}}}),
        )["stateMachineArn"]
    )


class Refusing:
    """Step Functions answering StartExecution with `codes` (one per call), then as the real one."""

    def __init__(self, real: Any, codes: list[str]) -> None:
        self.real = real
        self.codes = list(codes)
        self.calls = 0

    def start_execution(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.codes:
            code = self.codes.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": f"{code} (test)"}}, "StartExecution")
        return self.real.start_execution(**kwargs)


def _starter(store: JobStore, sfn: Any, machine: str, waits: list[float]) -> WorkflowStarter:
    return WorkflowStarter(boto3.client("s3"), store, sfn, BUCKET, machine, sleep=waits.append)


def test_a_start_refused_for_good_ends_the_job_failed_with_its_cause(store: JobStore) -> None:
    job = _job(store)
    waits: list[float] = []
    missing = "arn:aws:states:us-east-1:123456789012:stateMachine:deleted"
    starter = _starter(store, boto3.client("stepfunctions"), missing, waits)
    assert starter.handle_records([_record_of(job)]) == []  # the stream sees success: nothing to retry
    failed = store.get_job(JOB_ID)
    assert failed is not None and failed["status"] == "FAILED"
    assert "could not start" in failed["cause"] and "StateMachineDoesNotExist" in failed["cause"]
    assert waits == []  # not retried: waiting cannot bring a state machine back


def test_throttled_starts_are_retried_then_the_job_runs(store: JobStore) -> None:
    job = _job(store)
    waits: list[float] = []
    sfn = Refusing(boto3.client("stepfunctions"), ["ThrottlingException", "ExecutionLimitExceeded"])
    arn = _starter(store, sfn, _machine(), waits).start(job)
    assert arn and sfn.calls == 3 and len(waits) == 2
    assert all(0 <= w <= d for w, d in zip(waits, START_RETRY.delays_s(), strict=False))
    running = store.get_job(JOB_ID)
    assert running is not None and (running["status"], running["executionArn"]) == ("RUNNING", arn)


def test_a_start_throttled_past_every_retry_ends_failed_saying_so(store: JobStore) -> None:
    job = _job(store)
    waits: list[float] = []
    sfn = Refusing(boto3.client("stepfunctions"), ["ThrottlingException"] * 10)
    assert _starter(store, sfn, _machine(), waits).start(job) is None
    failed = store.get_job(JOB_ID)
    assert failed is not None and failed["status"] == "FAILED"
    assert f"retried {START_RETRY.max_attempts} times" in failed["cause"] and "ThrottlingException" in failed["cause"]
    assert sfn.calls == START_RETRY.max_attempts + 1


def test_an_execution_that_already_exists_marks_a_still_submitted_job_running(store: JobStore) -> None:
    """The first delivery started the execution, then died before recording it."""
    job = _job(store)
    machine = _machine()
    boto3.client("stepfunctions").start_execution(stateMachineArn=machine, name=JOB_ID, input="{}")
    arn = _starter(store, boto3.client("stepfunctions"), machine, []).start(job)
    assert arn == execution_arn(machine, JOB_ID)
    running = store.get_job(JOB_ID)
    assert running is not None and (running["status"], running["executionArn"]) == ("RUNNING", arn)


def test_a_manifest_that_cannot_be_written_fails_the_job(store: JobStore, monkeypatch) -> None:
    job = _job(store)
    s3 = boto3.client("s3")

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "PutObject")

    monkeypatch.setattr(s3, "put_object", refuse)
    starter = WorkflowStarter(s3, store, boto3.client("stepfunctions"), BUCKET, _machine(), sleep=lambda _: None)
    assert starter.start(job) is None
    failed = store.get_job(JOB_ID)
    assert failed is not None and failed["status"] == "FAILED" and "AccessDenied" in failed["cause"]


def test_only_a_table_that_cannot_record_the_failure_fails_the_batch(store: JobStore, monkeypatch) -> None:
    """Then the stream retries (bounded, bisected, then the failure queue): nothing is lost silently."""
    job = _job(store)

    def table_down(*_: Any, **__: Any) -> bool:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "down"}}, "UpdateItem")

    monkeypatch.setattr(store, "fail_job", table_down)
    starter = _starter(store, boto3.client("stepfunctions"), "arn:aws:states:us-east-1:123456789012:stateMachine:x", [])
    with pytest.raises(ClientError):
        starter.handle_records([_record_of(job)])


def _record_of(job: dict[str, Any]) -> dict[str, Any]:
    record = _record("INSERT", contracts.job_pk(JOB_ID), contracts.JOB_SK)
    record["dynamodb"]["NewImage"]["owner"] = {"S": job["owner"]}
    record["dynamodb"]["NewImage"]["jobId"] = {"S": job["jobId"]}
    return record


# ------------------------------------------------------------------ accept first: the starter writes the images


def _accepted_job(store: JobStore, count: int) -> dict[str, Any]:
    """A job as POST /jobs leaves it: its image records in S3, the job item alone."""
    images = [
        NewImage(
            image_id=f"{n:032x}",
            image_ref=contracts.image_ref_of("a" * 32, f"{n:032x}", "png"),
            key=contracts.upload_key(OWNER, contracts.image_ref_of("a" * 32, f"{n:032x}", "png")),
            name=f"{n}.png",
            labels=("Bottle",),
            boxes=((0.1, 0.2, 0.3, 0.4),),
        )
        for n in range(count)
    ]
    records = json.dumps([i.to_record() for i in images]).encode()
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.images_file_key(JOB_ID), Body=records)
    store.put_job(
        job_id=JOB_ID,
        owner=OWNER,
        model="stability-inpaint",
        settings={"prompt": "a beach"},
        images=images,
        images_file=contracts.images_file_key(JOB_ID),
    )
    assert store.images(JOB_ID) == []
    job = store.get_job(JOB_ID)
    assert job is not None
    return job


def _count_batch_writes(store: JobStore) -> list[int]:
    """The number of items of each BatchWriteItem call the store makes."""
    sizes: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        sizes.append(sum(len(requests) for requests in params["RequestItems"].values()))

    store.table.meta.client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", count)
    return sizes


class Watching:
    """Step Functions that records how many image items exist when StartExecution comes."""

    def __init__(self, real: Any, store: JobStore) -> None:
        self.real, self.store, self.images_at_start = real, store, []

    def start_execution(self, **kwargs: Any) -> Any:
        self.images_at_start.append(len(self.store.images(JOB_ID)))
        return self.real.start_execution(**kwargs)


def test_the_starter_writes_an_accepted_jobs_images_then_its_manifest_then_starts_it(store: JobStore) -> None:
    job = _accepted_job(store, 60)
    batches = _count_batch_writes(store)
    sfn = Watching(boto3.client("stepfunctions"), store)
    arn = _starter(store, sfn, _machine(), []).start(job)
    assert arn and sfn.images_at_start == [60]  # every image item before the workflow starts
    assert batches == [25, 25, 10]  # BatchWriteItem's 25 a call
    images = store.images(JOB_ID)
    assert {i["status"] for i in images} == {"PENDING"} and [float(v) for v in images[0]["boxes"][0]] == [
        0.1,
        0.2,
        0.3,
        0.4,
    ]
    running = store.get_job(JOB_ID)
    assert running is not None and running["status"] == "RUNNING"
    assert contracts.JOB_IMAGES_PENDING_ATTRIBUTE not in running
    # the manifest made from the records is the one made from the stored items
    manifest = json.loads(
        boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.manifest_key(JOB_ID))["Body"].read()
    )
    assert manifest == WorkflowStarter(boto3.client("s3"), store, sfn, BUCKET, "x").manifest(JOB_ID)
    assert len(manifest) == 60 and manifest[0]["labels"] == ["Bottle"]


def test_a_redelivered_record_writes_the_images_once_and_starts_one_execution(store: JobStore) -> None:
    job = _accepted_job(store, 30)
    batches = _count_batch_writes(store)
    machine = _machine()
    starter = _starter(store, boto3.client("stepfunctions"), machine, [])
    first = starter.handle_records([_record_of(job)])
    again = starter.handle_records([_record_of(job)])  # at least once: the same record again
    assert len(first) == 1 and again == first  # ExecutionAlreadyExists: the same run
    assert batches == [25, 5]  # written once
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
    assert [e["name"] for e in executions] == [JOB_ID]
    assert len(store.images(JOB_ID)) == 30


def test_a_starter_that_died_half_way_writes_the_images_again_and_starts(store: JobStore, monkeypatch) -> None:
    """A Lambda timeout or crash after some batches: the retried record writes them all again
    (puts replace; no one else has touched them) and starts the job."""
    job = _accepted_job(store, 30)
    real = store.write_images

    def dies(items: Any, **kwargs: Any) -> None:
        real(items[:25], **kwargs)
        raise TimeoutError("the Lambda ran out of time")

    monkeypatch.setattr(store, "write_images", dies)
    starter = _starter(store, boto3.client("stepfunctions"), _machine(), [])
    with pytest.raises(TimeoutError):
        starter.start(job)
    assert len(store.images(JOB_ID)) == 25 and store.get_job(JOB_ID)["status"] == "SUBMITTED"
    monkeypatch.setattr(store, "write_images", real)
    assert starter.start(job)
    assert len(store.images(JOB_ID)) == 30 and store.get_job(JOB_ID)["status"] == "RUNNING"


def test_a_job_deleted_while_its_images_are_written_leaves_none_behind(store: JobStore, monkeypatch) -> None:
    from chalicelib.workflow import starter as starter_module

    job = _accepted_job(store, 5)
    monkeypatch.setattr(starter_module, "STATUS_CHECK_ITEMS", 2)
    real = store.write_images

    def write_then_job_goes(items: Any, **kwargs: Any) -> None:
        real(items, **kwargs)
        store.table.delete_item(Key={"pk": contracts.job_pk(JOB_ID), "sk": contracts.JOB_SK})

    monkeypatch.setattr(store, "write_images", write_then_job_goes)
    assert _starter(store, boto3.client("stepfunctions"), _machine(), []).start(job) is None
    assert store.images(JOB_ID) == []  # no orphan partition


def test_an_image_list_that_cannot_be_read_fails_the_job_saying_so(store: JobStore) -> None:
    job = _accepted_job(store, 2)
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=contracts.images_file_key(JOB_ID))
    assert _starter(store, boto3.client("stepfunctions"), _machine(), []).start(job) is None
    failed = store.get_job(JOB_ID)
    assert failed is not None and failed["status"] == "FAILED" and "image list could not be read" in failed["cause"]
    assert store.images(JOB_ID) == []


def test_unprocessed_items_are_sent_again_after_a_jittered_backoff(store: JobStore, monkeypatch) -> None:
    """DynamoDB writes part of a batch (the partition's rate) and answers the rest as unprocessed."""
    waits: list[float] = []
    store.sleep = waits.append
    client = store.table.meta.client
    real = client.batch_write_item
    answers: list[int] = []

    def partly(**kwargs: Any) -> Any:
        requests = kwargs["RequestItems"][store.table.name]
        if len(answers) < 3:  # three times, only the first two are written
            answers.append(len(requests))
            real(RequestItems={store.table.name: requests[:2]})
            return {"UnprocessedItems": {store.table.name: requests[2:]}}
        answers.append(len(requests))
        return real(**kwargs)

    monkeypatch.setattr(client, "batch_write_item", partly)
    items = store.image_items(
        JOB_ID,
        [NewImage(f"{n:032x}", "r", "k", f"{n}.png") for n in range(10)],
        expires=2_000_000_000,
    )
    store.write_images(items, write_units_per_s=1_000_000)
    assert answers == [10, 8, 6, 4]
    assert len(store.images(JOB_ID)) == 10
    # a wait before each resend, of full jitter under a doubling cap
    assert len(waits) == 3 and all(0 <= w <= 0.05 * 2**n for n, w in enumerate(waits, start=1))


def test_a_throttled_batch_past_every_attempt_is_an_error_not_a_silent_loss(store: JobStore, monkeypatch) -> None:
    store.sleep = lambda _: None
    client = store.table.meta.client

    def throttled(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "BWI")

    monkeypatch.setattr(client, "batch_write_item", throttled)
    items = store.image_items(JOB_ID, [NewImage("a" * 32, "r", "k", "a.png")], expires=2_000_000_000)
    with pytest.raises(Exception, match="unwritten after 12 attempts"):
        store.write_images(items)


def test_image_items_are_written_at_the_partitions_pace(store: JobStore) -> None:
    """A fake clock: the waits add up to what a rate of 50 units a second needs for 200 items of one
    unit each, less the first second's allowance."""
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    store.sleep = sleep
    store.clock = lambda: now[0]
    items = store.image_items(
        JOB_ID, [NewImage(f"{n:032x}", "r", "k", f"{n}.png") for n in range(200)], expires=2_000_000_000
    )
    store.write_images(items, write_units_per_s=50)
    assert sum(waits) == pytest.approx((200 - 50) / 50, abs=0.01)
    assert len(store.images(JOB_ID)) == 200


def test_under_the_partitions_limit_the_starter_writes_every_image_without_being_throttled(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulated partition limit (backend/local/dynamodb_rules.py) on a fake clock the store's
    pace shares: 500 one-unit items at 80 of the partition's 100 units a second take 5.25 s of waits
    and no refusal, and the job item's own writes after them (the start) find units left. The
    starter writes them in slices (its status check every 100 here): one pace across the slices,
    not a fresh second's allowance for each."""
    import chalicelib.workflow.starter as starter_module

    monkeypatch.setattr(starter_module, "STATUS_CHECK_ITEMS", 100)
    from backend.local import dynamodb_rules

    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    job = _accepted_job(store, 500)
    undo = dynamodb_rules.install_partition_limits(write_units_per_s=100, clock=lambda: now[0])
    try:
        store.sleep = sleep
        starter = WorkflowStarter(boto3.client("s3"), store, boto3.client("stepfunctions"), BUCKET, _machine())
        starter.write_units_per_s = 80
        store.clock = lambda: now[0]
        assert starter.start(job)
        limits = dynamodb_rules.partition_limits()
        assert limits is not None and sum(limits.throttled.values()) == 0
    finally:
        undo()
    assert len(store.images(JOB_ID)) == 500
    assert sum(waits) == pytest.approx((500 - 80) / 80, abs=0.05)
