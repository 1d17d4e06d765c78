"""What the tests (and `make bench`) share: fakes, peers and harnesses, one module each.

* In memory: ``conversation`` (a client link and a server link under a fake clock), ``ppp_wire`` and
  ``auth_wire`` (byte builders for PPP and auth packets), ``certlab`` (certificates for EAP-TLS and HTTPS),
  ``softether_like`` (a scripted SoftEther-like server written from recorded bytes), ``hdlc_ppp``.
* Over loopback TLS: ``loopback`` (the real asyncio server and client with a TUN stand-in).
* In network namespaces (root): ``namespaces`` (namespaces joined by veth, settled before use, always
  removed), ``server_process`` and ``connect_process`` (the real ``pysstp`` commands), ``tunnel_client``
  (a minimal tunnel client run as a script).
* Real third-party peers: ``interop_sstpc``, ``softether``, ``interop_sorz`` with ``pppd_standin``;
  RADIUS servers ``freeradius`` and ``hostapd`` (its EAP server: PEAP with crypto binding), with
  ``radius_eap`` driving an EAP peer through a RADIUS backend.

``tests/`` is on the import path (pyproject's ``pythonpath``; ``benchmarks/__init__.py`` for the benchmark),
so a test imports them as ``from helpers.namespaces import Namespace``.
"""
