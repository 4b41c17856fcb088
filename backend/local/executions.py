"""Deliver "Step Functions Execution Status Change" events the way EventBridge does.

Used by the tests and the local stack only (on AWS, Step Functions sends these events to the
default event bus and the reconciler's rule invokes the Lambda). moto sends no such events, so
this poller lists the state machine's ended executions and delivers one event per execution, at
least once: an execution counts as delivered only after the handler returned.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.workflow.reconciler import ENDED_STATUSES, EXECUTION_STATUS_CHANGE


def _millis(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


def status_change_event(described: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    """A DescribeExecution answer → the EventBridge event Step Functions sends for it."""
    stopped = described.get("stopDate")
    detail = {
        "executionArn": described["executionArn"],
        "stateMachineArn": described["stateMachineArn"],
        "name": described["name"],
        "status": described["status"],
        "startDate": _millis(described.get("startDate")),
        "stopDate": _millis(stopped),
        "input": described.get("input"),
        "output": described.get("output"),
        "inputDetails": {"included": described.get("input") is not None},
        "outputDetails": {"included": described.get("output") is not None},
        "error": described.get("error"),
        "cause": described.get("cause"),
    }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": EXECUTION_STATUS_CHANGE,
        "source": "aws.states",
        "account": account,
        "time": (stopped or datetime.now()).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [described["executionArn"]],
        "detail": json.loads(json.dumps(detail)),
    }


class ExecutionEventPoller:
    def __init__(
        self,
        stepfunctions: Any,
        state_machine_arn: str,
        deliver: Callable[[dict[str, Any]], Any],
        region: str = "us-east-1",
        account: str = "123456789012",
    ) -> None:
        self.sfn = stepfunctions
        self.state_machine_arn = state_machine_arn
        self.deliver = deliver
        self.region = region
        self.account = account
        self.delivered: set[str] = set()

    def poll_once(self) -> int:
        """Deliver an event for every execution that ended since the last poll; returns how many."""
        count = 0
        for status in ENDED_STATUSES:
            kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn, "statusFilter": status}
            while True:
                page = self.sfn.list_executions(**kwargs)
                for listed in page.get("executions", []):
                    arn = listed["executionArn"]
                    if arn in self.delivered:
                        continue
                    described = self.sfn.describe_execution(executionArn=arn)
                    self.deliver(status_change_event(described, self.region, self.account))
                    self.delivered.add(arn)  # only after the handler returned: at least once
                    count += 1
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        return count
