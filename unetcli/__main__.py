"""``python -m unetcli`` (also what ``torchrun -m unetcli`` runs)."""

from unetcli.cli import main

main()
