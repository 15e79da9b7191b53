"""The docs' example user tool module (docs/tools.md, "Your own tools")."""

from pydantic import Field

from durable_agent.tools import ToolArguments, ToolContext, ToolError, tool

ORDERS = {"A-1": "shipped", "A-2": "waiting for stock"}
REFUNDS: dict[str, float] = {}


class OrderId(ToolArguments):
    order_id: str = Field(pattern=r"^A-\d+$", description="The order's id, e.g. 'A-1'.")


class Refund(OrderId):
    amount: float = Field(gt=0, le=500, description="Amount to refund, in euros.")


@tool(permission="read")
async def lookup_order(args: OrderId) -> str:
    """Look up an order's status."""
    if args.order_id not in ORDERS:
        raise ToolError(f"no order {args.order_id}")
    return f"order {args.order_id}: {ORDERS[args.order_id]}"


@tool(permission="write", idempotent=True, criticality="critical")
def refund_order(args: Refund, ctx: ToolContext) -> str:
    """Refund part of an order (once per call, however often it is retried)."""
    REFUNDS.setdefault(ctx.idempotency_key, args.amount)
    return f"refunded {args.amount:.2f} on {args.order_id}"
