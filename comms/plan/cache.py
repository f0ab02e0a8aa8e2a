"""Each cutover's plan folder, loaded once per process with its renderer."""

from __future__ import annotations

from pathlib import Path

from comms.plan.loader import load_plan
from comms.plan.models import Plan
from comms.rendering import Renderer

__all__ = ["PlanCache"]


class PlanCache:
    """Loads each cutover's plan folder once per process."""

    def __init__(self) -> None:
        self._plans: dict[str, tuple[Plan, Renderer]] = {}

    def get(self, plan_dir: str) -> tuple[Plan, Renderer]:
        """The plan and its renderer for ``plan_dir``."""
        if plan_dir not in self._plans:
            plan = load_plan(Path(plan_dir), check_templates=False)
            self._plans[plan_dir] = (plan, Renderer(plan.root / "templates"))
        return self._plans[plan_dir]

    def put(self, plan: Plan) -> None:
        """Use an already loaded plan for its folder."""
        self._plans[str(plan.root)] = (plan, Renderer(plan.root / "templates"))
