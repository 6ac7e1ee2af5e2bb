"""``unetcli models``: the registry as a table or JSON."""

from __future__ import annotations

import json

from rich.table import Table

from unetcli import console
from unetcli.cli.options import JsonOpt
from unetcli.models.registry import get_spec, list_models
from unetcli.weights import read_card, shipped_weights


def models(json_out: JsonOpt = False) -> None:
    """List the registry: name, aliases, task, in/out channels, parameters and shipped weights."""
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
    table = Table(title="unetcli model registry")
    for col in ("name", "aliases", "task", "in -> out", "params", "shipped weights"):
        table.add_column(col, justify="right" if col == "params" else "left", no_wrap=True)
    for r in rows:
        weights = f"yes ({r['weights_epochs']} epochs)" if r["weights"] else "no"
        table.add_row(r["name"], ", ".join(r["aliases"]) or "-", r["task"],
                      f"{r['in_channels']} -> {r['out_channels']}", f"{r['params']:,}", weights)
    console.out.print(table)
