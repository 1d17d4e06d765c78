"""A minimal RADIUS server (RFC 2865, RFC 3579) in front of :class:`~helpers.eap_far_end.EapFarEnd`:
pysstp's own local EAP server, for RADIUS clients that test EAP peers against it (wpa_supplicant's
``eapol_test``). One thread, one UDP socket on 127.0.0.1; Access-Challenge with the next EAP Request and a
State, Access-Accept with EAP-Success and the HLAK as MS-MPPE-Recv-Key (what ``eapol_test`` compares with
its own MSK[0:32]), or Access-Reject with EAP-Failure.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

from pyrad import packet as radius_packet

from pysstp.aaa.radius.dictionary import radius_dictionary
from pysstp.aaa.radius.eap_message import join_eap_message, split_eap_message
from pysstp.ppp.auth.verification import EapProof, Verification
from pysstp.ppp.constants import AuthMethod

from helpers.eap_far_end import EapFarEnd

_MPPE_KEY_SIZE = 32


class EapRadiusServer:
    """Answers Access-Requests on ``127.0.0.1:port`` until closed (use it as a context manager)."""

    def __init__(self, far_end: EapFarEnd, secret: bytes) -> None:
        self.far_end = far_end
        self.secret = secret
        self.dictionary = radius_dictionary()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port: int = self.socket.getsockname()[1]
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> EapRadiusServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.socket.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                self.socket.sendto(self._answer(data), peer)
            except Exception as exc:
                self.errors.append(exc)

    def _answer(self, data: bytes) -> bytes:
        request = radius_packet.AuthPacket(packet=data, secret=self.secret, dict=self.dictionary)
        user = str(request["User-Name"][0]) if "User-Name" in request else ""
        eap = join_eap_message(request["EAP-Message"])
        verdict = self.far_end.check(Verification(AuthMethod.PEAP, user, EapProof(eap)))
        reply = request.CreateReply()
        if verdict.more:
            reply.code = radius_packet.AccessChallenge
            reply["State"] = b"pysstp-eap"
        elif verdict.success:
            reply.code = radius_packet.AccessAccept
            reply["MS-MPPE-Recv-Key"] = verdict.hlak[:_MPPE_KEY_SIZE]
            reply["MS-MPPE-Send-Key"] = bytes(_MPPE_KEY_SIZE)
        else:
            reply.code = radius_packet.AccessReject
        assert verdict.eap is not None
        reply["EAP-Message"] = split_eap_message(verdict.eap)
        reply.add_message_authenticator()
        return bytes(reply.ReplyPacket())
