"""skiff: a Docker-compatible container engine in Python, with its own OCI runtime."""

__version__ = "0.1.0"
