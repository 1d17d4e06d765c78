"""pysstp.net parts that need no root: name checks, rule rendering, the undo log, files, sysctl paths.

The same code against the real kernel, in network namespaces, is in test_net_netns.py.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path

import pytest

from pysstp.errors import SystemSetupError
from pysstp.net import nat, sysctl
from pysstp.net.changes import NetworkChanges
from pysstp.net.files import FileBackup, write_file
from pysstp.net.ifname import check_ifname
from pysstp.net.iproute import make_address, make_route
from pysstp.net.nat import make_nat_rules, remove_nat
from pysstp.net.sysctl import read_sysctl, sysctl_path
from pysstp.net.tun import TunDevice

# -- interface names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sstp0", "a", "x" * 15, "eth0.100", "tün0"])
def test_valid_names(name: str) -> None:
    assert check_ifname(name) == name.encode()


@pytest.mark.parametrize(
    ("name", "template", "complaint"),
    [
        ("", False, "empty"),
        ("x" * 16, False, "too long: at most 15 bytes"),
        ("ü" * 8, False, "too long"),  # 16 bytes in UTF-8
        ("a/b", False, "invalid"),
        ("a:b", False, "invalid"),
        ("a b", False, "invalid"),
        ("..", False, "invalid"),
        ("sstp%d", False, "'%' is only allowed once"),
        ("s%d%d", True, "'%' is only allowed once"),
        ("s%s", True, "'%' is only allowed once"),
    ],
)
def test_invalid_names(name: str, template: bool, complaint: str) -> None:
    with pytest.raises(SystemSetupError, match=complaint):
        check_ifname(name, template=template)


def test_template_name_allowed() -> None:
    assert check_ifname("sstp%d", template=True) == b"sstp%d"


def test_tun_open_checks_the_name_before_touching_the_kernel() -> None:
    with pytest.raises(SystemSetupError, match="'sstp-much-too-long' is too long"):
        TunDevice.open("sstp-much-too-long")


# -- routes and addresses (values only) ---------------------------------------------------------------


def test_route_from_strings() -> None:
    route = make_route("10.0.0.0/8", ifname="sstp0", gateway="10.1.0.1", metric=5)
    assert route.destination == ip_network("10.0.0.0/8")
    assert route.gateway == ip_address("10.1.0.1")
    assert str(route) == "10.0.0.0/8 via 10.1.0.1 dev sstp0 metric 5"


def test_bare_address_is_a_host_route() -> None:
    assert make_route("192.0.2.7", gateway="10.0.0.1").destination == ip_network("192.0.2.7/32")
    assert make_route("2001:db8::7", ifname="x").destination == ip_network("2001:db8::7/128")


def test_route_needs_device_or_gateway() -> None:
    with pytest.raises(ValueError, match="device, a gateway or both"):
        make_route("10.0.0.0/8")


def test_address_forms() -> None:
    assert str(make_address("sstp0", "10.0.0.1/24")) == "10.0.0.1/24 dev sstp0"
    ptp = make_address("sstp0", "10.0.0.1", peer="10.0.0.2")
    assert ptp.address == ip_interface("10.0.0.1/32")
    assert str(ptp) == "10.0.0.1 peer 10.0.0.2/32 dev sstp0"


# -- nftables rules -----------------------------------------------------------------------------------


def test_nat_rules_masquerade_and_route_mtu_clamp() -> None:
    text = make_nat_rules("sstp0", source="10.0.0.0/24", egress="eth0").render()
    assert text == (
        "table inet pysstp-sstp0\n"
        "delete table inet pysstp-sstp0\n"
        "table inet pysstp-sstp0 {\n"
        "  chain forward {\n"
        "    type filter hook forward priority mangle; policy accept;\n"
        '    iifname "sstp0" tcp flags syn tcp option maxseg size set rt mtu\n'
        '    oifname "sstp0" tcp flags syn tcp option maxseg size set rt mtu\n'
        "  }\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        '    ip saddr 10.0.0.0/24 oifname "eth0" masquerade\n'
        "  }\n"
        "}\n"
    )


def test_nat_rules_fixed_mss_only_lowers() -> None:
    text = make_nat_rules("sstp0", mss=1360).render()
    assert (
        'iifname "sstp0" tcp flags syn tcp option maxseg size > 1360 tcp option maxseg size set 1360' in text
    )
    assert "postrouting" not in text


def test_nat_rules_without_egress_masquerade_out_of_anything_but_the_tun() -> None:
    text = make_nat_rules("sstp0", source="fd00::/64", mss=None).render()
    assert 'ip6 saddr fd00::/64 oifname != "sstp0" masquerade' in text
    assert "forward" not in text


@pytest.mark.parametrize(
    ("tun", "table"),
    [("sstp0", "pysstp-sstp0"), ("vpn-a.1", "pysstp-vpn-a.1"), ("vpn@1+", "pysstp-vpn_401_2b")],
)
def test_each_tun_gets_a_table_of_its_own(tun: str, table: str) -> None:
    rules = make_nat_rules(tun)
    assert rules.table == table
    assert rules.render().startswith(f"table inet {table}\ndelete table inet {table}\n")


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"tun": 'x"; drop'}, "invalid"),
        ({"tun": "sstp0", "egress": "a b"}, "invalid"),
        ({"tun": "sstp0", "mss": 100}, "MSS 100 is out of range"),
    ],
)
def test_nat_rules_refuse_bad_values(kwargs: dict[str, object], complaint: str) -> None:
    with pytest.raises(SystemSetupError, match=complaint):
        make_nat_rules(**kwargs)  # type: ignore[arg-type]


def test_missing_nft_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nat, "NFT", "pysstp-no-such-nft")
    with pytest.raises(SystemSetupError, match=r"the nft command is missing; install nftables") as caught:
        remove_nat("pysstp-sstp0")
    assert "\n" not in str(caught.value)


def test_remove_nat_touches_only_tables_of_pysstp() -> None:
    with pytest.raises(SystemSetupError, match="invalid nftables table name"):
        remove_nat("filter")


# -- sysctl -------------------------------------------------------------------------------------------


def test_sysctl_paths() -> None:
    assert sysctl_path("net.ipv4.ip_forward") == Path("/proc/sys/net/ipv4/ip_forward")
    assert sysctl_path("net/ipv4/conf/eth0.100/forwarding") == Path(
        "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
    )
    for bad in ("net..ip_forward", "net/../../etc/passwd", ""):
        with pytest.raises(SystemSetupError, match="invalid sysctl key"):
            sysctl_path(bad)


def test_sysctl_read_and_unknown_key() -> None:
    assert read_sysctl("kernel.ostype") == "Linux"
    with pytest.raises(SystemSetupError, match=r"cannot read sysctl net.pysstp.nothing: no such key"):
        read_sysctl("net.pysstp.nothing")


@pytest.fixture
def fake_proc_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sysctl, "PROC_SYS", tmp_path)
    (tmp_path / "net" / "ipv4").mkdir(parents=True)
    (tmp_path / "net" / "ipv4" / "ip_forward").write_text("0\n")
    return tmp_path / "net" / "ipv4" / "ip_forward"


def test_set_sysctl_is_undone(fake_proc_sys: Path) -> None:
    with NetworkChanges() as changes:
        changes.set_sysctl("net.ipv4.ip_forward", 1)
        assert fake_proc_sys.read_text() == "1\n"
        assert changes.pending == ["sysctl net.ipv4.ip_forward=1 (was 0)"]
    assert fake_proc_sys.read_text() == "0\n"


def test_set_sysctl_to_its_current_value_records_nothing(fake_proc_sys: Path) -> None:
    changes = NetworkChanges()
    changes.set_sysctl("net.ipv4.ip_forward", "0")
    assert changes.pending == []


# -- the undo log -------------------------------------------------------------------------------------


def test_undo_runs_newest_first_once() -> None:
    done: list[str] = []
    changes = NetworkChanges()
    for name in ("tun", "address", "route"):
        changes.record(name, functools.partial(done.append, name))
    assert changes.pending == ["route", "address", "tun"]
    changes.undo()
    changes.undo()
    assert done == ["route", "address", "tun"]
    assert changes.pending == []


def test_undo_carries_on_past_a_failing_step(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    def broken() -> None:
        raise SystemSetupError("cannot delete route 10.0.0.0/8 dev sstp0: no such route")

    changes = NetworkChanges()
    changes.record("first", lambda: done.append("first"))
    changes.record("broken", broken)
    changes.record("last", lambda: done.append("last"))
    with caplog.at_level(logging.WARNING, logger="pysstp.net.changes"):
        changes.undo()
    assert done == ["last", "first"]
    assert "could not undo broken: cannot delete route" in caplog.text


def test_leaving_the_block_by_an_exception_undoes() -> None:
    done: list[str] = []
    with pytest.raises(RuntimeError), NetworkChanges() as changes:
        changes.record("one", lambda: done.append("one"))
        raise RuntimeError("setup failed half-way")
    assert done == ["one"]


def test_undo_reentered_from_a_step_runs_each_step_once() -> None:
    """A step that itself calls undo() (a signal handler during teardown) does not run twice."""
    calls: list[str] = []
    changes = NetworkChanges()

    def reenter() -> None:
        calls.append("reenter")
        changes.undo()

    changes.record("outer", functools.partial(calls.append, "outer"))
    changes.record("reenter", reenter)
    changes.undo()
    assert calls == ["reenter", "outer"]


# -- replaced files -----------------------------------------------------------------------------------


def test_replace_file_restores_content_mode_and_owner(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.53\n")
    path.chmod(0o640)
    with NetworkChanges() as changes:
        changes.replace_file(path, "nameserver 10.0.0.1\n")
        assert path.read_text() == "nameserver 10.0.0.1\n"
        assert path.stat().st_mode & 0o777 == 0o644
    assert path.read_text() == "nameserver 192.0.2.53\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resolv.conf"]


def test_replace_file_that_did_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    with NetworkChanges() as changes:
        changes.replace_file(path, b"nameserver 10.0.0.1\n")
        assert path.read_bytes() == b"nameserver 10.0.0.1\n"
    assert not path.exists()


def test_replace_symlink_leaves_its_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "stub-resolv.conf"
    target.write_text("nameserver 127.0.0.53\n")
    path = tmp_path / "resolv.conf"
    path.symlink_to("stub-resolv.conf")
    with NetworkChanges() as changes:
        changes.replace_file(path, "nameserver 10.0.0.1\n")
        assert not path.is_symlink()
        assert target.read_text() == "nameserver 127.0.0.53\n"
    assert os.readlink(path) == "stub-resolv.conf"
    assert path.read_text() == "nameserver 127.0.0.53\n"


def test_bind_mounted_file_is_rewritten_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker bind-mounts /etc/resolv.conf: renaming over it fails with EBUSY."""
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.53\n" * 3)
    inode = path.stat().st_ino

    def busy(src: object, dst: object) -> None:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))

    monkeypatch.setattr(os, "replace", busy)
    write_file(path, b"nameserver 10.0.0.1\n")
    assert path.read_bytes() == b"nameserver 10.0.0.1\n"
    assert path.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resolv.conf"]


def test_unwritable_place_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(SystemSetupError, match=r"cannot write .*/missing-dir/resolv.conf"):
        write_file(tmp_path / "missing-dir" / "resolv.conf", b"x")
    assert FileBackup.take(tmp_path / "missing-dir" / "resolv.conf").kind.value == "missing"
