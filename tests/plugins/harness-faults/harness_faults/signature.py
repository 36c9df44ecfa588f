"""A hook with an argument the hook spec does not have."""

import harness


@harness.hookimpl
def harness_cell_finished(record, not_an_argument):
    pass
