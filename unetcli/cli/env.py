"""``unetcli env``: versions, CPU, CUDA devices and what ``--device auto`` / ``--precision auto`` pick here."""

from __future__ import annotations

import json

from rich.markup import escape
from rich.table import Table

from unetcli import console
from unetcli.cli.options import JsonOpt
from unetcli.devices import describe_environment


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def env(json_out: JsonOpt = False) -> None:
    """Show versions, the CPU's bf16 support, CUDA devices and torch threads, and what `--device auto` and
    `--precision auto` pick on this machine and why (paste it into bug reports: "is my GPU used?")."""
    info = describe_environment()
    if json_out:
        console.out.print_json(json.dumps(info))
        return
    cpu, threads, auto = info["cpu"], info["threads"], info["auto"]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    build = f"CUDA {info['torch_cuda']}" if info["torch_cuda"] else "CPU-only build"
    rows = [
        ("unetcli", info["unetcli"]),
        ("python", f"{info['python']} ({info['platform']})"),
        ("torch", f"{info['torch']} ({build})"),
        ("cpu", f"{cpu['model']}, {cpu['logical_cores']} logical cores ({cpu['usable_cores']} usable here)"),
        ("cpu kernels", f"{cpu['capability'] or 'unknown'}; AMX {_yes_no(cpu['amx'])}, "
                        f"AVX512-BF16 {_yes_no(cpu['avx512_bf16'])}"),
        ("torch threads", f"{threads['intra_op']} intra-op, {threads['inter_op']} inter-op "
                          f"(OMP_NUM_THREADS={threads['OMP_NUM_THREADS'] or 'unset'})"),
    ]
    if info["cuda"]:
        for d in info["cuda"]:
            rows.append((f"cuda:{d['index']}", f"{d['name']}, compute capability {d['capability']}, "
                                               f"{d['memory_gib']} GiB, bf16 {_yes_no(d['bf16'])}"))
    else:
        rows.append(("cuda", "no device"))
    rows += [
        ("--device auto", f"{auto['device']}: {auto['device_reason']}"),
        ("--precision auto", f"{auto['precision']}: {auto['precision_reason']}"),
    ]
    for key, value in rows:
        table.add_row(key, escape(str(value)))
    console.out.print(table)
    console.out.print(f"({escape(auto['precision_note'])})", style="dim")
