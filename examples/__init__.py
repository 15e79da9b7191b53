"""Examples a newcomer can copy (``python -m examples.<name>``)."""
