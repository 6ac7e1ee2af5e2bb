"""``unetcli models``: the registry as a table or JSON."""

from __future__ import annotations

import json

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from unetcli import console
from unetcli.cli.options import JsonOpt
from unetcli.models.registry import get_spec, list_models
from unetcli.weights import read_card, shipped_weights


def models(json_out: JsonOpt = False) -> None:
    """List the registry: name, aliases, task, in/out channels, parameters and shipped weights (epochs trained).

    Details of one model and its weights: `unetcli summary MODEL`."""
    rows = []
    for name in list_models():
        spec = get_spec(name)
        path = shipped_weights(spec)
        card = read_card(path) if path else {}
        rows.append({"name": spec.name, "aliases": list(spec.aliases), "task": spec.task,
                     "in_channels": spec.in_channels, "out_channels": spec.out_channels, "params": spec.params,
                     "seed": spec.seed, "description": spec.description,
                     "weights": str(path) if path else None,
                     "weights_epochs": card.get("training", {}).get("epochs"),
                     "weights_metrics": card.get("metrics", {}).get("evaluation") or card.get("metrics")})
    if json_out:
        console.out.print_json(json.dumps(rows))
        return
    table = Table(title="unetcli model registry", box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    # Names and numbers never wrap or get cut (on terminals of 60 columns or more); aliases and task wrap instead.
    table.add_column("name", no_wrap=True)
    table.add_column("aliases", overflow="fold", min_width=5)
    table.add_column("task", overflow="fold", min_width=4)
    table.add_column("in/out", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("weights", no_wrap=True)
    for r in rows:
        weights = f"{r['weights_epochs']} epochs" if r["weights"] and r["weights_epochs"] else (
            "yes" if r["weights"] else "-")
        table.add_row(r["name"], ", ".join(r["aliases"]) or "-", r["task"],
                      f"{r['in_channels']}->{r['out_channels']}", f"{r['params']:,}", weights)
    out = console.out
    if not out.is_terminal:  # a pipe or a file: as wide as the rows need, so `| grep` sees whole rows
        needed = Measurement.get(out, out.options.update_width(10_000), table).maximum
        if needed > out.width:
            out = Console(file=out.file, width=needed, highlight=False, color_system=out.color_system)
    out.print(table)
