"""The files inside a source, one by one: a tar archive (plain, gzip, bzip2 or xz), a zip archive or
a folder (:func:`read_members`).

Archives are read front to back in one pass (a tar as a stream), and the whole compressed stream is
read to its end, so its checksums (gzip CRC and length, zip CRC of every member read) are verified.
A truncated or corrupt archive is one :class:`T2IError` naming it. Nothing is extracted by the
names the archive gives: the caller picks the members it wants by pattern and writes each to a path
of its own, so a member called ``../../x`` cannot land outside the output folder.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterator

from ..errors import T2IError

CHUNK = 1 << 20
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, zipfile.BadZipFile, lzma.LZMAError, OSError, ValueError,
               NotImplementedError, RuntimeError)


def clean_name(name: str) -> str | None:
    """A member name as ``a/b/c`` (no ``.`` parts), or None for hidden files, macOS ``__MACOSX`` /
    ``._*`` resource forks and names that climb out (``..``)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or p.startswith(".") or p == "__MACOSX" for p in parts):
        return None
    return "/".join(parts)


def archive_kind(head: bytes) -> str | None:
    """``"zip"``, ``"gz"``, ``"bz2"``, ``"xz"``, ``"tar"`` from a file's first 512 bytes, or None."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head[257:262] == b"ustar":
        return "tar"
    return None


class _Counting(io.RawIOBase):
    """A read-only file that reports how many bytes were read (for a progress bar)."""

    def __init__(self, f, update: Callable[[int], None]):
        self.f, self.update = f, update

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.f.readinto(buffer)
        self.update(n or 0)
        return n


def read_members(source: Path | tuple[str, bytes], want: Callable[[str], bool], progress: bool = False
                 ) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of each regular file in ``source`` whose cleaned name ``want`` accepts, in the
    order the source stores them. ``source`` is a path (archive or folder) or ``(label, bytes)`` of an
    archive held in memory (an archive inside an archive)."""
    label = source[0] if isinstance(source, tuple) else str(source)
    if not isinstance(source, tuple) and Path(source).is_dir():
        yield from _read_folder(Path(source), want, progress)
        return
    try:
        if isinstance(source, tuple):
            head, size = source[1][:512], len(source[1])
        else:
            with open(source, "rb") as f:
                head = f.read(512)
            size = Path(source).stat().st_size
    except OSError as e:
        raise T2IError(f"cannot read {label}: {e.strerror or e}") from None
    kind = archive_kind(head)
    if kind is None:
        raise T2IError(f"{label} is not a tar or zip archive" + (" (it is empty)" if size == 0 else ""))
    from tqdm import tqdm

    with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"reading {Path(label).name}",
              disable=not progress) as bar:
        raw = io.BytesIO(source[1]) if isinstance(source, tuple) else open(source, "rb")
        try:
            if kind == "zip":  # random access: progress by the members read
                yield from _read_zip(raw, want, bar)
            else:  # one stream: progress by the compressed bytes read
                yield from _read_tar(io.BufferedReader(_Counting(raw, bar.update), CHUNK), kind, want)
        except T2IError:
            raise
        except READ_ERRORS as e:
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
            raise T2IError(f"{label} is damaged or incomplete ({type(e).__name__}: {detail}); download it again") from None
        finally:
            raw.close()



def _read_tar(stream, kind: str, want) -> Iterator[tuple[str, bytes]]:
    opener = {"gz": lambda f: gzip.GzipFile(fileobj=f), "bz2": bz2.BZ2File, "xz": lzma.LZMAFile, "tar": lambda f: f}
    unpacked = opener[kind](stream)
    with tarfile.open(fileobj=unpacked, mode="r|") as tar:
        for member in tar:
            name = clean_name(member.name)
            if member.isfile() and name is not None and want(name):
                yield name, tar.extractfile(member).read()
    while unpacked.read(CHUNK):  # to the end: a compressed stream checks its CRC and length there
        pass


def _read_zip(stream, want, bar) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(stream) as zf:
        for info in zf.infolist():
            name = clean_name(info.filename)
            if info.is_dir() or name is None or not want(name):
                continue
            data = zf.read(info)  # checks the member's CRC
            bar.update(info.compress_size)
            yield name, data


def _read_folder(root: Path, want, progress: bool) -> Iterator[tuple[str, bytes]]:
    from tqdm import tqdm

    with tqdm(desc=f"reading {root.name}", unit=" files", disable=not progress) as bar:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file in sorted(files):
                path = Path(folder) / file
                name = clean_name(path.relative_to(root).as_posix())
                if name is None or not path.is_file() or not want(name):
                    continue
                try:
                    data = path.read_bytes()
                except OSError as e:
                    raise T2IError(f"cannot read {path}: {e.strerror or e}") from None
                bar.update(1)
                yield name, data
