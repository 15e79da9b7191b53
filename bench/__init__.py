"""Benchmarks and soaks that drive the agent through its public contract."""
