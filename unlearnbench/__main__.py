"""``python -m unlearnbench``: the command line."""

from unlearnbench.cli import main

main()
