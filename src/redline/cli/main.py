"""The ``redline`` command. Sub-commands load lazily so ``--help`` never imports torch."""

from __future__ import annotations

import importlib
import sys

import click

from redline._version import __version__
from redline.errors import NotFoundError, RedlineError

#: command name → "module:attribute" of its click command or group.
COMMANDS: dict[str, str] = {
    "eval": "redline.cli.eval_cmd:eval_command",
    "runs": "redline.cli.runs_cmd:runs",
    "lexicon": "redline.cli.lexicon_cmd:lexicon",
    "policy": "redline.cli.policy_cmd:policy",
    "suites": "redline.cli.suites_cmd:suites",
    "scorers": "redline.cli.scoring_cmd:scorers",
    "serve-model": "redline.cli.serve_cmd:serve_model",
    "report": "redline.cli.report_cmd:report",
    "keys": "redline.cli.evidence_cmd:keys",
    "attest": "redline.cli.evidence_cmd:attest",
    "reveal": "redline.cli.evidence_cmd:reveal",
    "verify": "redline.cli.evidence_cmd:verify",
    "vet": "redline.cli.vet_cmd:vet",
    "probes": "redline.cli.probes_cmd:probes",
    "observatory": "redline.cli.observatory_cmd:observatory",
    "guard": "redline.cli.guard_cmd:guard",
    "campaign": "redline.cli.campaign_cmd:campaign",
    "compare": "redline.cli.compare_cmd:compare_command",
    "drift": "redline.cli.compare_cmd:drift_command",
}

#: Exit code for Ctrl-C, by shell convention (128 + SIGINT).
EXIT_INTERRUPTED = 130


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module, attr = spec.split(":")
        try:
            command = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "redline":
                raise
            raise NotFoundError(
                f"`redline {cmd_name}` needs {exc.name}, which is not installed; install "
                f"redline with its extras: pip install 'redline[local,observatory,scale]'"
            ) from None
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="redline")
def cli() -> None:
    """redline: declare AI red lines once; test, tier, attest and enforce them."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: turns redline errors into a message and a documented exit code."""
    try:
        cli.main(args=argv, prog_name="redline", standalone_mode=False)
    except RedlineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)
