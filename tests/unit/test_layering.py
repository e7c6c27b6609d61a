"""DESIGN.md's import rule, checked on the source: a layer imports only the layers below it.

Every ``import skiff.X`` and ``from skiff.X import …`` in src/skiff — at module level or
inside a function (the CLI's lazy imports count as much as the others) — is read with
`ast` and checked against the table in DESIGN.md ("who may call whom"). The foundation
modules at the package's top (errors, record, jsonfast, log, reference, units, semver,
port_specs) hold leaf helpers that every layer may import; they import only each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "skiff"

FOUNDATION = {"errors", "record", "jsonfast", "log", "reference", "units", "semver",
              "port_specs"}

# DESIGN.md's table, foundation modules aside.
MAY_IMPORT: dict[str, set[str]] = {
    "oci": set(),
    "kernel": set(),
    "runtime": {"oci", "kernel"},
    "store": {"oci", "kernel"},
    "registry": {"oci", "store"},
    "build": {"oci", "store", "runtime"},
    "net": {"kernel"},
    "engine": {"oci", "kernel", "runtime", "store", "registry", "build", "net"},
    "api": {"engine"},
    "dashboard": {"engine", "api"},
    "client": set(),
    "cli": {"client"},
}


def skiff_imports(path: Path) -> set[str]:
    """The skiff packages or modules that `path` imports (the part after ``skiff.``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out |= {n.split(".")[1] for n in names if n.startswith("skiff.")}
    return out


def layer_of(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def violations() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        layer = layer_of(path)
        if layer == "__init__":
            continue
        allowed = FOUNDATION if layer in FOUNDATION else MAY_IMPORT[layer] | FOUNDATION
        for target in sorted(skiff_imports(path) - allowed - {layer}):
            bad.append(f"{path.relative_to(SRC)} imports skiff.{target}")
    return bad


def test_every_layer_imports_only_what_design_md_allows() -> None:
    assert violations() == []


def test_every_package_is_in_the_table() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py")} - {"__init__"}
    assert packages <= set(MAY_IMPORT), packages - set(MAY_IMPORT)
    assert modules <= FOUNDATION, modules - FOUNDATION


def test_the_check_sees_a_lazy_import_inside_a_function(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from skiff.engine.containers import X\n    import skiff.net.ports\n")
    assert skiff_imports(probe) == {"engine", "net"}
