"""Registers every workflow as an orchestrator and every activity as an activity function.

One definition of each sequence lives in ``reddytalk.workflows``; this blueprint
only hosts it. Activities get their dependencies from the Functions runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import azure.durable_functions as df

from functions.runtime import runtime
from orchestrations.durable_steps import DurableSteps
from reddytalk.workflows.activities import ACTIVITIES, Activity, ActivityDeps
from reddytalk.workflows.runner import WORKFLOWS
from reddytalk.workflows.steps import Workflow

__all__ = ["bp"]

bp = df.Blueprint()


def _orchestrator(workflow: Workflow) -> Callable[[Any], Generator[Any, Any, dict[str, Any]]]:
    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        return (yield from workflow(DurableSteps(context)))

    return orchestrator


def _activity(activity: Activity) -> Callable[[dict[str, Any]], Any]:
    async def run(data: dict[str, Any]) -> dict[str, Any]:
        rt = await runtime()
        deps = ActivityDeps(ehr=rt.ehr, store=rt.store, control=rt.control, clock=rt.clock)
        return await activity(deps, data)

    return run


for _name, _workflow in WORKFLOWS.items():
    bp.function_name(_name)(
        bp.orchestration_trigger(context_name="context", orchestration=_name)(
            _orchestrator(_workflow)
        )
    )

for _name, _activity_fn in ACTIVITIES.items():
    bp.function_name(_name)(
        bp.activity_trigger(input_name="data", activity=_name)(_activity(_activity_fn))
    )
