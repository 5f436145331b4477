"""Checks the worker's OpenLineage events (a JSON-lines file) with the openlineage-python client.

Each event is rebuilt from the client's own classes, whose validators check what the spec
requires (run ids are UUIDs, event times ISO 8601 with a time, producer and schema URLs), and
serialised back with the client's Serde: it must come out exactly as it went in. Our own
`mlx` run facet is not a class of the client: it is checked for the keys every facet needs.

    tools/lineage-venv/bin/python scripts/check_openlineage.py EVENTS.jsonl

Prints a JSON summary (events per type, jobs, datasets); exits 1 naming the first bad event.
"""

import json
import sys
from urllib.parse import urlparse

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
)
from openlineage.client.serde import Serde


def facet_args(facet):
    """A facet's fields as keyword arguments (its _producer becomes `producer`)."""
    args = {k: v for k, v in facet.items() if k not in ("_producer", "_schemaURL")}
    args["producer"] = facet["_producer"]
    return args


def dataset(cls, d):
    facets = {}
    for name, facet in (d.get("facets") or {}).items():
        if name != "version":
            raise ValueError(f"unexpected dataset facet {name}")
        facets[name] = dataset_version_dataset.DatasetVersionDatasetFacet(**facet_args(facet))
    return cls(namespace=d["namespace"], name=d["name"], facets=facets)


def rebuild(event):
    facets = dict(event["run"]["facets"])
    mlx = facets.pop("mlx")
    for key in ("_producer", "_schemaURL", "plugin", "digest", "operation", "step", "attempt"):
        if key not in mlx:
            raise ValueError(f"the mlx facet has no {key}")
    for key in ("_producer", "_schemaURL"):
        if not urlparse(mlx[key]).scheme:
            raise ValueError(f"mlx.{key} is not a URI: {mlx[key]}")
    run_facets = {}
    for name, facet in facets.items():
        if name == "parent":
            run_facets[name] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=facet["run"]["runId"]),
                job=parent_run.Job(namespace=facet["job"]["namespace"], name=facet["job"]["name"]),
                producer=facet["_producer"],
            )
        elif name == "processing_engine":
            run_facets[name] = processing_engine_run.ProcessingEngineRunFacet(**facet_args(facet))
        elif name == "errorMessage":
            run_facets[name] = error_message_run.ErrorMessageRunFacet(**facet_args(facet))
        else:
            raise ValueError(f"unexpected run facet {name}")
    job_facets = {
        name: job_type_job.JobTypeJobFacet(**facet_args(facet))
        for name, facet in (event["job"].get("facets") or {}).items()
    }
    rebuilt = RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"], facets=run_facets),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"], facets=job_facets),
        producer=event["producer"],
        inputs=[dataset(InputDataset, d) for d in event.get("inputs", [])],
        outputs=[dataset(OutputDataset, d) for d in event.get("outputs", [])],
    )
    return Serde.to_dict(rebuilt), mlx


def without_empty(value):
    """Drops empty objects: an absent `facets` and `facets: {}` mean the same in the spec."""
    if isinstance(value, dict):
        pruned = {k: without_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    if isinstance(value, list):
        return [without_empty(v) for v in value]
    return value


def main(path):
    summary = {"events": 0, "types": {}, "jobs": [], "runs": {}, "inputs": [], "outputs": []}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            event = json.loads(line)
            try:
                back, mlx = rebuild(event)
            except Exception as e:  # noqa: BLE001 - any rejection names the event
                sys.exit(f"event {n}: rejected by openlineage-python: {e!r}\n{line}")
            original = json.loads(line)
            original["run"]["facets"].pop("mlx")
            if without_empty(Serde.to_dict(original)) != without_empty(back):
                sys.exit(
                    f"event {n}: not what openlineage-python writes\n"
                    f"ours:   {json.dumps(Serde.to_dict(original), sort_keys=True)}\n"
                    f"client: {json.dumps(back, sort_keys=True)}"
                )
            kind = event["eventType"]
            summary["events"] += 1
            summary["types"][kind] = summary["types"].get(kind, 0) + 1
            job = event["job"]["name"]
            if job not in summary["jobs"]:
                summary["jobs"].append(job)
            summary["runs"].setdefault(event["run"]["runId"], []).append(
                {"type": kind, "step": mlx["step"], "attempt": mlx["attempt"]}
            )
            summary["inputs"] += [d["name"] for d in event.get("inputs", [])]
            summary["outputs"] += [d["name"] for d in event.get("outputs", [])]
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1])
