"""`skiff-runtime`'s console script: the cgroup warm-up first, then the command.

`create`, `run` and `exec` move a process into a cgroup, and the first such move after an
idle while waits out an RCU grace period (`runtime.cgroup_warmup`), which a thread pays
while the interpreter goes on importing. Each millisecond it starts earlier is one the
command saves, so this module picks the verb out of the command line by itself, before the
CLI and its ~3 ms of imports load: the verb is the first word that is neither a global flag
nor the value of one (`--root DIR`, as the CLI's own grammar has them: `GLOBAL_VALUE_FLAGS`
is checked against `cli.GLOBAL_OPTS` by the tests). A wrong guess costs the head start,
or, for a verb that moves nothing, an exit that may wait for the thread's write. Like
`cgroup_warmup`, this module imports only what the interpreter has already loaded (hence
no `from __future__ import annotations`).
"""

import sys

#: the global flags that take a value (`--root X`, `-root X`, `--root=X`)
GLOBAL_VALUE_FLAGS = frozenset({"root", "log", "log-format", "rootless", "criu"})
#: the verbs that move a process into a cgroup
MIGRATING_VERBS = frozenset({"create", "run", "exec"})


def verb_of(argv: list[str]) -> str | None:
    """The verb of a `skiff-runtime` command line (arguments after the program name)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not word.startswith("-") or word == "-":
            return word
        name, eq, _ = word.lstrip("-").partition("=")
        i += 2 if name in GLOBAL_VALUE_FLAGS and not eq else 1
    return None


def entry() -> None:
    if verb_of(sys.argv[1:]) in MIGRATING_VERBS:
        from skiff.runtime import cgroup_warmup  # (only then: `start`, `delete`... skip it)
        cgroup_warmup.start()
    import gc
    gc.disable()  # before the CLI's imports too (why: `cli.entry`, which does it again)
    from skiff.runtime.cli import entry as run_command
    run_command()
