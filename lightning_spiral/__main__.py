"""``python -m lightning_spiral`` runs the ``lightning-spiral`` command."""

from lightning_spiral.cli import main

main()
