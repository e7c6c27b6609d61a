"""Spec documents as frozen records: the OCI runtime spec now, image specs later."""
