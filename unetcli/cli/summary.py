"""``unetcli summary MODEL``: torchinfo's layer table, params, mult-adds and memory, plus a short model card."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path, PurePath
from typing import Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from unetcli import console
from unetcli.cli.options import JsonOpt, ModelArg, WeightsOpt, parse_size
from unetcli.engine.summary import summarize


def summary(
    model: ModelArg,
    input_size: Annotated[Optional[str], typer.Option(
        "--input-size", metavar="N|HxW",
        help="Input size in pixels. [default: the model's training size]")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, metavar="N",
                                            help="Batch size N of the input.")] = 1,
    depth: Annotated[int, typer.Option("--depth", min=1, metavar="N", help="Nesting depth of the layer table.")] = 3,
    weights: WeightsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Layer table, total/trainable params, mult-adds and memory (torchinfo), and a short model card of the weights
    (how they were trained, key metrics); --json prints all of it, the whole card too."""
    info = summarize(model, parse_size(input_size), batch_size, depth, weights)
    if json_out:
        console.out.print_json(json.dumps({k: v for k, v in info.items() if k != "table"}))
        return
    console.out.print(info["table"], markup=False)
    print_card(info["weights"], info["model"], shipped=weights is None)


def print_card(weights: dict | None, model: str, shipped: bool) -> None:
    """A short model card: the weights file, how it was trained, and its key metrics as a small table.

    Paths in the card that belong to the machine that trained it (absolute ones, and ones outside the project
    such as ``../shared/data/photos``) are shown by their last part only.
    """
    if weights is None:
        console.out.print(f"Weights: none shipped for {model} (train with `unetcli train`).")
        return
    name = Path(weights["path"]).name if shipped else weights["path"]
    rows = [("weights", f"{name} (shipped)" if shipped else name), ("sha256", weights["sha256"])]
    card = weights["card"] or {}
    t = card.get("training") or {}
    if t:
        rows.append(("trained", _training_line(t, card.get("metrics", {}).get("best_epoch"))))
        if t.get("command"):
            rows.append(("command", public_command(t["command"])))
        for cmd in t.get("resume_commands") or []:
            rows.append(("resumed", public_command(cmd)))
        init = t.get("init_weights_training")
        if t.get("init_weights"):
            start = public_path(str(t["init_weights"]))
            rows.append(("started from", f"{start}: {_training_line(init)}" if isinstance(init, dict) else start))
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, escape(value))
    console.out.print()
    console.out.print(table)
    metrics = card.get("metrics") or {}
    evaluation = metrics.get("evaluation") or {}
    metric_table = _metric_table(evaluation, metrics.get("validation") or {})
    if metric_table is not None:
        console.out.print()
        console.out.print(metric_table)
        for key in ("resolution", "reference", "units", "bar"):
            if isinstance(evaluation.get(key), str):
                console.out.print(f"{key}: {escape(public_text(evaluation[key]))}", style="dim")
    console.out.print(f"All of the card: `unetcli summary {model} --json`.", style="dim")


def _training_line(t: dict, best_epoch: int | None = None) -> str:
    """``57 epochs on photos (370 train / 41 validation photos), 20,976 crops seen, bf16 on cpu, 61.7 min``."""
    parts = [f"{t.get('epochs_done', t.get('epochs'))} epochs"
             + (f" (best: {best_epoch})" if best_epoch is not None else "")]
    if t.get("data"):
        data = f"{parts.pop()} on {public_path(str(t['data']))}"
        if t.get("train_photos") is not None:
            data += f" ({t['train_photos']} train / {t.get('val_photos', 0)} validation photos)"
        parts.append(data)
    seen = t.get("images_seen_total", t.get("images_seen"))
    if isinstance(seen, int):
        parts.append(f"{seen:,} crops seen")
    if t.get("precision"):
        parts.append(f"{t['precision']} on {t.get('device', '?')}")
    wall = t.get("wall_time_s_total", t.get("wall_time_s"))
    if isinstance(wall, (int, float)):
        parts.append(f"{wall / 60:.1f} min" if wall < 7200 else f"{wall / 3600:.1f} h")
    return ", ".join(parts)


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) and abs(value) < 1 else (
        f"{value:.2f}" if isinstance(value, float) else str(value))


def _metric_table(evaluation: dict, validation: dict) -> Table | None:
    """Rows: metrics (mean over photos, then the worst photo's value); columns: the evaluation sets (e.g. held-out
    photos in fp32 and in bf16) and the validation split."""
    groups = {}
    for group, values in evaluation.items():
        if not isinstance(values, dict):
            continue
        cells, n = {}, None
        for metric, value in values.items():
            if isinstance(value, dict) and "mean" in value:
                cells[metric] = _number(value["mean"])
                if "min" in value:
                    cells[(metric, "min")] = _number(value["min"])
                n = value.get("n", n)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                cells[metric] = _number(value)
        if cells:
            groups[group.replace("_", " ") + (f" ({n})" if n else "")] = cells
    if validation:
        groups["validation"] = {k.removeprefix("val_"): _number(v) for k, v in validation.items()
                                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not groups:
        return None
    metrics = list(dict.fromkeys(m for cells in groups.values() for m in cells if isinstance(m, str)))
    rows = [r for m in metrics for r in (m, (m, "min")) if any(r in cells for cells in groups.values())]
    table = Table(title="Key metrics: mean over the photos (n), and the worst photo (min)", title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("metric", overflow="fold")
    for header in groups:
        table.add_column(header, justify="right")
    for row in rows:
        label = "  min" if isinstance(row, tuple) else row.replace("_", " ")
        table.add_row(label, *(groups[g].get(row, "") for g in groups), style="dim" if isinstance(row, tuple) else None)
    return table


def public_path(text: str) -> str:
    """A path from a model card as shown: its last part if it is absolute or outside the project (``../``),
    since those name the training machine's folders; a path inside the project stays as it is."""
    p = text.strip()
    if p.startswith(("/", "~", "\\")) or (len(p) > 2 and p[1] == ":" and p[2] in "/\\") or p.startswith("..") \
            or "/../" in p:
        return PurePath(p.replace("\\", "/")).name or p
    return text


def public_command(command: str) -> str:
    """A recorded training command with :func:`public_path` applied to each argument (``--opt=PATH`` too)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return public_text(command)
    out = []
    for word in words:
        opt, eq, value = word.partition("=")
        out.append(f"{opt}={public_path(value)}" if eq and opt.startswith("--") else public_path(word))
    return shlex.join(out)


def public_text(text: str) -> str:
    """Free text from a card with absolute or ``../`` paths in it cut to their last part."""
    return re.sub(r"(?<![\w.])(?:~|\.\.|)/?(?:[\w.-]+/)+[\w.-]+",
                  lambda m: public_path(m[0]) if m[0].startswith(("/", "~", "..")) else m[0], text)
