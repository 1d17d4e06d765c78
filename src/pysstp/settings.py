"""Declarative settings, shared by both roles: one declaration per setting gives its TOML key, its flag,
how a value is read and checked, and its help text.

A :class:`SettingsTable` of :class:`Setting` entries drives the file loader (with the did-you-mean hint for
an unknown key), the argument parser and ``--help``, so no setting can have a key but no flag, or a flag
whose checks differ from the key's. ``pysstp server`` (:mod:`pysstp.server.config`) and ``pysstp connect``
(:mod:`pysstp.client.settings`) each declare their own table and build their own frozen settings from the
checked values; the messages a mistake gets are the same in both.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import math
import operator
import tomllib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pysstp.errors import ConfigError

# -- how values are read ---------------------------------------------------------------------------
#
# A kind turns a TOML value into a checked setting value; ``from_flag`` first turns what argparse stored
# into the TOML form, so a flag and a key go through the same checks. Problems are ValueErrors whose text
# completes "<file>: <key>: ..." or "<flag>: ...".


def wrong_type(expected: str, value: object) -> ValueError:
    """The error for a TOML value of the wrong type, e.g. "expected an integer, not a string ('8')"."""
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}
    got = (
        "a table"
        if isinstance(value, dict)
        else f"{names.get(type(value), type(value).__name__)} ({value!r})"
    )
    return ValueError(f"expected {expected}, not {got}")


class Kind(ABC):
    """How one setting's value is read and checked (see the section comment)."""

    action: ClassVar[str | type[argparse.Action]] = "store"
    """The argparse action of the setting's flag."""

    @abstractmethod
    def parse(self, value: object) -> Any:
        """Check a TOML value and return the setting's value."""

    def from_flag(self, value: Any) -> object:
        """Turn what argparse stored for the flag into the TOML form of the value."""
        return value

    def show(self, value: Any) -> str:
        """A setting's value as it would be written in the settings file (for the help text)."""
        return str(value)

    def metavar(self, default: str) -> str | None:
        """What ``--help`` shows as the flag's argument; ``default`` is the setting's own word for it."""
        return default

    def anchored(self, value: Any, directory: Path) -> Any:
        """The value with its relative paths taken relative to ``directory`` (the settings file's): a
        kind whose values hold paths deeper inside says where they are."""
        return directory / value if isinstance(value, Path) and not value.is_absolute() else value


@dataclass(frozen=True)
class Text(Kind):
    """A string, turned into the setting's value by ``convert`` (which raises ValueError)."""

    convert: Callable[[str], Any] = str

    def parse(self, value: object) -> Any:
        if not isinstance(value, str):
            raise wrong_type("a string", value)
        return self.convert(value)


@dataclass(frozen=True)
class Integer(Kind):
    """An integer from ``low`` to ``high`` (no upper bound when ``None``)."""

    low: int
    high: int | None = None

    def parse(self, value: object) -> int:
        # bool is a subclass of int; "port = true" is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type("an integer", value)
        if self.high is None and value < self.low:
            raise ValueError(f"must be at least {self.low}, not {value}")
        if self.high is not None and not self.low <= value <= self.high:
            raise ValueError(f"must be between {self.low} and {self.high}, not {value}")
        return value

    def from_flag(self, value: Any) -> object:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expected an integer, not {value!r}") from None


@dataclass(frozen=True)
class Seconds(Kind):
    """A number of seconds, more than 0 (or 0 for off)."""

    zero_means_off: bool = False

    def parse(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong_type("a number of seconds", value)
        # TOML allows inf and nan; neither is a timeout.
        if not math.isfinite(value) or value < 0 or (value == 0 and not self.zero_means_off):
            wanted = "0 (off) or more" if self.zero_means_off else "more than 0"
            raise ValueError(f"must be {wanted} seconds, not {value}")
        return float(value)

    def from_flag(self, value: Any) -> object:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a number of seconds, not {value!r}") from None

    def show(self, value: Any) -> str:
        return f"{value:g}"


@dataclass(frozen=True)
class Bool(Kind):
    """true or false; the flag comes as ``--name`` and ``--no-name``."""

    action: ClassVar[str | type[argparse.Action]] = argparse.BooleanOptionalAction

    def parse(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise wrong_type("true or false", value)
        return value

    def show(self, value: Any) -> str:
        return "true" if value else "false"

    def metavar(self, default: str) -> str | None:
        return None  # --flag / --no-flag take no argument


@dataclass(frozen=True)
class Choice(Kind):
    """One of the names in ``options``, each standing for its value."""

    options: Mapping[str, Any]
    refused: Mapping[str, str] = field(default_factory=dict)
    """Names that exist but cannot be used here, with the reason."""

    def parse(self, value: object) -> Any:
        if not isinstance(value, str):
            raise wrong_type("a string", value)
        if value in self.refused:
            raise ValueError(f"{value!r} {self.refused[value]}")
        if value not in self.options:
            names = ", ".join(repr(name) for name in self.options)
            raise ValueError(f"must be one of {names}, not {value!r}")
        return self.options[value]

    def show(self, value: Any) -> str:
        return next(name for name, option in self.options.items() if option == value)

    def metavar(self, default: str) -> str | None:
        return "{" + ",".join(self.options) + "}"


@dataclass(frozen=True)
class List(Kind):
    """A list in TOML; a repeatable flag whose values may also be comma-separated (flags replace the list)."""

    item: Kind
    allow_empty: bool = False
    action: ClassVar[str | type[argparse.Action]] = "append"

    def parse(self, value: object) -> Any:
        if not isinstance(value, list):
            raise wrong_type("a list", value)
        if not value and not self.allow_empty:
            raise ValueError("must not be empty")
        items = [self.item.parse(entry) for entry in value]
        for index, entry in enumerate(items):
            if entry in items[:index]:
                raise ValueError(f"lists {self.item.show(entry)!r} twice")
        return tuple(items)

    def from_flag(self, value: Any) -> object:
        return [self.item.from_flag(part.strip()) for text in value for part in text.split(",")]

    def show(self, value: Any) -> str:
        return ", ".join(self.item.show(entry) for entry in value)

    def metavar(self, default: str) -> str | None:
        return self.item.metavar(default)


@dataclass(frozen=True)
class FlagList(List):
    """A list of names stored as one :class:`enum.Flag` mask; the order carries no meaning."""

    def parse(self, value: object) -> Any:
        return functools.reduce(operator.or_, super().parse(value))

    def show(self, value: Any) -> str:
        return super().show(tuple(value))


@dataclass(frozen=True)
class Switch(Bool):
    """true or false, but the flag only turns it on (``--name``): for settings that are off unless asked."""

    action: ClassVar[str | type[argparse.Action]] = "store_true"


def path(text: str) -> Path:
    """A file name that must not be empty."""
    if not text:
        raise ValueError("must not be empty")
    return Path(text)


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting: its key in the file (dotted for a [section]), its flag, kind, help and metavar."""

    key: str
    flag: str
    kind: Kind
    help: str
    metavar: str = "VALUE"
    show_default: bool = True
    aliases: tuple[str, ...] = ()
    """More option strings for the flag (such as ``-v``)."""

    @property
    def dest(self) -> str:
        """The argparse destination: the key as an identifier."""
        return self.key.replace(".", "_").replace("-", "_")


Groups = tuple[tuple[str, tuple[Setting, ...]], ...]
"""Settings in ``--help`` groups: (title, settings)."""


class SettingsTable:
    """Every setting of one role; loads files, adds flags and reads them, all by the same declarations."""

    def __init__(self, groups: Groups) -> None:
        self.groups = groups
        self.by_key = {setting.key: setting for _, settings in groups for setting in settings}
        self.sections = frozenset(key.partition(".")[0] for key in self.by_key if "." in key)

    def load(self, path: Path) -> dict[str, Any]:
        """Read and check a TOML file: returns checked values by dotted key (``"pool.network"``).

        Relative paths in the file are taken relative to the file's directory, so a configuration
        directory can be moved as a whole. Raises :class:`ConfigError` naming the file and the key.
        """
        return self.check(read_toml(path), str(path), path.parent)

    def check(self, data: Mapping[str, Any], where: str, directory: Path) -> dict[str, Any]:
        """Check the TOML ``data`` found in ``where`` (a file, or a table in one), whose relative paths are
        relative to ``directory``."""
        values: dict[str, Any] = {}
        for key, value in self._flatten(data):
            setting = self.by_key.get(key)
            if setting is None:
                raise ConfigError(f"{where}: {self.unknown(key, value)}")
            try:
                result = setting.kind.parse(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {key}: {exc}") from None
            values[key] = setting.kind.anchored(result, directory)
        return values

    def _flatten(self, data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
        for name, value in data.items():
            key = prefix + name
            # A table under a known setting's key is a wrong value for it, not a section.
            if isinstance(value, dict) and key not in self.by_key:
                yield from self._flatten(value, key + ".")
            else:
                yield key, value

    def unknown(self, key: str, value: object) -> str:
        """The message for a key that is no setting, with the likeliest one meant."""
        if key in self.sections:
            return f"{key}: expected a table ([{key}] section), not {value!r}"
        leaf = key.rpartition(".")[2]
        # A near spelling first; else the same name in another section (a key written outside its [section]).
        matches = difflib.get_close_matches(key, self.by_key, n=1) or [
            k for k in self.by_key if k.rpartition(".")[2] == leaf
        ]
        hint = f" (did you mean '{matches[0]}'?)" if matches else ""
        return f"unknown setting '{key}'{hint}"

    def add_arguments(self, parser: argparse.ArgumentParser, defaults: Callable[[str], Any]) -> None:
        """Add one flag per setting, in its group; every flag defaults to ``None`` (= not given).
        ``defaults(key)`` is the value a setting has when nothing sets it (shown in the help)."""
        for title, settings in self.groups:
            group = parser.add_argument_group(title)
            for setting in settings:
                default = defaults(setting.key)
                shown = setting.kind.show(default) if default is not None and setting.show_default else ""
                where = f"{setting.key}; default: {shown}" if shown else setting.key
                options: dict[str, Any] = {}
                metavar = setting.kind.metavar(setting.metavar)
                if metavar is not None:
                    options["metavar"] = metavar
                group.add_argument(
                    *setting.aliases,
                    setting.flag,
                    dest=setting.dest,
                    action=setting.kind.action,
                    default=None,
                    # argparse expands %-formats in help texts.
                    help=f"{setting.help} [{where}]".replace("%", "%%"),
                    **options,
                )

    def from_args(self, args: argparse.Namespace, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (from a file) with every flag that was given put over them, checked."""
        merged = dict(values)
        for setting in self.by_key.values():
            raw = getattr(args, setting.dest, None)
            if raw is None:
                continue
            try:
                merged[setting.key] = setting.kind.parse(setting.kind.from_flag(raw))
            except ValueError as exc:
                raise ConfigError(f"{setting.flag}: {exc}") from None
        return merged


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a file that cannot be read or parsed is one :class:`ConfigError`."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
