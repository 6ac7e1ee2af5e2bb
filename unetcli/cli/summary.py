"""``unetcli summary MODEL``: torchinfo's layer table, params, mult-adds and memory, plus the weights' card."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from unetcli import console
from unetcli.cli.options import JsonOpt, ModelArg, WeightsOpt, parse_size
from unetcli.engine.summary import summarize


def summary(
    model: ModelArg,
    input_size: Annotated[Optional[str], typer.Option(
        "--input-size", help="N or HxW in pixels; default: the model's training size.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Batch size N of the input.")] = 1,
    depth: Annotated[int, typer.Option("--depth", min=1, help="Nesting depth of the layer table.")] = 3,
    weights: WeightsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Layer table, total/trainable params, mult-adds and memory (torchinfo), and the weights' model card."""
    info = summarize(model, parse_size(input_size), batch_size, depth, weights)
    if json_out:
        console.out.print_json(json.dumps({k: v for k, v in info.items() if k != "table"}))
        return
    console.out.print(info["table"], markup=False)
    w = info["weights"]
    if w is None:
        console.out.print(f"Weights: none shipped for {info['model']} (train with `unetcli train`).")
        return
    console.out.print(f"Weights: {w['path']}\n  sha256: {w['sha256']}")
    card = w["card"]
    if card:
        t = card.get("training", {})
        console.out.print(f"  trained: {t.get('epochs')} epochs on {t.get('data')}, "
                          f"{t.get('images_seen_total', t.get('images_seen'))} crops seen, {t.get('precision')}")
        console.out.print(f"  command: {t.get('command')}")
        for group, values in card.get("metrics", {}).items():
            console.out.print(f"  {group}: {json.dumps(values)}")
