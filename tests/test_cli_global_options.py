"""Global options (-v, -q, --traceback) work before and after the subcommand, and are listed."""
import pytest

from mlreco_spice.cli import build_parser, main

SUBCOMMANDS = ("simulate", "train", "predict", "tune", "evaluate", "display")


@pytest.mark.parametrize("argv, quiet, verbose, traceback", [
    (["predict", "-i", "x.h5", "-o", "out", "-q"], True, 0, False),
    (["-q", "predict", "-i", "x.h5", "-o", "out"], True, 0, False),
    (["-v", "predict", "-i", "x.h5", "-o", "out", "--traceback"], False, 1, True),
    (["predict", "-i", "x.h5", "-o", "out", "-vv"], False, 2, False),
    (["predict", "-i", "x.h5", "-o", "out"], False, 0, False),
])
def test_global_options_before_or_after_the_subcommand(argv, quiet, verbose, traceback):
    args = build_parser().parse_args(argv)
    assert (args.quiet, args.verbose, args.traceback) == (quiet, verbose, traceback)


def test_subcommand_help_lists_the_global_options(capsys):
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        for option in ("--quiet", "--verbose", "--traceback"):
            assert option in out, (name, option)


def test_traceback_after_the_subcommand_reraises(tmp_path):
    from mlreco_spice.config import ConfigError

    bad = tmp_path / "c.yaml"
    bad.write_text("train: {itertions: 3}\n")
    assert main(["train", "-c", str(bad), "-q"]) == 2
    with pytest.raises(ConfigError):
        main(["train", "-c", str(bad), "--traceback"])
