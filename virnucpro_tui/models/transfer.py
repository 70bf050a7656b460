"""Resumable, verified HTTP transfers (docs/models.md#downloading-the-models).

``fetch`` downloads a URL into ``.<name>.partial`` next to its target, resuming an earlier
partial with an HTTP Range request (``If-Range`` guards against a changed remote file), checks
the size and the checksum, then fsyncs and renames it into place: a run never sees a partial
or unverified file. Progress goes to a ``TransferProgress`` (the front end draws it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from virnucpro_tui import __version__
from virnucpro_tui.errors import EXIT_ERROR, DiskFullError, VirnucproError, is_disk_full

CHUNK_BYTES = 1 << 20
PARTIAL_SUFFIX = ".partial"
USER_AGENT = f"virnucpro-tui/{__version__}"
# torch.hub's convention: a file name ending in ``-<hex>.<ext>`` carries a sha256 prefix.
URL_HASH_PREFIX = re.compile(r"-([a-f0-9]{8,64})\.[^/.]+$")


class DownloadError(VirnucproError):
    """A download failed (network, server, lock); nothing unverified was placed. Exit 1."""

    exit_code = EXIT_ERROR


class ChecksumMismatch(DownloadError):
    """A file does not hash to its published or recorded checksum."""


class TransferProgress(Protocol):
    """Where transfers report progress; ``task`` names the file (and the phase)."""

    def begin(self, task: str, total: int | None, done: int) -> None: ...

    def advance(self, task: str, nbytes: int) -> None: ...

    def end(self, task: str) -> None: ...


class NoProgress:
    def begin(self, task: str, total: int | None, done: int) -> None:
        return None

    def advance(self, task: str, nbytes: int) -> None:
        return None

    def end(self, task: str) -> None:
        return None


@dataclass(frozen=True)
class Digests:
    sha256: str
    git_sha1: str  # the id git (and the Hugging Face hub's ETag) gives a non-LFS file
    size: int


@dataclass(frozen=True)
class Checksum:
    """What a file must hash to, and who says so (named in the mismatch message)."""

    algorithm: str  # "sha256", "sha256-prefix" or "git-sha1"
    value: str
    source: str

    def matches(self, digests: Digests) -> bool:
        if self.algorithm == "sha256":
            return digests.sha256 == self.value
        if self.algorithm == "sha256-prefix":
            return digests.sha256.startswith(self.value)
        return digests.git_sha1 == self.value

    def actual(self, digests: Digests) -> str:
        return digests.git_sha1 if self.algorithm == "git-sha1" else digests.sha256


def checksum_from_etag(etag: str | None, source: str) -> Checksum | None:
    """The hub's ETag: the sha256 of an LFS file, or the git blob id of a small file."""
    value = (etag or "").strip('"').lower()
    if re.fullmatch(r"[0-9a-f]{64}", value):
        return Checksum("sha256", value, source)
    if re.fullmatch(r"[0-9a-f]{40}", value):
        return Checksum("git-sha1", value, source)
    return None


def checksum_from_url(url: str) -> Checksum | None:
    match = URL_HASH_PREFIX.search(url.split("?")[0])
    return (
        Checksum("sha256-prefix", match.group(1), "the hash prefix in its URL") if match else None
    )


@dataclass(frozen=True)
class FetchResult:
    digests: Digests
    resumed_from: int  # bytes kept from an earlier, interrupted attempt


class _Transient(Exception):
    """A network failure worth retrying (the partial file is kept)."""


class _RangeRefused(_Transient):
    """The server cannot serve the resume point (416): the partial is dropped."""


def partial_path(target: Path) -> Path:
    """Where ``target`` is assembled: hidden, and never a name a run or ``locate`` reads."""
    return target.with_name(f".{target.name}{PARTIAL_SUFFIX}")


def _open_partial(path: Path, mode: str) -> BinaryIO:
    """Open the partial file (a seam: tests wrap it to simulate a full disk)."""
    return cast(BinaryIO, open(path, mode))  # noqa: SIM115 - closed by the caller's with-block


def fetch(
    url: str,
    target: Path,
    *,
    task: str,
    checksum: Checksum | None = None,
    size: int | None = None,
    progress: TransferProgress | None = None,
    retries: int = 3,
    retry_delay_s: float = 2.0,
    timeout_s: float = 60.0,
    source_id: str | None = None,
) -> FetchResult:
    """Download ``url`` to ``target`` (resuming, verifying, atomically placed).

    ``source_id`` names the content when the URL changes between runs (a signed CDN URL): a
    partial is resumed only for the same source."""
    progress = progress or NoProgress()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    source = source_id or url
    with _locked(partial, task):
        resumed_from = _usable_partial(partial, source)
        failures = 0
        while True:
            try:
                _transfer(url, source, partial, task, size, progress, timeout_s)
                break
            except _Transient as exc:
                failures += 1
                if failures > retries:
                    raise DownloadError(_network_message(task, url, partial, exc)) from None
                time.sleep(retry_delay_s * failures)
        digests = file_digests(partial, f"verify {task}", progress)
        if checksum is not None and not checksum.matches(digests):
            _discard(partial)
            raise ChecksumMismatch(
                f"{task}: checksum mismatch: {checksum.algorithm} {checksum.actual(digests)}, "
                f"but {checksum.source} says {checksum.value}; the download was discarded and "
                "nothing was placed"
            )
        place(partial, target)
        _discard(partial)
    return FetchResult(digests, resumed_from)


def _transfer(
    url: str,
    source: str,
    partial: Path,
    task: str,
    size: int | None,
    progress: TransferProgress,
    timeout_s: float,
) -> None:
    """One attempt: request the missing bytes and append them to the partial file."""
    offset = partial.stat().st_size if partial.is_file() else 0
    if size is not None and offset == size:
        return  # complete from an earlier attempt; the checksum decides
    try:
        response = _open(url, offset, _read_sidecar(partial).get("validator"), timeout_s)
    except _RangeRefused:
        _discard(partial)
        raise
    with response:
        offset, total = _resume_point(response, offset, size, task)
        _write_sidecar(partial, source, response)
        _check_space(partial, task, None if total is None else total - offset)
        progress.begin(task, total, offset)
        try:
            received = _stream(response, partial, offset, progress, task)
        finally:
            progress.end(task)
    if total is not None and offset + received != total:
        raise _Transient(f"connection closed after {offset + received:,} of {total:,} bytes")


def _open(
    url: str, offset: int, validator: str | None, timeout_s: float
) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    try:
        return urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout_s
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial is longer than the file: start again
            raise _RangeRefused("the server refused the resume point") from None
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Transient(_reason(exc)) from None


def _resume_point(
    response: http.client.HTTPResponse, offset: int, size: int | None, task: str
) -> tuple[int, int | None]:
    """Where the body starts, and the whole file's size if known."""
    total: int | None
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise _Transient("the server answered the resume request with another range")
        total = None if match.group(2) == "*" else int(match.group(2))
    else:
        offset = 0  # the server sent the whole file (no Range support, or the file changed)
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    if size is not None and total is not None and total != size:
        raise DownloadError(f"{task}: the server sends {total:,} bytes, {size:,} were announced")
    return offset, total


def _stream(
    response: http.client.HTTPResponse,
    partial: Path,
    offset: int,
    progress: TransferProgress,
    task: str,
) -> int:
    received = 0
    try:
        with _open_partial(partial, "ab" if offset else "wb") as fh:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(_reason(exc)) from None
                if not chunk:
                    break
                fh.write(chunk)
                received += len(chunk)
                progress.advance(task, len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(_disk_full_message(partial, task)) from None
        raise DownloadError(f"{partial}: cannot write ({exc.strerror or exc})") from None
    return received


def _check_space(partial: Path, task: str, remaining: int | None) -> None:
    if remaining is None:
        return
    free = shutil.disk_usage(partial.parent).free
    if free < remaining:
        raise DiskFullError(
            f"{partial.parent}: No space left on device: {task} needs {_size(remaining)} more, "
            f"{_size(free)} free; free some space, then rerun the same command"
        )


def file_digests(path: Path, task: str, progress: TransferProgress | None = None) -> Digests:
    """sha256 and git blob id of a file, in one pass."""
    progress = progress or NoProgress()
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode())
    progress.begin(task, size, 0)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(4 * CHUNK_BYTES):
                sha256.update(chunk)
                git.update(chunk)
                progress.advance(task, len(chunk))
    finally:
        progress.end(task)
    return Digests(sha256.hexdigest(), git.hexdigest(), size)


def place(source: Path, target: Path) -> None:
    """Rename a complete, fsynced file into place, and make the rename durable."""
    with open(source, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(source, target)
    _fsync_dir(target.parent)


def link(entry: Path, blob: Path) -> None:
    """Point ``entry`` at ``blob`` with a relative symlink, replaced atomically."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f".{entry.name}.link{PARTIAL_SUFFIX}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(os.path.relpath(blob, entry.parent), tmp)
    os.replace(tmp, entry)
    _fsync_dir(entry.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the partial file's sidecar and lock --------------------------------------------------------


def _sidecar(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def _read_sidecar(partial: Path) -> dict[str, str]:
    try:
        data = json.loads(_sidecar(partial).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_sidecar(partial: Path, source: str, response: http.client.HTTPResponse) -> None:
    validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
    _sidecar(partial).write_text(json.dumps({"source": source, "validator": validator}))


def _usable_partial(partial: Path, source: str) -> int:
    """Bytes of an earlier attempt at the same source; another source's partial is dropped."""
    if not partial.is_file():
        return 0
    if _read_sidecar(partial).get("source") != source:
        _discard(partial)
        return 0
    return partial.stat().st_size


def _discard(partial: Path) -> None:
    for path in (partial, _sidecar(partial)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def _locked(partial: Path, task: str) -> Iterator[None]:
    """One process per file: a second download of the same file stops with a clear line."""
    lock = partial.with_name(partial.name + ".lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DownloadError(
            f"{task}: another virnucpro-tui process is downloading it ({lock}); "
            "wait for it to finish"
        ) from None
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        os.close(fd)


# --- messages ----------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).strip() or type(exc).__name__


def _network_message(task: str, url: str, partial: Path, exc: _Transient) -> str:
    kept = partial.stat().st_size if partial.is_file() else 0
    resume = (
        f"; {_size(kept)} kept in {partial}, rerun the same command to resume"
        if kept
        else "; rerun the same command to retry"
    )
    return f"{task}: network error downloading {url}: {exc}{resume}"


def _disk_full_message(partial: Path, task: str) -> str:
    kept = partial.stat().st_size if partial.is_file() else 0
    return (
        f"{partial.parent}: No space left on device while downloading {task} "
        f"({_size(kept)} kept in {partial.name}); free some space, then rerun the same command "
        "to resume"
    )


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
