"""The team's own tool: a Python function declared with ``@tool`` (the worker loads this
module because ``AGENT_TOOL_MODULES`` names it)."""

from pydantic import Field

from durable_agent.tools import ToolArguments, ToolError, tool

CUSTOMERS = {  # stands in for your CRM
    "ada@example.com": "Ada Lovelace, plan Business (annual, 1200 EUR), 4-hour reply SLA",
    "alan@example.com": "Alan Turing, plan Starter (monthly, 20 EUR), next-day reply SLA",
}


class Customer(ToolArguments):
    email: str = Field(description="The customer's e-mail address.")


@tool(permission="read", trust="trusted")
def lookup_customer(args: Customer) -> str:
    """Look up a customer's plan and reply SLA by e-mail address."""
    found = CUSTOMERS.get(args.email.strip().lower())
    if found is None:
        raise ToolError(f"no customer with e-mail {args.email}")  # the model reads this
    return found
