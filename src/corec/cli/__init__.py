"""The ``corec`` command line (Typer + Rich)."""
