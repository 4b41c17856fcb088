"""The jobs-table stream's trigger of the starter, made so that no record can stall it.

Chalice's `@app.on_dynamodb_record` sets only the batch size and starting position: a record whose
batch keeps failing would be retried until it expires (24 hours), in order, holding every later
job of its shard (docs/aws-notes.md#n14-dynamodb-streams-to-lambda). What Chalice cannot set is
declared here once and applied two ways:

- `chalice package --merge-template` (a SAM template): `merge_template(queue_arn)` is the JSON to
  merge (`python -m backend.stream_trigger QUEUE_ARN > stream-trigger.json`);
- `chalice deploy` (what `backend/deploy.py` runs): `configure(...)` updates the event source
  mapping Chalice created, right after each deploy
  (docs/aws-notes.md#n46-stream-event-filters-and-failure-destinations).

The settings: only job INSERTs invoke the starter (image items and status changes are filtered
out by Lambda, not delivered and ignored); a failing batch is split in two until the failing
record is alone, retried a bounded number of times, and then described in the SQS failure queue
(Lambda sends the record's shard and sequence numbers, not the record) while the shard moves on.
The starter itself records a job that cannot start as FAILED, so only a table that cannot be
written ever fails a batch (chalicelib/workflow/starter.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from chalicelib.core import contracts

FUNCTION = "start_workflow"  # app.py's stream handler (chalicelib/core/functions.py)
# Chalice's names in the SAM template it packages: the function's CamelCased name, and its event
EVENT_LOGICAL_ID: Final = "StartWorkflowDynamodbEventSource"
FUNCTION_LOGICAL_ID: Final = "StartWorkflow"

MAXIMUM_RETRY_ATTEMPTS: Final = 5
MAXIMUM_RECORD_AGE_SECONDS: Final = 3600  # a record not delivered within an hour goes to the queue
# Lambda's event filter: a record reaches the starter only when it is the INSERT of a job item
JOB_INSERTS: Final = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"sk": {"S": [contracts.JOB_SK]}}}}


def filter_criteria() -> dict[str, Any]:
    return {"Filters": [{"Pattern": json.dumps(JOB_INSERTS, separators=(",", ":"))}]}


def mapping_settings(queue_arn: Any) -> dict[str, Any]:
    """The event source mapping's settings Chalice cannot set (`queue_arn` may be a
    CloudFormation reference in a template)."""
    return {
        "MaximumRetryAttempts": MAXIMUM_RETRY_ATTEMPTS,
        "MaximumRecordAgeInSeconds": MAXIMUM_RECORD_AGE_SECONDS,
        "BisectBatchOnFunctionError": True,
        "DestinationConfig": {"OnFailure": {"Destination": queue_arn}},
        "FilterCriteria": filter_criteria(),
    }


def merge_template(queue_arn: Any) -> dict[str, Any]:
    """For `chalice package --merge-template`: the same settings on the packaged event source
    (SAM's DynamoDB event passes them to the mapping as they are; the function's own policy
    allows the send to the queue, chalicelib/core/functions.py)."""
    properties = mapping_settings(queue_arn)
    return {
        "Resources": {FUNCTION_LOGICAL_ID: {"Properties": {"Events": {EVENT_LOGICAL_ID: {"Properties": properties}}}}}
    }


def configure(lambda_client: Any, function_arn: str, stream_arn: str, queue_arn: str) -> dict[str, Any]:
    """Apply the settings to the mapping `chalice deploy` made from the stream to the starter;
    returns the mapping as Lambda then describes it."""
    mappings = lambda_client.list_event_source_mappings(FunctionName=function_arn, EventSourceArn=stream_arn)
    found = mappings.get("EventSourceMappings", [])
    if len(found) != 1:
        raise LookupError(f"expected one event source mapping from {stream_arn} to {function_arn}, found {len(found)}")
    return dict(lambda_client.update_event_source_mapping(UUID=found[0]["UUID"], **mapping_settings(queue_arn)))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m backend.stream_trigger FAILURE_QUEUE_ARN > stream-trigger.json", file=sys.stderr)
        return 2
    print(json.dumps(merge_template(args[0]), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
