"""The command table: every command module is listed, and every listed command parses its --help."""

import importlib
import pkgutil

import pytest

from t2igan import cli, commands, list_models


def test_every_command_module_is_in_the_table():
    modules = [importlib.import_module(f"t2igan.commands.{m.name}") for m in pkgutil.iter_modules(commands.__path__)]
    command_modules = {m for m in modules if hasattr(m, "run") and hasattr(m, "HELP")}
    assert command_modules == set(cli.COMMANDS.values())
    assert set(cli.COMMANDS) >= {"train", "resume", "sample", "info", "list-models", "list-presets", "pretrain",
                                 "eval", "eval-stats", "shapes-probe", "caption", "convert", "serve"}


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    assert cli.COMMANDS[name].HELP in capsys.readouterr().out.replace("\n", " ")


def test_list_commands_print_the_registry_and_presets(capsys):
    assert cli.main(["list-models"]) == 0
    assert capsys.readouterr().out.split() == list_models()
    assert cli.main(["list-presets"]) == 0
    assert "dfgan-shapes" in capsys.readouterr().out.split()
