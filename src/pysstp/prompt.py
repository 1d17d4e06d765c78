"""Secrets from the user: the first line of a file (or stdin), ``$PYSSTP_PASSWORD``, or a prompt without echo.

Shared by the commands that need one (``pysstp connect``, ``pysstp user``, ``pysstp pki``). Every mistake
(an unreadable file, no terminal to ask on, the input ended at the prompt) is one
:class:`~pysstp.errors.ConfigError` line.
"""

from __future__ import annotations

import getpass
import sys

from pysstp.errors import ConfigError

PASSWORD_ENV = "PYSSTP_PASSWORD"
"""Environment variable holding the password when ``--password-file`` is not given."""


def read_password_file(name: str) -> str:
    """The first line of ``name`` (``-``: stdin), without its line ending."""
    try:
        if name == "-":
            line = sys.stdin.readline()
        else:
            with open(name, encoding="utf-8") as file:
                line = file.readline()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the password file: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: the password file is not UTF-8 text") from None
    # Text mode has already turned \r\n into \n.
    return line.removesuffix("\n")


def ask_secret(prompt: str, what: str, instead: str) -> str:
    """Ask for ``what`` (e.g. "password") on the terminal without echo. Without a terminal, or when the
    input ends at the prompt (Ctrl-D), the error names ``instead``, the other ways to give it."""
    if not sys.stdin.isatty():
        raise ConfigError(f"no {what}: stdin is not a terminal; use {instead}")
    try:
        return getpass.getpass(prompt)
    except EOFError:
        if sys.stderr.isatty():
            print(file=sys.stderr)  # getpass has not ended the prompt's line
        raise ConfigError(f"no {what}: the input ended at the prompt (Ctrl-D); or use {instead}") from None
