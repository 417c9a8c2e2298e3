"""``python -m isales_async``: the ``isales`` command."""

from .cli import main

main()
