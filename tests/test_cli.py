"""The ``dldfd`` command line: every sub-command is listed, and only the one being run is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dldfd_hf.cli import COMMANDS, build_parser, main


def test_help_lists_every_command_with_its_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, (_, help_text) in COMMANDS.items():
        assert name in out and help_text in out


def test_every_command_has_its_arguments_and_a_runner():
    parser = build_parser()  # no argv: every command configured
    args = parser.parse_args(["detect", "a.mp4", "--frames", "4"])
    assert args.frames == 4 and callable(args.func)
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0


def test_only_the_command_being_run_is_imported():
    script = (
        "import sys; from dldfd_hf.cli import build_parser; build_parser({argv!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('dldfd_hf.commands.') and m != 'dldfd_hf.commands._args'))"
    )
    listed = subprocess.run([sys.executable, "-c", script.format(argv=["--help"])], capture_output=True, text=True,
                            check=True).stdout
    assert listed.strip() == "[]"
    listed = subprocess.run([sys.executable, "-c", script.format(argv=["merge-ffpp", "--help"])],
                            capture_output=True, text=True, check=True).stdout
    assert listed.strip() == "['dldfd_hf.commands.build_ffpp']"


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
