"""A workflow written with the Python SDK that calls the Rust worker's `plugin_activity`.

Usage: python call_plugin.py ADDRESS PLUGIN_TASK_QUEUE REQUEST_JSON
Runs its own Python worker (for the workflow only) on a task queue of its own, executes the
workflow once and prints the activity's result as JSON on stdout. A failure prints
`FAILED <type> <non_retryable>` and exits 1.
"""
import asyncio
import os
import json
import sys
import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Worker


@workflow.defn
class CallPlugin:
    @workflow.run
    async def run(self, task_queue: str, request: dict) -> dict:
        # Plain JSON in, plain JSON out: no Rust types involved.
        return await workflow.execute_activity(
            "plugin_activity",
            request,
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=100)),
        )


async def main() -> int:
    address, plugin_queue, request = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = await Client.connect(address)
    own_queue = f"python-{uuid.uuid4()}"
    async with Worker(client, task_queue=own_queue, workflows=[CallPlugin]):
        try:
            result = await client.execute_workflow(
                CallPlugin.run,
                args=[plugin_queue, request],
                id=f"python-caller-{uuid.uuid4()}",
                task_queue=own_queue,
            )
        except WorkflowFailureError as e:
            cause = e.cause
            if isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError):
                app = cause.cause
                print(f"FAILED {app.type} {app.non_retryable}")
                return 1
            print(f"FAILED {cause!r}")
            return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK's native threads can abort the interpreter while it finalizes ("Fatal Python
    # error: PyGILState_Release"), turning a finished run into a crash; skip finalization.
    os._exit(code)
