"""Test plugin for tests/test_distributed.py."""
