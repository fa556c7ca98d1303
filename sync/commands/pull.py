"""`healthsync pull`: fill the store from the sources (incremental unless --full) and say what it cost."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from healthsync.connectors.pacing import PacerRegistry
from healthsync.errors import ConfigError, HealthsyncError
from healthsync.sync.commands.common import config_option, console, err_console, opened, short_error
from healthsync.sync.cycle import SourceReport, api_use
from healthsync.sync.pull import pull_source
from healthsync.sync.runtime import build_sources

SKIPPED_EXAMPLES_SHOWN = 5


def register(app: typer.Typer) -> None:
    app.command("pull")(pull)


def pull(
    config: Path | None = config_option(),
    source: list[str] = typer.Option([], "--source", "-s", help="Only this source (repeatable)."),
    full: bool = typer.Option(False, "--full", help="Ignore saved cursors and re-read everything."),
) -> None:
    """Pull the configured sources into the store (incremental unless --full) and print a summary."""
    with opened(config) as (settings, store):
        pacers = PacerRegistry()
        sources, _writer = build_sources(settings, pacers)
        unknown = sorted(set(source) - set(sources))
        if unknown:
            raise ConfigError(f"--source {', '.join(unknown)}: not configured; configured: {', '.join(sources)}")
        as_of = datetime.now(UTC)
        pulled: list[SourceReport] = []
        with _progress() as progress:
            for name, src in sources.items():
                if source and name not in source:
                    continue
                before = api_use(pacers, name)
                report = pull_source(store, src, as_of=as_of, now=lambda: datetime.now(UTC), full=full,
                                     progress=_ticker(progress, name))
                report.api = api_use(pacers, name).minus(before)
                pulled.append(report)
    _summary(pulled, full)
    failed = [r.source for r in pulled if not r.ok]
    if failed:
        raise HealthsyncError(f"{len(failed)} of {len(pulled)} sources failed ({', '.join(failed)}): the reasons "
                              "are above; the other sources' records were stored")


def _progress():
    """A live line per source on a terminal (on stderr, so a redirected summary stays clean); nothing otherwise."""
    if not sys.stderr.isatty():
        return nullcontext(None)
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=err_console, transient=True)


def _ticker(progress: Progress | None, name: str):
    if progress is None:
        return None
    task = progress.add_task(f"{name}: starting", total=None)

    def tick(_source: str, stream: str, records: int) -> None:
        progress.update(task, description=f"{name} {stream}: {records:,} records")

    return tick


def _summary(pulled: list[SourceReport], full: bool) -> None:
    console.print(_stream_table(pulled, full))
    console.print(_source_table(pulled))
    for report in pulled:
        if report.api.daily_limit:
            console.print(f"{report.source}: {report.api.daily_used:,} of {report.api.daily_limit:,} daily API calls used "
                          "(rolling 24 h, all apps of the org)")
        if not report.ok:
            console.print(f"[red]{report.source} failed[/] ({report.error_kind or 'error'}): "
                          f"{escape(short_error(report.error, report.source))}")
        for example in report.skipped_examples[:SKIPPED_EXAMPLES_SHOWN]:
            console.print(f"  {report.source} skipped {escape(example)}")


def _stream_table(pulled: list[SourceReport], full: bool) -> Table:
    table = Table(title=f"Records per stream ({'full' if full else 'incremental'} pull)", box=box.SIMPLE_HEAD,
                  title_justify="left")
    table.add_column("source")
    table.add_column("stream")
    for col in ("records", "deleted", "skipped", "pages"):
        table.add_column(col, justify="right")
    for report in pulled:
        for stream, s in report.streams.items():
            table.add_row(report.source, stream, f"{s.records:,}", f"{s.deleted:,}", f"{s.skipped:,}", f"{s.pages:,}")
        table.add_section()
    return table


def _source_table(pulled: list[SourceReport]) -> Table:
    table = Table(title="Per source", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("source")
    table.add_column("status")
    for col in ("records", "API calls", "429s", "waited", "time"):
        table.add_column(col, justify="right")
    for report in pulled:
        use = report.api
        status = "[green]ok[/]" if report.ok else "[red]FAILED[/]"
        if report.interrupted:
            status = "[yellow]interrupted[/]"
        table.add_row(report.source, status, f"{report.records:,}", f"{use.calls:,}", f"{use.rate_limited:,}",
                      f"{use.waited:.1f}s", f"{report.seconds:.1f}s")
    return table
