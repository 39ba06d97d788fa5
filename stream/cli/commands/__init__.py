"""Implementations of the `churnstream` sub-commands (one module each)."""
