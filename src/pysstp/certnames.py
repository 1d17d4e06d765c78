"""Whether a certificate is for a name (RFC 6125): shared by the HTTPS checks and EAP-TLS, pure."""

from __future__ import annotations

from ipaddress import ip_address

from cryptography import x509


def subject_alt_names(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses (as text) of the subjectAltName; empty without one."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return names.get_values_for_type(x509.DNSName), [
        str(a) for a in names.get_values_for_type(x509.IPAddress)
    ]


def certificate_matches(certificate: x509.Certificate, name: str) -> bool:
    """Whether the subjectAltName covers ``name``: a wildcard only as the whole left-most label of a name
    with at least three labels, IP addresses only against IP entries, the subject CN never."""
    dns_names, addresses = subject_alt_names(certificate)
    try:
        address = ip_address(name)
    except ValueError:
        pass
    else:
        return str(address) in addresses
    wanted = name.lower().rstrip(".").split(".")
    for pattern in dns_names:
        labels = pattern.lower().rstrip(".").split(".")
        if len(labels) != len(wanted):
            continue
        if labels == wanted or (labels[0] == "*" and len(labels) > 2 and labels[1:] == wanted[1:]):
            return True
    return False
