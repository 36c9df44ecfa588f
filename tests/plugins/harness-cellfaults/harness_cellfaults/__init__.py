"""Cell faults for the harness test suite."""
