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
