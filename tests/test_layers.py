"""Imports only go down the layers (ARCHITECTURE.md): files -> network -> clusterer."""
import ast
from pathlib import Path

import mlreco_spice

PACKAGE = Path(mlreco_spice.__file__).resolve().parent
#: Modules that run the network or drive files: the clusterer must not depend on them.
UPPER = ("inference", "predict", "commands", "tune_files")


def _imported_modules(path: Path):
    """Every module an ``import`` statement in ``path`` names (top level or inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module
            for alias in node.names:  # `from .. import inference`
                yield f"{module}.{alias.name}"


def test_cluster_package_imports_nothing_above_it():
    offenders = []
    for path in sorted((PACKAGE / "cluster").glob("*.py")):
        for module in _imported_modules(path):
            if any(module == f"mlreco_spice.{name}" or module.startswith(f"mlreco_spice.{name}.")
                   for name in UPPER):
                offenders.append(f"{path.name} imports {module}")
    assert not offenders, offenders


def test_the_import_scan_sees_relative_imports_inside_functions():
    sample = PACKAGE / "cluster" / "tuning.py"
    assert "mlreco_spice.metrics" in set(_imported_modules(sample))


def test_pieces_needs_only_numpy_and_scipy():
    """The benchmarks import mlreco_spice.pieces without torch (they run on the truth)."""
    modules = set(_imported_modules(PACKAGE / "pieces.py"))
    assert {m.split(".")[0] for m in modules} <= {"__future__", "numpy", "scipy"}, modules
