"""The HTTP gateway: a REST API over the same conversations, for services that do not
speak Temporal (``python -m durable_agent.gateway``, ``make gateway``).

Stateless: every request goes to Temporal (start, update, query, cancel), so any
replica serves any conversation. ``app`` declares the routes; ``service`` is what a
process holds (settings, keys, one Temporal client); ``calls`` makes the Temporal calls
and maps their failures; ``stream`` serves the event feed as Server-Sent Events;
``middleware`` answers every error as a problem and logs and counts requests. ``keys``
(API keys, tenants, rate buckets) and ``problems`` (RFC 9457 errors) are pure.
"""
