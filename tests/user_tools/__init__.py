"""User tool modules for the tests: one good, and one for each way loading must fail."""
