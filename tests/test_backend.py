"""The sparse backend: the one import of MinkowskiEngine, and its error path."""
import subprocess
import sys

import pytest

from mlreco_spice import backend


def test_missing_backend_error_says_how_to_install():
    with pytest.raises(backend.BackendMissingError) as info:
        backend.import_minkowski("MinkowskiEngine_not_installed_here")
    message = str(info.value)
    assert "cannot import MinkowskiEngine_not_installed_here" in message
    assert "minkowskiengine==0.5.4" in message
    assert "make install" in message


def test_backend_error_is_a_user_error_and_import_error():
    from mlreco_spice.errors import UserError

    assert issubclass(backend.BackendMissingError, UserError)
    assert issubclass(backend.BackendMissingError, ImportError)


def test_minkowski_imports_with_compat_fix():
    ME = backend.import_minkowski()
    assert hasattr(ME, "SparseTensor")
    assert backend.minkowski_available()


def test_package_import_does_not_import_minkowski():
    code = ("import sys, mlreco_spice, mlreco_spice.metrics, parsers, analysis, mlreco_spice.cli; "
            "import mlreco_spice.config, mlreco_spice.columns; "
            "sys.exit(1 if 'MinkowskiEngine' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


ONE_LINER = "import mlreco_spice, parsers, analysis, MinkowskiEngine, larcv"


@pytest.mark.parametrize("code", [ONE_LINER, "import MinkowskiEngine as ME; ME.SparseTensor"])
def test_minkowski_imports_in_a_fresh_interpreter(code):
    # Physicists import MinkowskiEngine directly in other chain stages: it must work
    # without mlreco_spice.backend's aliases, whatever is imported first.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_install_patch_of_collections_imports_is_idempotent(tmp_path):
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "patch_minkowski.py"
    package = tmp_path / "MinkowskiEngine"
    (package / "utils").mkdir(parents=True)
    (package / "a.py").write_text("import os\nfrom collections import Sequence, namedtuple\n")
    (package / "utils" / "b.py").write_text("from collections import OrderedDict\n"
                                            "from collections import Sequence\n")
    first = subprocess.run([sys.executable, str(script), str(package)], capture_output=True,
                           text=True)
    assert first.returncode == 0, first.stderr
    assert (package / "a.py").read_text() == ("import os\nfrom collections import namedtuple\n"
                                              "from collections.abc import Sequence\n")
    assert (package / "utils" / "b.py").read_text() == ("from collections import OrderedDict\n"
                                                        "from collections.abc import Sequence\n")
    assert "2 file(s)" in first.stdout
    again = subprocess.run([sys.executable, str(script), str(package)], capture_output=True,
                           text=True)
    assert again.returncode == 0 and "0 file(s)" in again.stdout
