"""Make an installed MinkowskiEngine 0.5.4 importable on Python >= 3.10 (run by install.sh).

ME 0.5.4 does ``from collections import Sequence`` in five modules; the
abstract base classes left ``collections`` in Python 3.10. This rewrites those
imports to ``collections.abc`` in the installed files, so that a fresh
interpreter can ``import MinkowskiEngine`` whatever it imported first.
Idempotent: a second run finds nothing to change. Usage::

    python scripts/patch_minkowski.py [PACKAGE_DIR]   # default: the installed one
"""
from __future__ import annotations

import collections.abc
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

ABCS = set(collections.abc.__all__)
IMPORT = re.compile(r"^from collections import ([A-Za-z_, ]+)$", re.M)


def _fixed(match: "re.Match[str]") -> str:
    names = [n.strip() for n in match.group(1).split(",") if n.strip()]
    moved = [n for n in names if n in ABCS]
    if not moved:
        return match.group(0)
    kept = [n for n in names if n not in ABCS]
    lines = [f"from collections import {', '.join(kept)}"] if kept else []
    return "\n".join(lines + [f"from collections.abc import {', '.join(moved)}"])


def patch(package: Path) -> int:
    """Rewrite the imports under ``package``; returns the number of files changed."""
    changed = 0
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        new = IMPORT.sub(_fixed, text)
        if new != text:
            # Temp file + rename: an interrupted install never leaves half a module.
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as stream:
                stream.write(new)
            os.chmod(tmp, path.stat().st_mode & 0o777)
            os.replace(tmp, path)
            changed += 1
    return changed


def main(argv: list) -> int:
    if argv:
        package = Path(argv[0])
    else:
        spec = importlib.util.find_spec("MinkowskiEngine")  # locates without importing
        if spec is None or not spec.submodule_search_locations:
            print("MinkowskiEngine is not installed", file=sys.stderr)
            return 1
        package = Path(list(spec.submodule_search_locations)[0])
    print(f"collections imports of {package} rewritten in {patch(package)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
