"""Hydra configs of lightning-spiral, installed as the package ``lightning_spiral.conf``."""
