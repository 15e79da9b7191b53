"""A support team's agent: one user tool module, one MCP server, one profile.

``python -m examples.support_team`` (or ``make example``) runs it end to end on the dev
server; ``docs/tools.md`` ("The example") says what each file is.
"""
