"""A plugin that cannot be imported: the host must survive it."""

import a_module_that_does_not_exist  # noqa: F401
