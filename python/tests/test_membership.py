"""hyperfabric.join: nodes of this process join through a real etcd (started here on free
ports; skipped, saying so, without the etcd binary), from keywords or the fabric file's
[membership]; a refused user raises CredentialsError."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Iterator

import pytest

import hyperfabric
from hyperfabric import CredentialsError, HyperFabricError, InvalidArgument

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, path: str, body: dict, token: str = "") -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", token)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


class Etcd:
    def __init__(self, tmp: str) -> None:
        self.port, peer = _free_port(), _free_port()
        client, peers = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{peer}"
        self.log = open(os.path.join(tmp, "etcd.log"), "wb")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "hf-py", "--data-dir", os.path.join(tmp, "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peers, "--initial-advertise-peer-urls", peers,
             "--initial-cluster", f"hf-py={peers}"], stdout=self.log, stderr=self.log)
        until = time.monotonic() + 30
        while True:  # until a lease can be granted (etcd elected itself)
            try:
                _post(self.port, "/v3/lease/grant", {"TTL": 5})
                return
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < until and self.proc.poll() is None, "etcd did not start"
                time.sleep(0.1)

    def url(self, prefix: str) -> str:
        return f"etcd://127.0.0.1:{self.port}/{prefix}"

    def enable_auth(self, password: str) -> None:
        _post(self.port, "/v3/auth/user/add", {"name": "root", "password": password})
        _post(self.port, "/v3/auth/user/grant", {"user": "root", "role": "root"})
        _post(self.port, "/v3/auth/enable", {})

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def etcd(tmp_path) -> Iterator[Etcd]:
    if not os.access(ETCD, os.X_OK):
        pytest.skip(f"no etcd binary at {ETCD} (Debian: apt install etcd-server)")
    e = Etcd(str(tmp_path))
    try:
        yield e
    finally:
        e.stop()


def _fabric(tmp_path, node: str, membership: str) -> str:
    path = tmp_path / f"{node}.toml"
    path.write_text(f'[fabric]\nname = "job"\n\n[[nodes]]\nid = "{node}"\n'
                    f'hardware = "cpu-cluster"\n\n[membership]\n{membership}')
    return str(path)


def _wait_known(m: hyperfabric.Member, nodes) -> None:
    until = time.monotonic() + 60
    while m.known_nodes() != sorted(nodes):
        assert time.monotonic() < until, f"{m.node_id} knows {m.known_nodes()}, not {sorted(nodes)}"
        time.sleep(0.05)


def test_two_nodes_join_by_keyword_and_by_the_fabric_file_and_exchange_bytes(etcd, tmp_path):
    url = etcd.url("hf/py")
    with hyperfabric.join(node="a", membership=url, lease=2) as a:
        b = hyperfabric.join(_fabric(tmp_path, "b", f'url = "{url}"\n'), node="b",
                             world_size=2, lease=2)
        try:
            _wait_known(a, ["a", "b"])
            _wait_known(b, ["a", "b"])
            payload = os.urandom(200_000)
            assert a.send("b", payload)["bytes"] == len(payload)
            msg = b.recv(timeout=30)
            assert msg.source == "a" and bytes(msg) == payload
            info = b.membership()
            assert info["etcd"]["url"] == url and info["etcd"]["tls"] is False, info
            assert info["directory"] == f"etcd 127.0.0.1:{etcd.port}/hf/py"
            knobs = {k["field"]: k for k in b.effective_config()["knobs"]}
            assert knobs["membership.url"]["source"] == "file", knobs["membership.url"]
            knobs = {k["field"]: k for k in a.effective_config()["knobs"]}
            assert knobs["membership.url"]["source"] == "api", knobs["membership.url"]
        finally:
            b.leave()
        _wait_known(a, ["a"])  # a clean leave withdraws the record at once
        with pytest.raises(hyperfabric.Shutdown):
            b.known_nodes()


def test_a_refused_user_is_a_credentials_error_and_the_right_one_joins(etcd, tmp_path, monkeypatch):
    etcd.enable_auth("s3cret-pw")
    url = etcd.url("hf/py")
    pw = tmp_path / "pw"
    pw.write_text("wrong\n")
    with pytest.raises(CredentialsError) as e:
        hyperfabric.join(node="c", membership=url, etcd_user="root", etcd_password_file=pw,
                         timeout=10)
    assert isinstance(e.value, HyperFabricError) and isinstance(e.value, PermissionError)
    assert url in e.value.service and "user `root`" in e.value.reason, e.value.fields
    assert "s3cret" not in str(e.value)
    # The right password from the environment, the user from the fabric file.
    monkeypatch.setenv("HF_ETCD_PASSWORD", "s3cret-pw")
    fabric = _fabric(tmp_path, "d", f'url = "{url}"\nuser = "root"\n')
    with hyperfabric.join(fabric, node="d", lease=2) as d:
        assert d.membership()["etcd"]["user"] == "root"
        knobs = {k["field"]: k for k in d.effective_config()["knobs"]}
        assert knobs["membership.password_env"]["value"] == "HF_ETCD_PASSWORD"
        assert "s3cret" not in json.dumps(d.effective_config())


def test_no_etcd_or_a_bad_url_is_refused_before_anything_starts(tmp_path, monkeypatch):
    for k in ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(InvalidArgument, match="membership.*no launcher"):
        hyperfabric.join(node="a")
    with pytest.raises(InvalidArgument, match="rank applies to a launcher bootstrap"):
        hyperfabric.join(node="a", membership="etcd://h:1/p", rank=1)
    with pytest.raises(InvalidArgument, match="master `h`"):
        hyperfabric.join(bootstrap="explicit", rank=0, world_size=1, master="h")
    with pytest.raises(ValueError, match="expected etcd://"):
        hyperfabric.join(node="a", membership="http://h:1/p")
    with pytest.raises(hyperfabric.ConfigError) as e:
        hyperfabric.join(_fabric(tmp_path, "a", 'url = "etcd://h:1/p"\npassword = "x"\n'), node="a")
    assert e.value.field == "membership.password"
    with pytest.raises(ValueError, match="world_size"):
        hyperfabric.join(node="a", membership="etcd://h:1/p", world_size=0)
