"""download: a local HTTP server on 127.0.0.1 serves files made here; no test touches the internet."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.datasets import download as dl


class Handler(BaseHTTPRequestHandler):
    """Serves `server.files[path]`, honouring `Range: bytes=N-` unless `server.ranges` is False."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        header = self.headers.get("Range")
        if header and self.server.ranges:
            start = int(header.split("=")[1].rstrip("-"))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.requests, httpd.ranges = {}, [], True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def zip_bytes(members: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def tar_file(path: Path, members: dict[str, bytes], link: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            tf.addfile(info)
    return path


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def test_download_verifies_md5_and_records_sha256(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    record = dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", md5=md5)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    assert record.verified and record.md5 == md5
    assert record.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    saved = json.loads((tmp_path / "data.bin.json").read_text())
    assert saved["sha256"] == record.sha256 and saved["size_bytes"] == len(PAYLOAD)
    assert not (tmp_path / "data.bin.part").exists()


def test_download_resumes_with_range(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:300_000])
    record = dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin")
    assert server.requests == [("/data.bin", "bytes=300000-")]
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    assert not record.verified and record.sha256 == hashlib.sha256(PAYLOAD).hexdigest()


def test_download_restarts_when_server_ignores_range(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.ranges = False
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes")
    dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin")
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_md5_mismatch_removes_the_download(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    with pytest.raises(ValueError, match=r"data\.bin: md5 [0-9a-f]{32} does not match the published 0{32}"):
        dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_scheme(server, tmp_path):
    with pytest.raises(RuntimeError, match="HTTP 404"):
        dl.download_file(f"{server.url}/missing.zip", tmp_path / "x.zip")
    with pytest.raises(ValueError, match="only http"):
        dl.download_file("file:///etc/passwd", tmp_path / "x")


def test_zenodo_md5_is_read_from_the_record(server):
    record = {"files": [{"key": "Infection_Mask.zip", "checksum": "md5:ABCDEF0123456789ABCDEF0123456789"}]}
    server.files["/api/records/3757476"] = json.dumps(record).encode()
    url = f"{server.url}/api/records/3757476"
    assert dl.zenodo_md5(url, "Infection_Mask.zip") == "abcdef0123456789abcdef0123456789"
    assert dl.zenodo_md5(url, "other.zip") is None


def test_download_command_fetches_and_extracts(server, tmp_path, capsys):
    archive = zip_bytes({"datasets/COVID-19-CT100/tr_mask/tr_mask_0000.png": b"x", "datasets/readme.txt": b"hi"})
    server.files["/datasets.zip"] = archive
    md5 = hashlib.md5(archive).hexdigest()
    rc = main(["download", "--dataset", "CT100", "--url", f"{server.url}/datasets.zip", "--md5", md5,
               "--data-root", str(tmp_path)])
    assert rc == 0
    folder = tmp_path / "downloads" / "CT100"
    assert (folder / "datasets" / "datasets" / "readme.txt").read_bytes() == b"hi"
    out = capsys.readouterr().out
    assert "md5 verified" in out and hashlib.sha256(archive).hexdigest() in out
    assert "prepare --dataset CT100" in out


def test_datasets_without_links_explain_where_to_get_them():
    with pytest.raises(ValueError, match=r"P1110 has no stable direct download link.*mosmed\.ai"):
        dl.remote_files("P1110")
    assert [f.filename for f in dl.remote_files("P20")] == ["COVID-19-CT-Seg_20cases.zip", "Infection_Mask.zip"]


@pytest.mark.parametrize(
    "members, symlink, reason",
    [
        ({"../evil.txt": b"x"}, None, "would land outside"),
        ({"ok/../../evil.txt": b"x"}, None, "would land outside"),
        ({"/tmp/evil.txt": b"x"}, None, "absolute path"),
        ({"ok.txt": b"x"}, "link", "symbolic link"),
    ],
)
def test_malicious_zip_is_refused_before_writing(tmp_path, members, symlink, reason):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(zip_bytes(members, symlink))
    target = tmp_path / "out"
    with pytest.raises(ValueError, match=f"bad.zip: member .* {reason}"):
        dl.safe_extract(archive, target)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_malicious_tar_is_refused(tmp_path):
    escape = tar_file(tmp_path / "escape.tar.gz", {"../evil.txt": b"x"})
    with pytest.raises(ValueError, match="would land outside"):
        dl.safe_extract(escape, tmp_path / "a")
    link = tar_file(tmp_path / "link.tar.gz", {"ok.txt": b"x"}, link=("data", "/etc"))
    with pytest.raises(ValueError, match="'data' is a link"):
        dl.safe_extract(link, tmp_path / "b")
    assert list((tmp_path / "b").iterdir()) == []
    good = tar_file(tmp_path / "good.tar.gz", {"dir/file.txt": b"fine"})
    assert (dl.safe_extract(good, tmp_path / "c") / "dir" / "file.txt").read_bytes() == b"fine"


def test_malicious_archive_served_over_http_is_refused(server, tmp_path):
    server.files["/evil.zip"] = zip_bytes({"../../outside.txt": b"x"})
    with pytest.raises(ValueError, match="would land outside"):
        dl.download_dataset("P9", tmp_path, url=f"{server.url}/evil.zip")
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "downloads" / "outside.txt").exists()
    assert not (tmp_path / "downloads" / "P9" / "evil").exists()


def test_download_help_names_the_sources(capsys):
    with pytest.raises(SystemExit):
        main(["download", "--help"])
    text = capsys.readouterr().out
    for needle in ("Zenodo record 3757476", "MedSeg", "MosMedData", "datasets.zip", "--md5"):
        assert needle in text
