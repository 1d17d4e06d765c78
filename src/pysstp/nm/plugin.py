"""The files that make NetworkManager know the plugin: the ``.name`` file and the D-Bus policy.

``pysstp nm install`` writes them (rather than the wheel's data files) because the ``.name`` file must
name the service program by its absolute path, which depends on where pysstp was installed (a venv, pipx,
/usr/local), and a wheel cannot put files under /usr/lib or /etc. NetworkManager reads ``.name`` files from
``/usr/lib/NetworkManager/VPN`` and ``/etc/NetworkManager/VPN`` and notices new ones while running; the
system bus reloads its policy directory by itself.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pysstp.errors import SystemSetupError
from pysstp.nm.vpn_setting import SERVICE_TYPE

NAME_DIR = Path("/usr/lib/NetworkManager/VPN")
POLICY_DIR = Path("/etc/dbus-1/system.d")
NAME_FILE = "nm-pysstp-service.name"
POLICY_FILE = "nm-pysstp-service.conf"
PROGRAM = "pysstp-nm-service"


def service_program() -> Path:
    """The installed ``pysstp-nm-service`` (next to this Python first, so a venv's own is found)."""
    beside = Path(sys.executable).parent / PROGRAM
    if beside.is_file():
        return beside
    found = shutil.which(PROGRAM)
    if found is None:
        raise SystemSetupError(f"{PROGRAM} is not installed; reinstall pysstp (pip install 'pysstp[nm]')")
    return Path(found)


def name_file(program: Path) -> str:
    """The ``.name`` file (format: NetworkManager's nm-vpn-plugin-info): no editor plugin, so the
    connection is made with nmcli or ``pysstp nm import``, not in a GUI dialog."""
    return (
        "[VPN Connection]\n"
        "name=pysstp\n"
        f"service={SERVICE_TYPE}\n"
        f"program={program}\n"
        "supports-multiple-connections=false\n"
        "\n"
        "[GNOME]\n"
        "supports-external-ui-mode=false\n"
    )


def dbus_policy() -> str:
    """The system bus policy: only root owns the service's name and talks to it (NetworkManager does)."""
    return f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own_prefix="{SERVICE_TYPE}"/>
    <allow send_destination="{SERVICE_TYPE}"/>
  </policy>
  <policy context="default">
    <deny own_prefix="{SERVICE_TYPE}"/>
    <deny send_destination="{SERVICE_TYPE}"/>
  </policy>
</busconfig>
"""


def install(name_dir: Path, policy_dir: Path | None, program: Path) -> list[Path]:
    """Write the ``.name`` file (and the policy, unless ``policy_dir`` is ``None``); the paths written."""
    files = [(name_dir / NAME_FILE, name_file(program))]
    if policy_dir is not None:
        files.append((policy_dir / POLICY_FILE, dbus_policy()))
    for file, text in files:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text)
            # NetworkManager ignores a .name file that others can write.
            file.chmod(0o644)
        except OSError as exc:
            raise SystemSetupError(f"cannot write {file}: {exc.strerror}; run it as root") from None
    return [file for file, _ in files]


def uninstall(name_dir: Path, policy_dir: Path | None) -> list[Path]:
    """Remove what :func:`install` wrote; the paths removed."""
    removed = []
    for file in (name_dir / NAME_FILE, *((policy_dir / POLICY_FILE,) if policy_dir else ())):
        try:
            file.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SystemSetupError(f"cannot remove {file}: {exc.strerror}; run it as root") from None
        removed.append(file)
    return removed
