"""`python -m runner` is the same app as the `runner` console script."""

from runner.cli import app

app()
