"""The per-container monitor and what the engine uses of it, one module each.

`launch` (`start_monitor`, the pid and exit files) is the engine's side of starting one;
`main` is the monitor process itself (run as ``python -m skiff.engine.monitor``, or lean
through `launch`); `logfile` writes Docker's json-file log and `logread` reads it back for
``logs`` and ``attach``. This file imports nothing: the monitor process loads it, and its
memory is a goal.
"""
