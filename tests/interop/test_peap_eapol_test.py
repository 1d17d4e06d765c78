"""pysstp's PEAP server against wpa_supplicant's PEAP peer (Debian's ``eapol_test``, the RADIUS-client
build of wpa_supplicant), through a minimal RADIUS server in front of pysstp's local EAP server.

wpa_supplicant is the independent check of our server's side: its PEAPv0 peer, set to require the
crypto binding, checks our Crypto-Binding TLV and answers with its own, which we check; ``eapol_test``
then compares its MSK[0:32] with the MS-MPPE-Recv-Key we send, which is our HLAK ("MPPE keys OK").
No root needed: everything runs on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pysstp.aaa.local import StaticCredentials
from pysstp.ppp.auth.peap import PeapServerSettings
from pysstp.ppp.constants import AuthMethod

from helpers import certlab
from helpers.eap_far_end import EapFarEnd
from helpers.eap_radius_server import EapRadiusServer

EAPOL_TEST = "eapol_test"
SECRET = b"pysstp-eapol-secret"


def eapol_test(tmp_path: Path, password: str) -> tuple[subprocess.CompletedProcess[str], EapFarEnd]:
    """One PEAP login of ``alice`` with ``password``, wpa_supplicant requiring the crypto binding."""
    if shutil.which(EAPOL_TEST) is None:
        pytest.skip("needs wpa_supplicant's eapol_test ('make system-deps' installs Debian's eapoltest)")
    lab = certlab.lab()
    ca = tmp_path / "ca.pem"
    ca.write_bytes(lab.ca.certificate_pem())
    config = tmp_path / "eapol_test.conf"
    config.write_text(
        "network={\n"
        "    key_mgmt=WPA-EAP\n"
        "    eap=PEAP\n"
        '    identity="alice"\n'
        f'    password="{password}"\n'
        f'    ca_cert="{ca}"\n'
        '    domain_match="vpn.example.test"\n'
        '    phase1="peapver=0 crypto_binding=2"\n'
        '    phase2="auth=MSCHAPV2"\n'
        "}\n"
    )
    far_end = EapFarEnd(
        StaticCredentials({"alice": "alicepw"}),
        methods=(AuthMethod.PEAP,),
        peap=PeapServerSettings(certlab.identity(lab.server)),
    )
    with EapRadiusServer(far_end, SECRET) as server:
        result = subprocess.run(
            [
                EAPOL_TEST, "-c", str(config), "-a", "127.0.0.1", "-p", str(server.port),
                "-s", SECRET.decode(), "-t", "20",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert not server.errors, server.errors
    return result, far_end


def test_wpa_supplicant_peap_with_crypto_binding_against_our_server(tmp_path: Path) -> None:
    result, _far_end = eapol_test(tmp_path, "alicepw")
    assert result.returncode == 0, result.stdout[-5000:]
    assert "EAP-PEAP: Require cryptobinding" in result.stdout
    assert "EAP-PEAP: Valid cryptobinding TLV received" in result.stdout  # ours, checked by wpa_supplicant
    assert "MPPE keys OK: 1  mismatch: 0" in result.stdout  # its MSK[0:32] is our HLAK
    assert "SUCCESS" in result.stdout


def test_wpa_supplicant_wrong_password_is_refused(tmp_path: Path) -> None:
    result, far_end = eapol_test(tmp_path, "wrong")
    assert result.returncode != 0
    assert "EAP-MSCHAPV2: failure message: 'Access denied' (retry not allowed, error 691)" in result.stdout
    assert "EAP-TLV: Received TLVs - hexdump(len=6): 80 03 00 02 00 02" in result.stdout  # Result: Failure
    assert "CTRL-EVENT-EAP-FAILURE" in result.stdout
    assert far_end.seen  # the login went through our EAP server
