"""`python -m test_support.local_moto [--control-port N] [moto_server options]`: moto's server as the tests use it.

Two changes, both for local tests and benchmarks only (AWS itself is not affected by any of this):

**Kinesis shards made linear.**

moto 5 keeps a shard's records in an ordered dict and finds the last sequence number by listing every key,
and GetRecords scans the shard from its first record: each PutRecords and GetRecords costs O(records in the
shard), so a stream of a million records takes hours to fill and drain. The two replacements below give the
same answers (sequence numbers in a shard are consecutive integers from 1, as moto assigns them) in O(1) per
record.

**EMR step states driven by the test.** moto records EMR steps but never runs them: a step stays RUNNING
(or PENDING behind another) forever. With `--control-port`, a small HTTP endpoint on 127.0.0.1 lets a test
move a step to any state, with EMR's FailureDetails, so a runner's polling can be tested:
`POST /emr/steps/<step id>` with `{"state": "FAILED", "failure": {"Reason": ..., "Message": ..., "LogFile": ...}}`.

**DynamoDB item operations made atomic.** moto's server answers each request on its own thread, and its
TransactWriteItems checks conditions and writes item by item, rolling back by restoring a copy of the table
taken before: two transactions at once can both pass a condition, and one's rollback can erase the other's
commit. DynamoDB itself is serializable for these operations; one lock around moto's item operations gives
the same guarantee, so the erasure ledger's concurrency tests test the ledger, not moto's threads.

**CloudFormation change sets settle like CloudFormation's.** moto executes a change set without recomputing
the stack's outputs (they stay as computed when the change set was created, before any resource existed: none)
and records no event per resource. After moto's execution, the outputs are computed again and each resource of
the stack gets its `<ACTION>_COMPLETE` event, so `npm run infra -- deploy` reads outputs and shows progress.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.cloudformation.models import CloudFormationBackend, Event
from moto.dynamodb.models import DynamoDBBackend
from moto.emr.models import Step, emr_backends
from moto.kinesis.models import Shard


def _max_sequence_number(self: Any) -> int:
    return next(reversed(self.records)) if self.records else 0


def _min_sequence_number(self: Any) -> int:
    return next(iter(self.records)) if self.records else 0


def _get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    last = int(last_sequence_id)
    results: list[Any] = []
    newest = _max_sequence_number(self)
    key = max(last + 1, _min_sequence_number(self))
    while key <= newest and (limit is None or len(results) < limit):
        record = self.records.get(key)
        if record is not None:
            results.append(record)
            last = key
        key += 1
    behind = self.records[newest].created_at - results[-1].created_at if results else 0.0
    return results, last, int(behind * 1000)


_step_status: Any = Step.__dict__["status"]  # moto's property


def _status_with_failure(self: Any) -> dict[str, Any]:
    status: dict[str, Any] = _step_status.__get__(self)
    if getattr(self, "failure_details", None):
        status["FailureDetails"] = self.failure_details
    return status


_execute_change_set: Any = CloudFormationBackend.execute_change_set


def _execute_change_set_settled(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    _execute_change_set(self, change_set_name, stack_name)
    change_set = self.change_sets.get(change_set_name) or next(
        (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name), None
    )
    if change_set is None:
        return
    stack = self.stacks[change_set.stack_id]
    stack._parse_template()  # moto set the template text only
    stack.output_map = stack._create_output_map()
    status = f"{change_set.change_set_type}_COMPLETE"
    resource_map = stack.resource_map
    for logical_id, definition in resource_map._resource_json_map.items():
        resource = resource_map._parsed_resources.get(logical_id)
        if resource is None:  # a type moto's CloudFormation does not create, or a false condition
            continue
        event = Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id=getattr(resource, "physical_resource_id", logical_id),
            resource_type=definition["Type"],
            resource_status=status,
            resource_status_reason=None,
            resource_properties=None,
        )
        stack.events.insert(len(stack.events) - 1, event)  # before the stack's own final event


_dynamodb_lock = threading.RLock()
_DYNAMODB_ITEM_OPERATIONS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
)


def _serialized(operation: Callable[..., Any]) -> Callable[..., Any]:
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _dynamodb_lock:  # reentrant: a transaction calls put_item and update_item inside
            return operation(*args, **kwargs)

    return locked


def patch() -> None:
    for name in _DYNAMODB_ITEM_OPERATIONS:
        setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name)))
    # setattr: replacing methods of moto's classes, which a typed assignment may not do.
    setattr(Shard, "get_max_sequence_number", _max_sequence_number)  # noqa: B010
    setattr(Shard, "get_min_sequence_number", _min_sequence_number)  # noqa: B010
    setattr(Shard, "get_records", _get_records)  # noqa: B010
    setattr(Step, "status", property(_status_with_failure))  # noqa: B010
    setattr(CloudFormationBackend, "execute_change_set", _execute_change_set_settled)  # noqa: B010


def _find_step(step_id: str) -> Any:
    for account in emr_backends.values():
        for backend in account.values():
            for cluster in backend.clusters.values():
                for step in cluster.steps:
                    if step.id == step_id:
                        return step
    return None


class _Control(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        step = _find_step(parts[2]) if len(parts) == 3 and parts[:2] == ["emr", "steps"] else None
        if step is None:
            self.send_response(404)
            self.end_headers()
            return
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        step.state = str(body["state"])
        step.failure_details = body.get("failure")
        self.send_response(204)
        self.end_headers()


def main(argv: list[str]) -> None:
    patch()
    if argv[:1] == ["--control-port"]:
        control = ThreadingHTTPServer(("127.0.0.1", int(argv[1])), _Control)
        threading.Thread(target=control.serve_forever, daemon=True).start()
        argv = argv[2:]
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
