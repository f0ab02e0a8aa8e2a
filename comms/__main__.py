"""``python -m comms`` runs the command line."""

from comms.cli import main

main()
