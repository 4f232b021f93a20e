"""`python -m controller.cli`: the netctl command."""

from controller.cli import main_exit

main_exit()
