"""The per-container monitor and what the engine uses of it, one module each.

`launch` (`MonitorLauncher`, the pid and exit files) is the engine's side of starting one;
`zygote` is the process monitors are forked from; `main` is the monitor process itself
(forked by the zygote, or run as ``python -m skiff.engine.monitor``); `logfile` writes Docker's json-file log and `logread` reads it back for
``logs`` and ``attach``. This file imports nothing: the monitor process loads it, and its
memory is a goal.
"""
