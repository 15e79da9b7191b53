"""A module with no tools in it."""

VALUE = 1
