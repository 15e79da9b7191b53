"""The ``calculator`` tool activity: no I/O, so no dependencies and no heartbeat."""

from __future__ import annotations

from temporalio import activity

from activities.tools._common import parse_arguments
from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.tools.calculator import CalculationError, evaluate, format_result
from durable_agent.tools.registry import CALCULATOR, CalculatorArgs


class CalculatorTool:
    """Evaluates arithmetic with ``durable_agent.tools.calculator``."""

    @activity.defn(name=CALCULATOR.activity_name)
    async def calculator(self, call: ToolCall) -> ToolResult:
        """Evaluate ``expression``; a refused or undefined expression is an ``error``
        result the model can correct."""
        args = parse_arguments(CalculatorArgs, call)
        if isinstance(args, ToolResult):
            return args
        expression = args.expression.strip()
        try:
            value = evaluate(expression)
        except CalculationError as e:
            return ToolResult(outcome="error", content=str(e))
        return ToolResult(outcome="ok", content=f"{expression} = {format_result(value)}")
