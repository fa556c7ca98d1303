"""`healthsync backtest` and `healthsync fit`: replay health models over the CRM's past renewals and say how well
each warned of churn; fit a model on them and write it as a health-model file (never applied by itself)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import typer
import yaml
from rich import box
from rich.table import Table

from healthsync.config.definitions import load_definitions
from healthsync.config.health_model import load_model
from healthsync.config.settings import Settings
from healthsync.errors import ConfigError
from healthsync.insights.backtest import (
    DEFAULT_HORIZON_DAYS,
    DEFAULT_MIN_CHURNED,
    Backtest,
    Options,
    run_backtest,
)
from healthsync.insights.metrics import Interval
from healthsync.scoring.model import HealthModel
from healthsync.sync.commands.common import config_option, console, snapshot, with_model
from healthsync.sync.renewals import history_of

# The five presets (SPEC §4); `daily-ops` is `default` under its other name.
PRESETS = ("default", "csm-playbook", "points-100", "ops-thresholds", "weighted-five")
_HORIZON_HELP = "Score each account this many days before each renewal."
_AS_OF_HELP = "Only renewals closed by this date count as outcomes (default: today)."
_MIN_CHURNED_HELP = "Fewer churned renewals than this: the estimate is unreliable (backtest) or refused (fit)."


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
    app.command("fit")(fit)


def backtest(  # noqa: PLR0913 (one keyword per CLI option, declared for typer)
    config: Path | None = config_option(),
    model: list[str] | None = typer.Option(None, "--model", help="A preset or model file; repeat to compare "
                                                                 "(default: the five presets and the config's model)."),
    horizon_days: int = typer.Option(DEFAULT_HORIZON_DAYS, "--horizon-days", min=1, max=365, help=_HORIZON_HELP),
    first: str | None = typer.Option(None, "--from", help="Renewals closed on or after this date (YYYY-MM-DD)."),
    last: str | None = typer.Option(None, "--to", help="Renewals closed on or before this date (YYYY-MM-DD)."),
    min_churned: int = typer.Option(DEFAULT_MIN_CHURNED, "--min-churned", min=1, help=_MIN_CHURNED_HELP),
    as_of: str | None = typer.Option(None, "--as-of", help=_AS_OF_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Replay models as of N days before every past renewal (stored facts only) and compare their warnings."""
    options = Options(horizon_days, _day(first, "--from"), _day(last, "--to"), min_churned)
    if options.first and options.last and options.first > options.last:
        raise ConfigError(f"--from {first} is after --to {last}")
    started = time.monotonic()
    with snapshot(config, as_of) as snap:
        models = named_models(snap.settings, model)
        history = history_of(snap.store, snap.ctx.crm, snap.gathered, snap.as_of.date())
        read = time.monotonic() - started
        result = run_backtest(history, models, options)
    seconds = {"read_store": round(read, 2), "replay": round(time.monotonic() - started - read, 2)}
    if as_json:
        typer.echo(json.dumps(backtest_json(result, seconds), indent=2))
        return
    _print_backtest(result, seconds)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None


def named_models(settings: Settings, names: list[str] | None) -> list[tuple[str, HealthModel]]:
    """(label, model) for each `--model`, or the five presets plus the config's own model when it is not one."""
    if names:
        return [_named(with_model(settings, name)) for name in names]
    models = [_named(with_model(settings, name)) for name in PRESETS]
    source = settings.health.model
    if source.kind != "preset" or source.name not in (*PRESETS, "daily-ops"):
        models.append(_named(settings))
    return models


def _named(settings: Settings) -> tuple[str, HealthModel]:
    return str(settings.health.model.name), load_definitions(settings)[0]


# ----------------------------------------------------------------------------------------------- output


def _round(value, digits: int = 4):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v, digits) for v in value]
    return value


def _interval(value: Interval | None) -> list[float] | None:
    return None if value is None else [round(value.low, 4), round(value.high, 4)]


def backtest_json(result: Backtest, seconds: dict[str, float] | None = None) -> dict:
    models = []
    for report in result.models:
        entry = asdict(report)
        entry["auc_ci"], entry["pr_auc_ci"] = _interval(report.auc_ci), _interval(report.pr_auc_ci)
        models.append(_round(entry))
    out = {
        "horizon_days": result.options.horizon_days,
        "from": result.first.isoformat() if result.first else None,
        "to": result.last.isoformat() if result.last else None,
        "renewals": result.outcomes, "loss_reasons": result.loss_reasons, "skipped": result.skipped,
        "min_churned": result.options.min_churned, "reliable": all(m.reliable for m in result.models),
        "warnings": list(result.warnings), "models": models,
    }
    if seconds is not None:
        out["seconds"] = seconds  # reading the store into facts, then replaying and measuring
    return out


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(value: Interval | None) -> str:
    return "" if value is None else f" [{value.low:.2f}–{value.high:.2f}]"


def _print_backtest(result: Backtest, seconds: dict[str, float]) -> None:
    window = f"{result.first} – {result.last}" if result.first else "no renewals"
    console.print(f"[bold]Backtest[/] at {result.options.horizon_days} days before each renewal: {window}; "
                  + ", ".join(f"{n} {kind}" for kind, n in result.outcomes.items())
                  + f" (store read {seconds['read_store']:.1f}s, replay {seconds['replay']:.1f}s)")
    table = Table(box=box.SIMPLE_HEAD, caption="AUC: 1.0 = every churner scored below every renewer, 0.5 = a coin "
                  "[95 % bootstrap interval]. Red = the model's bottom band; lead = median days before the renewal "
                  "a churner first stood in it.", caption_justify="left")
    for column in ("model", "renewals", "churned", "ROC AUC", "PR AUC", "red: prec / recall",
                   "not healthy: prec / recall", "lift top 10%", "lead (d)", "reached red"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for m in result.models:
        table.add_row(m.model, str(m.accounts), str(m.churned), _num(m.auc) + _ci(m.auc_ci), _num(m.pr_auc),
                      f"{_pct(m.precision_at_red)} / {_pct(m.recall_at_red)}",
                      f"{_pct(m.precision_at_risk)} / {_pct(m.recall_at_risk)}", _num(m.lift_top_decile, 1),
                      _num(m.median_lead_days, 0), f"{m.churned_reaching_red}/{m.churned}")
    console.print(table)
    console.print("[bold]Churn rate by band[/] (renewals in the band):")
    for m in result.models:
        bands = "  ".join(f"{b.band} {_pct(b.churn_rate)} ({b.accounts})" for b in m.by_band)
        console.print(f"  {m.model}: {bands}")
    if result.loss_reasons:
        console.print("Loss reasons: " + ", ".join(f"{r} {n}" for r, n in sorted(result.loss_reasons.items(),
                                                                                key=lambda kv: -kv[1])))
    for reason, n in result.skipped.items():
        console.print(f"[dim]{n} renewals not replayed: {reason}[/]")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def preset_auc_lines(settings: Settings, store, ctx, gathered) -> list[str]:
    """One line per preset: its AUC at 90 days on this store's past renewals (the demo prints them)."""
    result = run_backtest(history_of(store, ctx.crm, gathered, ctx.now().date()), named_models(settings, list(PRESETS)),
                          Options(bootstrap_rounds=400, lead_weeks=0))
    lines = []
    for m in result.models:
        note = "" if m.reliable else f" (unreliable: < {result.options.min_churned} churned)"
        lines.append(f"{m.model:<15} AUC {_num(m.auc)}{_ci(m.auc_ci)} · {m.accounts} renewals, {m.churned} "
                     f"churned{note}")
    return lines

# ----------------------------------------------------------------------------------------------- fit


def fit(  # noqa: PLR0913 (one keyword per CLI option, declared for typer)
    config: Path | None = config_option(),
    horizon_days: int = typer.Option(DEFAULT_HORIZON_DAYS, "--horizon-days", min=1, max=365, help=_HORIZON_HELP),
    holdout: float = typer.Option(0.3, "--holdout", min=0.1, max=0.5,
                                  help="Hold out the newest renewals holding this share of the churned ones."),
    min_churned: int = typer.Option(DEFAULT_MIN_CHURNED, "--min-churned", min=1, help=_MIN_CHURNED_HELP),
    out: Path | None = typer.Option(None, "--out", help="Write the fitted model here (a health-model YAML file)."),
    as_of: str | None = typer.Option(None, "--as-of", help=_AS_OF_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Fit a regularised logistic model on the past renewals; compare it with the presets on held-out renewals."""
    from healthsync.insights.fit import FitOptions, fit_model

    options = FitOptions(horizon_days=horizon_days, holdout_share=holdout, min_churned=min_churned)
    with snapshot(config, as_of) as snap:
        base = (snap.ctx.model_name, snap.ctx.model)
        history = history_of(snap.store, snap.ctx.crm, snap.gathered, snap.as_of.date())
        result = fit_model(history, base, named_models(snap.settings, None), options)
        signals = _signals_document(snap.ctx.model)
    document = result.document("fitted", {"description": _description(result), "source": _source(result),
                                          "signals": signals, "calibration": _calibration_document(result)})
    load_model(document, "the fitted model")  # what we write must read back through the one validation path
    if out is not None:
        _write(out, document, result)
    if as_json:
        typer.echo(json.dumps(fit_json(result, document, out), indent=2))
        return
    _print_fit(result, document, out)


def _signals_document(model) -> dict:
    """The base model's signal settings, but not the vocabulary the config fills in (competitors, features)."""
    config = model.signal_config
    return {"qbr_window_days": config.qbr_window_days, "ignored_topic_tags": list(config.ignored_topic_tags)}


def _description(result) -> str:
    best = max((r for r in result.rivals if r.holdout_auc is not None), key=lambda r: r.holdout_auc, default=None)
    rival = f"; best preset {best.model} {best.holdout_auc:.2f}" if best else ""
    auc = _num(result.fitted.holdout_auc)
    return (f"Fitted by `healthsync fit` on {result.train.renewals} renewals ({result.train.churned} churned); "
            f"held-out AUC {auc} at {result.calibration.horizon_days} days{rival}.")


def _split_json(split) -> dict:
    return {"renewals": split.renewals, "churned": split.churned,
            "from": split.first.isoformat() if split.first else None,
            "to": split.last.isoformat() if split.last else None}


def _source(result) -> dict:
    return {"fitted_by": "healthsync fit", "train": _split_json(result.train), "holdout": _split_json(result.holdout),
            "holdout_auc": _round(result.fitted.holdout_auc), "penalty_c": _round(result.penalty_c)}


def _calibration_document(result) -> dict:
    intercept, slope = result.calibration_line
    return {
        "horizon_days": result.calibration.horizon_days,
        "method": "logistic: renewal probability = 1 - 1 / (1 + exp(-(intercept + slope * score)))",
        "intercept": round(intercept, 6), "slope": round(slope, 6),
        "fitted_on": _split_json(result.train),
        "table": [[score, round(100.0 * p, 1)] for score, p in result.calibration.points],
    }


def _write(out: Path, document: dict, result) -> None:
    header = (f"# {document['description']}\n# Not applied: to score with it, set `health: {{model: {out}}}` in "
              "the config (run `healthsync check` and `healthsync backtest --model FILE` first).\n")
    text = header + yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=110)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write it ({exc.strerror or exc})") from None


def fit_json(result, document: dict, out: Path | None) -> dict:
    return {
        "horizon_days": result.calibration.horizon_days, "train": _split_json(result.train),
        "holdout": _split_json(result.holdout), "holdout_auc": _round(result.fitted.holdout_auc),
        "holdout_auc_ci": _interval(result.fitted.holdout_auc_ci),
        "presets": [{"model": r.model, "holdout_auc": _round(r.holdout_auc), "holdout_auc_ci": _interval(r.holdout_auc_ci)}
                    for r in result.rivals],
        "penalty_c": _round(result.penalty_c), "components": document["components"], "bands": document["bands"],
        "calibration": document["calibration"], "out": str(out) if out else None, "applied": False,
    }


def _print_fit(result, document: dict, out: Path | None) -> None:
    train, held = result.train, result.holdout
    console.print(f"[bold]Fitted[/] on {train.renewals} renewals closed {train.first} – {train.last} ({train.churned} "
                  f"churned); judged on the {held.renewals} newest, {held.first} – {held.last} ({held.churned} "
                  "churned), never trained on.")
    table = Table(title=f"Held-out ROC AUC at {result.calibration.horizon_days} days", box=box.SIMPLE_HEAD,
                  title_justify="left")
    table.add_column("model")
    table.add_column("AUC [95 % interval]", justify="right")
    for judged in (result.fitted, *result.rivals):
        table.add_row(judged.model, _num(judged.holdout_auc) + _ci(judged.holdout_auc_ci))
    console.print(table)
    console.print("[bold]Weights[/] (components sum to 100; a measure's share of its component):")
    for component in document["components"]:
        total = sum(m["weight"] for m in component["measures"])
        measures = ", ".join(f"{m['signal']} {m['weight'] / total:.0%}" for m in component["measures"])
        console.print(f"  {component['name']} {component['weight']:g}: {measures}")
    console.print("Bands: " + ", ".join(f"{b.name} ≥ {b.min:g}" for b in result.bands[:-1])
                  + f", {result.bands[-1].name} below")
    table_points = document["calibration"]["table"]
    console.print("Renewal probability by score: " + ", ".join(f"{s:g} → {p:g}%" for s, p in table_points[::4]))
    if out is not None:
        console.print(f"Written to {out}. Not applied: set `health: {{model: {out}}}` in the config to score with it.")
    else:
        console.print("Nothing written (give --out FILE to write the model).")
