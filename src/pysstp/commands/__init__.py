"""Subcommands of the ``pysstp`` command line, one module each."""
