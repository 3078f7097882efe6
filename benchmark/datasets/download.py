"""Downloads with resume, checksums and safe archive extraction (standard library only).

A download goes to `<file>.part` and resumes from its size with an HTTP Range request;
the finished file is checked against the md5 the source publishes (Zenodo lists one per
file) when known, its sha256 is recorded either way in `<file>.json`, and an archive
member that would land outside the target folder (absolute path, `..`, link) is refused
before anything is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ..errors import Unavailable
from ..io import atomic_write_json
from .specs import RemoteFile, get_spec

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
DOWNLOADS_DIR = "downloads"
EXTRACTED_MARK = ".extracted"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclass(frozen=True)
class DownloadRecord:
    """What arrived: where, from where, its size and hashes, and whether an md5 was checked."""

    path: str
    url: str
    size_bytes: int
    md5: str
    sha256: str
    md5_expected: str | None
    verified: bool


def _check_url(url: str) -> None:
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"{url}: only http(s) URLs can be downloaded")


def file_hashes(path: Path) -> tuple[str, str]:
    """(md5, sha256) hex digests of a file, read in chunks."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def _open(url: str, offset: int) -> tuple[object | None, int]:
    """Open `url` from byte `offset`; return (response or None when already complete, start byte)."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return None, offset
        raise Unavailable(f"{url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise Unavailable(f"{url}: cannot connect ({err.reason})") from None
    if offset and response.status == 206:
        match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            return response, offset
        response.close()
        raise Unavailable(f"{url}: server resumed at an unexpected byte ({response.headers.get('Content-Range')})")
    return response, 0


def _fetch(url: str, part: Path) -> None:
    """Download `url` into `part`, continuing a partial file when the server honours Range."""
    offset = part.stat().st_size if part.exists() else 0
    response, start = _open(url, offset)
    if response is None:
        return
    length = response.headers.get("Content-Length")
    total = start + int(length) if length is not None else None
    with response, part.open("ab" if start else "wb") as out, tqdm(
        total=total, initial=start, unit="B", unit_scale=True, desc=part.name[: -len(".part")], file=sys.stderr
    ) as bar:
        for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
            out.write(chunk)
            bar.update(len(chunk))


def download_file(url: str, dest: str | Path, md5: str | None = None) -> DownloadRecord:
    """Fetch `url` to `dest` (resumable), verify `md5` when given, record sha256 in `<dest>.json`."""
    _check_url(url)
    dest = Path(dest)
    record_path = dest.with_name(dest.name + ".json")
    if dest.is_file() and record_path.is_file():
        record = DownloadRecord(**json.loads(record_path.read_text(encoding="utf-8")))
        if md5 is None or record.md5 == md5.lower():
            return record
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _fetch(url, part)
    got_md5, got_sha256 = file_hashes(part)
    if md5 is not None and got_md5 != md5.lower():
        part.unlink()
        raise ValueError(f"{dest}: md5 {got_md5} does not match the published {md5.lower()}; the download was removed")
    os.replace(part, dest)
    record = DownloadRecord(
        path=str(dest), url=url, size_bytes=dest.stat().st_size, md5=got_md5, sha256=got_sha256,
        md5_expected=md5.lower() if md5 else None, verified=md5 is not None,
    )
    atomic_write_json(record_path, asdict(record))
    return record


def zenodo_md5(record_url: str, filename: str) -> str | None:
    """The md5 a Zenodo record API lists for `filename` ("checksum": "md5:<hex>"), or None."""
    _check_url(record_url)
    try:
        with urllib.request.urlopen(record_url, timeout=TIMEOUT_S) as response:
            files = json.loads(response.read().decode("utf-8")).get("files", [])
    except (urllib.error.URLError, ValueError, OSError) as err:
        print(f"warning: could not read the published checksum from {record_url} ({err})", file=sys.stderr)
        return None
    for entry in files:
        if filename in (entry.get("key"), entry.get("filename")):
            algo, _, digest = str(entry.get("checksum", "")).partition(":")
            return digest.lower() if algo == "md5" and digest else None
    return None


def _refuse(archive: Path, name: str, why: str, target: Path) -> ValueError:
    return ValueError(f"{archive}: member {name!r} {why}; refusing to extract into {target}")


def _check_member(archive: Path, name: str, target: Path) -> None:
    """Refuse absolute names, drive letters and names that resolve outside `target`."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or PurePosixPath(name).is_absolute():
        raise _refuse(archive, name, "has an absolute path", target)
    root = target.resolve()
    if not (root / name.replace("\\", "/")).resolve().is_relative_to(root):
        raise _refuse(archive, name, "would land outside the target folder", target)


def _check_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            _check_member(archive, info.filename, target)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise _refuse(archive, info.filename, "is a symbolic link", target)


def _check_tar(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            _check_member(archive, member.name, target)
            if member.issym() or member.islnk():
                raise _refuse(archive, member.name, "is a link", target)
            if not (member.isfile() or member.isdir()):
                raise _refuse(archive, member.name, "is a device or special file", target)


def is_archive(path: Path) -> bool:
    """True for .zip and tar archives (by name)."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def safe_extract(archive: str | Path, target: str | Path) -> Path:
    """Extract a zip or tar archive into `target` after checking every member stays inside it."""
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        _check_zip(archive, target)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(target)
    elif tarfile.is_tarfile(archive):
        _check_tar(archive, target)
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: a second guard besides our checks
                tf.extractall(target, filter="data")
            else:
                tf.extractall(target)
    else:
        raise ValueError(f"{archive}: not a zip or tar archive")
    return target


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def extract_once(archive: Path) -> Path:
    """Extract `archive` beside itself into `<stem>/` (via a temp folder); skipped when done before."""
    target = archive.with_name(_archive_stem(archive))
    if (target / EXTRACTED_MARK).is_file():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=archive.parent))
    try:
        safe_extract(archive, tmp)
        (tmp / EXTRACTED_MARK).write_text(archive.name + "\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _filename_of(url: str) -> str:
    name = PurePosixPath(urllib.parse.urlparse(url).path).name
    return name or "download"


def remote_files(name: str, url: str | None = None, md5: str | None = None) -> list[RemoteFile]:
    """The files to fetch for a dataset: the spec's stable links, or the single `url` given."""
    spec = get_spec(name)
    if url is not None:
        return [RemoteFile(url=url, filename=_filename_of(url), md5=md5)]
    if not spec.downloads:
        raise ValueError(
            f"{spec.name} has no stable direct download link: get {spec.source} from "
            f"{spec.source_url or 'its source'} and run `prepare --dataset {spec.name} --source PATH`, "
            "or pass --url (e.g. the authors' datasets.zip)"
        )
    if md5 is not None and len(spec.downloads) > 1:
        raise ValueError(f"--md5 needs --url: {spec.name} has {len(spec.downloads)} files")
    return [RemoteFile(f.url, f.filename, md5 or f.md5, f.checksum_url) for f in spec.downloads]


def download_dataset(
    name: str, data_root: str | Path, url: str | None = None, md5: str | None = None, extract: bool = True
) -> tuple[Path, list[DownloadRecord]]:
    """Fetch a dataset's files into `<root>/downloads/<NAME>/` and extract archives there."""
    spec = get_spec(name)
    folder = Path(data_root) / DOWNLOADS_DIR / spec.name
    records = []
    for remote in remote_files(name, url, md5):
        expected = remote.md5 or (zenodo_md5(remote.checksum_url, remote.filename) if remote.checksum_url else None)
        record = download_file(remote.url, folder / remote.filename, expected)
        records.append(record)
        if extract and is_archive(Path(record.path)):
            extract_once(Path(record.path))
    return folder, records
