"""The Linux calls Python lacks, behind one seam (see `syscall`, `capabilities`, `seccomp`)."""
