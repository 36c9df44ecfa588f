"""An example harness plugin (see docs/writing-an-adapter.md)."""
