"""``python -m lakeless``: the same as the ``lakeless`` command."""

from lakeless.cli import main

main()
