"""Content-addressed blobs, image references, unpacked layers, snapshots and volumes."""
