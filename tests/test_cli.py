"""The ``dldfd`` command line: every sub-command is listed with its arguments (that only the one being run
is imported: test_imports.py)."""

from __future__ import annotations


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


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
