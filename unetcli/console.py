"""The Rich consoles every command prints through: results on stdout, messages and errors on stderr."""

from __future__ import annotations

from rich.console import Console

#: Tables, JSON and other results (what a script pipes on).
out = Console(highlight=False, soft_wrap=True)
#: Progress notes, per-file errors and the final count (never mixed into stdout results).
err = Console(stderr=True, highlight=False, soft_wrap=True)
