"""The ``calculator`` tool, through the public tool API (``durable_agent.tools.tool``):
no I/O, so no dependencies; it runs as a local activity (no heartbeat)."""

from __future__ import annotations

from durable_agent.tools.api import ToolError, implement
from durable_agent.tools.calculator import CalculationError, evaluate, format_result
from durable_agent.tools.registry import CALCULATOR, CalculatorArgs


@implement(CALCULATOR, idempotent=True)
async def calculator(args: CalculatorArgs) -> str:
    """Evaluate ``expression``; a refused or undefined expression is an ``error``
    result the model can correct."""
    expression = args.expression.strip()
    try:
        value = evaluate(expression)
    except CalculationError as e:
        raise ToolError(str(e)) from e
    return f"{expression} = {format_result(value)}"
