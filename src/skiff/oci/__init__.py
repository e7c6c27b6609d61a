"""Spec documents as frozen dataclasses: the OCI runtime spec now, image specs later."""
