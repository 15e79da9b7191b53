"""The HTTP gateway: a REST API over the same conversations, for services that do not
speak Temporal (``python -m durable_agent.gateway``, ``make gateway``).

Stateless: every request goes to Temporal (start, update, query, cancel), so any
replica serves any conversation. ``keys`` (API keys, tenants, rate buckets) and
``problems`` (RFC 9457 errors) are pure; ``app`` is the FastAPI application.
"""
