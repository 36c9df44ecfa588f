"""Faulty plugins: each module is one entry point with one fault."""
