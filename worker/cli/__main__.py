"""``python -m worker.cli``: what the console script ``ingest`` runs."""

from . import main

main()
