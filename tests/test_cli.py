"""The console script: --help for every subcommand, argument errors."""
import subprocess
import sys

import pytest

from mlreco_spice.cli import build_parser, main
from mlreco_spice.commands import parse_shard
from mlreco_spice.errors import UserError

SUBCOMMANDS = ("simulate", "train", "predict", "tune", "evaluate", "display")


def test_every_subcommand_has_help(capsys):
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert f"mlreco-spice {name}" in out


def test_top_level_help_lists_subcommands():
    text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in text


def test_console_script_installed():
    exe = __import__("pathlib").Path(sys.executable).parent / "mlreco-spice"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "simulate" in result.stdout


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "mlreco_spice", "predict", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "--shard" in result.stdout


def test_parse_shard():
    assert parse_shard("0/4") == (0, 4)
    assert parse_shard(None) is None
    for bad in ("4/4", "a/b", "1", "-1/3"):
        with pytest.raises(UserError):
            parse_shard(bad)


def test_config_error_exits_nonzero_without_traceback(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("train: {itertions: 3}\n")
    result = subprocess.run([sys.executable, "-m", "mlreco_spice", "train", "-c", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Did you mean 'train.iterations'" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_requires_output_and_count(caplog):
    assert main(["simulate"]) == 2
    assert "needs -o FILE and -n N" in caplog.text
