"""``python -m corec`` runs the ``corec`` command."""

from corec.cli.main import main

main()
