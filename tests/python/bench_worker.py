"""A Python SDK worker serving `plugin_activity` natively: the end-to-end benchmark's baseline.

Usage: python bench_worker.py ADDRESS TASK_QUEUE
Does what the testkit plugin's `echo` operation does, with the same request and result shapes,
so the benchmark compares like with like. Prints `READY` once the worker runs; stops on
SIGTERM or SIGINT.
"""
import asyncio
import signal
import sys

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn(name="plugin_activity")
async def plugin_activity(request: dict) -> dict:
    # async: a trivial operation needs no thread, which is how a Python worker would run it.
    info = activity.info()
    details = info.heartbeat_details
    return {
        "input": request.get("input"),
        "workflow_id": info.workflow_id,
        "activity_id": info.activity_id,
        "attempt": info.attempt,
        "last_heartbeat_details": details[0] if details else None,
    }


async def main() -> int:
    address, task_queue = sys.argv[1], sys.argv[2]
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=task_queue, activities=[plugin_activity]):
        print("READY", flush=True)
        await stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
