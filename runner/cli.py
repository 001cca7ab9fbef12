"""The `runner` command line (typer). Only commands that work are listed."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from runner.ladder import heatmap_size
from runner.spec import JobSpec, SpecError, dump_spec, load_spec

app = typer.Typer(
    help="A resumable job runner for preemptible GPUs.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_INVALID = 2


@app.callback()
def main() -> None:
    """A resumable job runner for preemptible GPUs: validate, run and resume training jobs."""


def _ladder_table(spec: JobSpec) -> Table:
    table = Table(title="OOM ladder (tried top to bottom)")
    for column in ("rung", "batch", "input [W, H]", "heatmap", "accumulation", "act. checkpointing"):
        table.add_column(column)
    for index, rung in enumerate(spec.ladder()):
        hw, hh = heatmap_size(rung.input_size, spec.train.stride)
        table.add_row(
            str(index),
            str(rung.batch_size),
            f"{rung.input_size[0]} x {rung.input_size[1]}",
            f"{hw} x {hh}",
            str(rung.accumulation),
            "yes" if rung.activation_checkpointing else "no",
        )
    return table


@app.command()
def validate(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="job spec YAML, e.g. jobs/t4.yaml"),
    as_json: bool = typer.Option(False, "--json", help="print the resolved spec and ladder as JSON"),
) -> None:
    """Check a job spec; print it with every default resolved and the OOM rungs it implies."""
    try:
        spec = load_spec(spec_path)
    except SpecError as error:
        err.print(f"[bold red]{error.source} is invalid[/] ({len(error.problems)} problem(s)):", highlight=False)
        for problem in error.problems:
            err.print(f"  - {problem}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        document = {
            "spec": spec.model_dump(mode="json"),
            "ladder": [
                {
                    "batch_size": r.batch_size,
                    "input_size": list(r.input_size),
                    "accumulation": r.accumulation,
                    "activation_checkpointing": r.activation_checkpointing,
                }
                for r in spec.ladder()
            ],
        }
        out.print_json(json.dumps(document))
        return
    out.print(f"[bold green]{spec_path} is valid[/]: job [bold]{spec.name}[/]", highlight=False)
    out.print(dump_spec(spec), highlight=False, markup=False)
    out.print(_ladder_table(spec))
