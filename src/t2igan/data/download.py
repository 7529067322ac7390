"""Published data archives and how to fetch them: resumable, checksum-checked downloads with a
progress bar (:func:`download`), and the folder they are kept in (:func:`archive_dir`).

Each archive is an :class:`Archive`: its published file name, where it comes from, its size and
its published MD5 where one is published. A download goes to ``<name>.part`` first and becomes
``<name>`` only once it is whole and (where a checksum is known) its MD5 matches, so an interrupted
download is resumed (an HTTP ``Range`` request) by the next run and is never taken for a finished one.

Environment variables: ``T2IGAN_CACHE`` (default ``~/.cache/t2igan``; archives go to its ``data/``
folder) and ``T2IGAN_OFFLINE=1`` (never download), the same ones the Inception weights use.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import T2IError

CACHE_ENV = "T2IGAN_CACHE"  # cache folder (default ~/.cache/t2igan)
OFFLINE_ENV = "T2IGAN_OFFLINE"  # "1": never download
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """One published file a data set is prepared from."""

    filename: str  # the published file name (how a file you pass is recognised)
    what: str  # what it holds, in a few words
    url: str  # where it is downloaded from
    size: int | None = None  # bytes, where known
    md5: str | None = None  # the published checksum; None where none is published
    page: str | None = None  # where a person downloads it by hand, when not ``url`` (Google Drive)
    fetch: bool = True  # downloaded when needed; False: used only when given (an optional extra)

    @property
    def manual_url(self) -> str:
        return self.page or self.url


def google_drive(file_id: str) -> tuple[str, str]:
    """(direct download URL, page a person opens) of a public Google Drive file."""
    return (f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t",
            f"https://drive.google.com/file/d/{file_id}/view")


def archive_dir() -> Path:
    """Where archives are looked for and downloaded to: ``$T2IGAN_CACHE/data`` (``~/.cache/t2igan/data``)."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "t2igan") / "data"


def downloads_allowed(offline: bool = False) -> bool:
    return not offline and os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "yes")


def human_size(n: int | None) -> str:
    if n is None:
        return "size not published"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # unreachable


def file_md5(path: Path, progress: bool = False) -> str:
    """MD5 of a file, read in 1 MiB blocks (with a progress bar for a large one)."""
    from tqdm import tqdm

    digest = hashlib.md5()
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                     desc=f"checking {path.name}", disable=not progress or size < 64 * CHUNK) as bar:
        while block := f.read(CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def check_md5(path: Path, archive: Archive, progress: bool = False) -> bool:
    """True if ``path`` has ``archive``'s published MD5; raise :class:`T2IError` if it has another; False
    when none is published."""
    if archive.md5 is None:
        return False
    got = file_md5(path, progress)
    if got != archive.md5:
        raise T2IError(f"{path}: md5 {got} is not the published {archive.md5} (a damaged or different copy): "
                       f"download it again from {archive.manual_url}, or pass --no-hash-check to use it anyway")
    return True


def download(archive: Archive, folder: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``archive`` into ``folder`` (resuming ``<name>.part``) and return the finished file.

    The published MD5, where there is one, is checked before the file takes its name; a mismatch
    removes the download. Any failure is one :class:`T2IError` line that says what to do.
    """
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / archive.filename
    part = folder / (archive.filename + ".part")
    by_hand = f"download it from {archive.manual_url} and put it at {final}"
    start = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(archive.url, headers={"User-Agent": "t2igan"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if not (e.code == 416 and start):  # 416 on a resume: the partial file is already whole
            raise T2IError(f"could not download {archive.filename}: HTTP {e.code} from {archive.url}; {by_hand}") from None
        response = None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise T2IError(f"could not download {archive.filename} ({reason}); {by_hand}") from None
    if response is not None:
        with response:
            if "text/html" in response.headers.get("Content-Type", ""):
                raise T2IError(f"{archive.url} answered with a web page, not {archive.filename} (Google Drive "
                               f"may want a person to confirm); {by_hand}")
            content_range = response.headers.get("Content-Range", "")
            if start and (response.status != 206 or not content_range.startswith(f"bytes {start}-")):
                start = 0  # the server ignores ranges (or sent another one): start again
            length = response.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else archive.size
            done = start
            with open(part, "ab" if start else "wb") as f, tqdm(
                    total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=f"downloading {archive.filename}", disable=not progress) as bar:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as e:
                        raise T2IError(f"the download of {archive.filename} broke off after {human_size(done)} "
                                       f"({type(e).__name__}); run the command again to resume it, or {by_hand}") from None
                    if not block:
                        break
                    f.write(block)
                    done += len(block)
                    bar.update(len(block))
            if total is not None and length and done < total:
                raise T2IError(f"the download of {archive.filename} broke off after {human_size(done)} of "
                               f"{human_size(total)}; run the command again to resume it, or {by_hand}")
    if archive.md5 is not None:
        got = file_md5(part, progress)
        if got != archive.md5:
            part.unlink()
            raise T2IError(f"the downloaded {archive.filename} has md5 {got}, not the published {archive.md5}; "
                           f"it was removed: run the command again, or {by_hand}")
    part.replace(final)
    return final
