"""Network interface names as the kernel accepts them."""

from pysstp.errors import SystemSetupError

# IFNAMSIZ is 16 bytes including the terminating NUL.
MAX_IFNAME_BYTES = 15


def check_ifname(name: str, *, template: bool = False) -> bytes:
    """Return ``name`` encoded for the kernel, or raise :class:`SystemSetupError` saying what is wrong.

    The rules are the kernel's ``dev_valid_name``. With ``template`` the name may contain one ``%d``,
    which the kernel replaces with the first free number ("sstp%d" becomes "sstp0", "sstp1", ...).
    """
    raw = name.encode()
    if not raw:
        raise SystemSetupError("network interface name is empty")
    if len(raw) > MAX_IFNAME_BYTES:
        raise SystemSetupError(
            f"network interface name {name!r} is too long: at most {MAX_IFNAME_BYTES} bytes"
        )
    if name in (".", "..") or any(ch in "/:" or ch.isspace() for ch in name):
        raise SystemSetupError(
            f"network interface name {name!r} is invalid: no '/', ':', spaces, and not '.' or '..'"
        )
    if "%" in name and not (template and name.count("%") == 1 and "%d" in name):
        raise SystemSetupError(
            f"network interface name {name!r} is invalid: '%' is only allowed once, as '%d'"
        )
    return raw
