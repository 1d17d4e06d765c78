"""``pysstp pki``: a small certificate authority in one directory, for trying certificate logins.

Files in the directory: ``ca.pem`` and ``ca.key`` (the CA), ``crl.pem`` (what it revoked), and one
``NAME.pem``/``NAME.key`` pair per server or user certificate. Keys are written readable by their owner
only, and nothing is ever overwritten.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from pysstp.aaa.pki import (
    CRL_DAYS,
    SERVER_DAYS,
    USER_DAYS,
    Issued,
    issue_server,
    issue_user,
    make_ca,
    make_crl,
    read_certificates,
    read_crls,
    read_private_key,
)
from pysstp.errors import ConfigError
from pysstp.prompt import read_password_file

DEFAULT_DIRECTORY = Path("/etc/pysstp/pki")

EXAMPLES = f"""\
examples (EAP-TLS in five minutes):
  pysstp pki init --dir ./pki                          # ca.pem, ca.key, crl.pem
  pysstp pki server vpn.example.com --dir ./pki        # vpn.example.com.pem/.key for the server
  pysstp pki user alice --dir ./pki                    # alice.pem/.key, CN=alice
  pysstp pki user bob --email bob@example.com --passphrase-file bob.pass --dir ./pki
  pysstp pki revoke bob --dir ./pki                    # adds bob to crl.pem
  pysstp pki crl --dir ./pki                           # re-signs crl.pem (do it before it expires)

Give the server ca.pem (and crl.pem) under [eap_tls], the user NAME.pem, NAME.key and ca.pem:
  pysstp connect vpn.example.com --auth eap-tls --cert alice.pem --key alice.key --eap-ca ca.pem
The directory defaults to {DEFAULT_DIRECTORY}.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pysstp pki`` and its actions."""
    parser = subparsers.add_parser(
        "pki",
        help="a small CA: certificates for EAP-TLS and HTTPS client certificates",
        description="Create a test CA, server and user certificates, and revoke them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        metavar="DIR",
        type=Path,
        default=DEFAULT_DIRECTORY,
        help=f"CA directory ({DEFAULT_DIRECTORY})",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="action", required=True)

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        return actions.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    init = action("init", "Create the CA (ca.pem, ca.key) and an empty CRL (crl.pem).")
    init.add_argument("--name", default="pysstp CA", help="the CA's name (default: pysstp CA)")
    init.set_defaults(func=run_init)

    server = action("server", "Issue a server certificate (for the HTTPS listener or EAP-TLS).")
    server.add_argument("name", metavar="NAME", help="host name or IP address clients dial")
    server.add_argument("--days", type=int, default=SERVER_DAYS, help=f"lifetime (default {SERVER_DAYS})")
    server.set_defaults(func=run_server)

    user = action("user", "Issue a user certificate (CN = the user name).")
    user.add_argument("name", metavar="NAME", help="user name, as the server will see it")
    user.add_argument("--email", help="also put this e-mail address in the certificate (SAN)")
    user.add_argument("--upn", help="also put this Windows user principal name in the certificate (SAN)")
    user.add_argument("--days", type=int, default=USER_DAYS, help=f"lifetime (default {USER_DAYS})")
    user.add_argument(
        "--passphrase-file", metavar="FILE", help="encrypt the key with the first line of FILE (- for stdin)"
    )
    user.set_defaults(func=run_user)

    revoke = action("revoke", "Revoke a certificate issued here, and re-sign crl.pem.")
    revoke.add_argument("name", metavar="NAME", help="the NAME it was issued under")
    revoke.set_defaults(func=run_revoke)

    action("crl", f"Re-sign crl.pem for another {CRL_DAYS} days.").set_defaults(func=run_crl)


def run_init(args: argparse.Namespace) -> int:
    """``pysstp pki init``."""
    directory: Path = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(args.name)
    _write_pair(directory, "ca", ca)
    _write(directory / "crl.pem", make_crl(ca).public_bytes(serialization.Encoding.PEM))
    print(f"created CA '{args.name}' in {directory}: ca.pem (give to servers and clients), ca.key (secret)")
    return 0


def run_server(args: argparse.Namespace) -> int:
    """``pysstp pki server``."""
    issued = issue_server(_load_ca(args.dir), args.name, days=args.days)
    _write_pair(args.dir, args.name, issued)
    print(f"issued server certificate {args.dir / args.name}.pem (key {args.name}.key)")
    return 0


def run_user(args: argparse.Namespace) -> int:
    """``pysstp pki user``."""
    passphrase = None
    if args.passphrase_file is not None:
        passphrase = read_password_file(args.passphrase_file).encode("utf-8")
        if not passphrase:
            raise ConfigError(f"{args.passphrase_file}: the passphrase is empty")
    issued = issue_user(_load_ca(args.dir), args.name, email=args.email, upn=args.upn, days=args.days)
    _write_pair(args.dir, args.name, issued, passphrase)
    print(f"issued user certificate {args.dir / args.name}.pem (key {args.name}.key)")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    """``pysstp pki revoke``."""
    [certificate, *_] = read_certificates(args.dir / f"{args.name}.pem")
    serials = _revoked(args.dir)
    if certificate.serial_number in serials:
        raise ConfigError(f"{args.name}.pem is already revoked")
    _write_crl(args.dir, [*serials, certificate.serial_number])
    print(f"revoked {args.name}.pem; give servers the new {args.dir / 'crl.pem'}")
    return 0


def run_crl(args: argparse.Namespace) -> int:
    """``pysstp pki crl``."""
    _write_crl(args.dir, _revoked(args.dir))
    print(f"re-signed {args.dir / 'crl.pem'} for {CRL_DAYS} days")
    return 0


def _load_ca(directory: Path) -> Issued:
    certificate_path, key_path = directory / "ca.pem", directory / "ca.key"
    if not certificate_path.exists():
        raise ConfigError(f"{directory}: no CA here; create one with `pysstp pki init --dir {directory}`")
    [certificate, *_] = read_certificates(certificate_path)
    return Issued(certificate, read_private_key(key_path))


def _revoked(directory: Path) -> list[int]:
    crl_path = directory / "crl.pem"
    if not crl_path.exists():
        return []
    return [entry.serial_number for crl in read_crls(crl_path) for entry in crl]


def _write_crl(directory: Path, serials: list[int]) -> None:
    crl = make_crl(_load_ca(directory), serials)
    path = directory / "crl.pem"
    temporary = path.with_suffix(".pem.new")
    temporary.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    temporary.replace(path)


def _write_pair(directory: Path, name: str, issued: Issued, passphrase: bytes | None = None) -> None:
    certificate, key = directory / f"{name}.pem", directory / f"{name}.key"
    for path in (certificate, key):
        if path.exists():
            raise ConfigError(f"{path} exists; pysstp pki never overwrites a file")
    _write(key, issued.key_pem(passphrase), private=True)
    _write(certificate, issued.certificate_pem())


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    except FileExistsError:
        raise ConfigError(f"{path} exists; pysstp pki never overwrites a file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(data)
