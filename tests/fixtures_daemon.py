"""Fixtures that start skiffd on a socket of its own for the tests (filled in by the daemon
work of issue 3)."""
