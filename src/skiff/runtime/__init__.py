"""skiff's OCI runtime: one bundle in, one container out; `cli` is `skiff-runtime`."""
