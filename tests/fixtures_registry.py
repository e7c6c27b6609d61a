"""Fixtures that start Debian's docker-registry on 127.0.0.1 for the tests (filled in by the
registry work of issue 3)."""
