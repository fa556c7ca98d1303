"""`healthsync pull` and `healthsync connectors test`: fill the store from the sources, check credentials."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from connectors.base import ConfigError, HealthsyncError
from connectors.pacing import PacerRegistry
from sync.commands.common import config_option, console, opened
from sync.pull import pull_source
from sync.runtime import build_sources


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
        reports = []
        with _progress() as progress:
            for name, src in sources.items():
                if source and name not in source:
                    continue
                task = progress.add_task(f"{name}", total=None) if progress else None

                def tick(src_name, stream, n, task=task):
                    if progress is not None:
                        progress.update(task, description=f"{src_name} {stream}: {n} records")

                reports.append(pull_source(store, src, as_of=as_of, now=lambda: datetime.now(UTC), full=full,
                                           progress=tick))
    stats = {s.api: s for s in pacers.stats()}
    _summary(reports, stats)
    failed = [r for r in reports if not r.ok]
    if failed:
        raise HealthsyncError("; ".join(f"{r.source}: {r.error}" for r in failed))


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress():
    if not sys.stderr.isatty():
        return _NoProgress()
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True)


def _summary(reports, stats) -> None:
    table = Table(title="pull summary")
    for col in ("source", "stream", "records", "deleted", "skipped", "pages"):
        table.add_column(col, justify="right" if col not in ("source", "stream") else "left")
    for r in reports:
        for stream, s in r.streams.items():
            table.add_row(r.source, stream, str(s.records), str(s.deleted), str(s.skipped), str(s.pages))
    console.print(table)
    for r in reports:
        st = stats.get(r.source)
        calls = f"{st.calls} API calls, {st.rate_limited} 429s" if st else "no API stats"
        status = "[green]ok[/]" if r.ok else f"[red]failed[/] ({r.error})"
        console.print(f"{r.source}: {status} · {calls} · {r.seconds:.1f}s")
        for example in r.skipped_examples[:5]:
            console.print(f"  skipped {example}")
