"""The evaluation suite: cases as data (``evals/cases/*.yaml``) run as real conversations
against the configured model and scored per case; ``python -m evals`` (``make eval``).

``cases`` loads and validates case files; ``scoring`` holds a conversation against its
case (pure); ``report`` prints the table and writes the JSON report (pure); ``runner``
drives conversations through the client API; ``environment`` starts a dev server, the
loopback tool APIs and a worker; ``cli`` puts them together.
"""
