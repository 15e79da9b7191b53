"""A tool module that fails to import."""

import not_a_module_anyone_has  # noqa: F401
