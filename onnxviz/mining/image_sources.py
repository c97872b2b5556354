"""Image collections for mining: a folder tree, a zip or tar archive, or a list file, read item by item.

Every source is an ordered list of *items*; an item's position (its *index*) is its identity during
mining (datasets.py says why). Reading is bounded: a file or archive member over MAX_IMAGE_BYTES, a
link or a device is a skip with one sentence (ImageError), never a crash or an extraction.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Optional, Sequence

from ..errors import DatasetError, ImageError
from ..preprocessing.images import IMAGE_SUFFIXES

LIST_SUFFIXES = {".txt", ".lst", ".list", ".csv"}


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


class ImageSource:
    """An ordered collection of image files. Subclasses implement ``_read``."""

    kind = "source"

    def __init__(self, spec: str, keys: Sequence[str], ignored: int = 0):
        self.spec = str(spec)
        self.keys = list(keys)
        self.ignored = ignored  # files that were not considered images (by their suffix)

    def __len__(self) -> int:
        return len(self.keys)

    def key(self, index: int) -> str:
        return self.keys[index]

    def read(self, index: int) -> bytes:
        """The raw bytes of item ``index`` (ImageError when unreadable)."""
        try:
            return self._read(self.keys[index])
        except ImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - any I/O failure is a skip for the caller
            raise ImageError(f"cannot read {self.keys[index]}: {_io_reason(exc)}") from exc

    def _read(self, key: str) -> bytes:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A hash of the item list: a resumed run or a shard merge checks it is the same data."""
        h = hashlib.sha256()
        for k in self.keys:
            h.update(k.encode("utf-8", "surrogateescape") + b"\0")
        return h.hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.kind} {self.spec} ({len(self)} images)"


class FolderSource(ImageSource):
    kind = "folder"

    def __init__(self, root):
        self.root = Path(root)
        keys, ignored = [], 0
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(self.root)
            for f in sorted(filenames):
                if f.startswith("."):
                    continue
                if is_image_name(f):
                    keys.append((rel / f).as_posix())
                else:
                    ignored += 1
        keys.sort()
        super().__init__(str(self.root), keys, ignored)

    def path(self, index: int) -> Path:
        return self.root / self.keys[index]

    def _read(self, key: str) -> bytes:
        return read_file(self.root / key, key)


class ListSource(ImageSource):
    """A text file with one image path per line (relative paths are relative to the list file)."""

    kind = "list"

    def __init__(self, list_file):
        self.list_file = Path(list_file)
        base = self.list_file.parent
        keys = []
        for line in self.list_file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if self.list_file.suffix.lower() == ".csv":
                line = line.split(",")[0].strip()
            p = Path(line).expanduser()
            keys.append(str(p if p.is_absolute() else (base / p)))
        super().__init__(str(self.list_file), keys)

    def _read(self, key: str) -> bytes:
        return read_file(Path(key), key)


class ArchiveSource(ImageSource):
    """A zip or tar archive: members are read, never extracted, through one handle per thread (neither
    ZipFile nor TarFile is safe to share across threads). Subclasses say how to open, list and read."""

    def __init__(self, path):
        self.path = Path(path)
        self._local = threading.local()
        names = self._files()
        keys = sorted(n for n in names if is_image_name(n) and not Path(n).name.startswith("."))
        super().__init__(str(self.path), keys, len(names) - len(keys))

    def _open(self):
        raise NotImplementedError

    def _files(self) -> list:
        """Names of the archive's regular files."""
        raise NotImplementedError

    def _handle(self):
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = self._local.handle = self._open()
        return handle


class ZipSource(ArchiveSource):
    kind = "zip"

    def _open(self):
        return zipfile.ZipFile(self.path)

    def _files(self) -> list:
        with self._open() as z:
            return [i.filename for i in z.infolist() if not i.is_dir()]

    def _read(self, key: str) -> bytes:
        return read_zip_member(self._handle(), key)


class TarSource(ArchiveSource):
    kind = "tar"

    def _open(self):
        return tarfile.open(self.path)

    def _files(self) -> list:
        with self._open() as t:
            return [m.name for m in t.getmembers() if m.isfile()]

    def _read(self, key: str) -> bytes:
        return read_tar_member(self._handle(), key, self.path)


class KeyReader:
    """Reads items by key without listing the source again: what remote workers (Ray) get.

    Picklable and small (kind + path), so a block of work can carry just its keys; a worker on
    another machine needs the same path (a shared file system or the same copy of the data).
    """

    def __init__(self, kind: str, spec: str):
        self.kind, self.spec = kind, str(spec)
        self._handle = None

    def __getstate__(self):
        return {"kind": self.kind, "spec": self.spec}

    def __setstate__(self, state):
        self.__init__(state["kind"], state["spec"])

    def read(self, key: str) -> bytes:
        try:
            if self.kind == "folder":
                return read_file(Path(self.spec) / key, key)
            if self.kind == "list":
                return read_file(Path(key), key)
            if self._handle is None:
                self._handle = zipfile.ZipFile(self.spec) if self.kind == "zip" else tarfile.open(self.spec)
            if self.kind == "zip":
                return read_zip_member(self._handle, key)
            return read_tar_member(self._handle, key, self.spec)
        except ImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - any I/O failure is a skip for the caller
            raise ImageError(f"cannot read {key}: {_io_reason(exc)}") from exc


def _io_reason(exc: BaseException) -> str:
    """What the system said, without the exception class or a repeated path."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (" (a broken link?)" if isinstance(exc, FileNotFoundError) else "")
    if isinstance(exc, KeyError):
        return "no such member in the archive"
    return str(exc).splitlines()[0][:300] if str(exc) else "unreadable"


MAX_IMAGE_BYTES = 256 * 2 ** 20  # a file or archive member beyond this is not a photo (or is a bomb): skipped


def _too_big(key: str, size: int) -> ImageError:
    return ImageError(f"{key} holds {size / 2 ** 20:.0f} MiB, more than {MAX_IMAGE_BYTES // 2 ** 20} MiB: not a photo "
                      "(or a decompression bomb); skipped")


def read_file(path: Path, key: str) -> bytes:
    """A file's bytes, refused before reading when it is not a regular file or is too big."""
    st = path.stat()
    if not path.is_file():
        raise ImageError(f"{key} is not a regular file")
    if st.st_size > MAX_IMAGE_BYTES:
        raise _too_big(key, st.st_size)
    return path.read_bytes()


def read_zip_member(z: zipfile.ZipFile, key: str) -> bytes:
    """A zip member's bytes (read, never extracted), refused when it declares more than MAX_IMAGE_BYTES;
    reading stops there too, whatever the header claims."""
    info = z.getinfo(key)
    if info.file_size > MAX_IMAGE_BYTES:
        raise _too_big(key, info.file_size)
    with z.open(info) as fh:
        data = fh.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_big(key, len(data))
    return data


def read_tar_member(t: tarfile.TarFile, key: str, archive) -> bytes:
    """A tar member's bytes (read, never extracted): regular files only, at most MAX_IMAGE_BYTES."""
    member = t.getmember(key)
    if not member.isfile():
        raise ImageError(f"{key} is not a regular file in {archive} (a link or device: skipped)")
    if member.size > MAX_IMAGE_BYTES:
        raise _too_big(key, member.size)
    f = t.extractfile(member)
    if f is None:
        raise ImageError(f"{key} is not a regular file in {archive}")
    return f.read()


def key_reader(source: ImageSource) -> KeyReader:
    """A picklable reader of ``source``'s items by key."""
    if source.kind not in ("folder", "list", "zip", "tar"):
        raise DatasetError(f"a {source.kind} source cannot be read by remote workers; use a folder, archive or list")
    return KeyReader(source.kind, source.spec)


def open_source(spec) -> ImageSource:
    """An image source from a folder, a .zip, a .tar(.gz|.bz2|.xz) or a list file (.txt/.lst/.csv)."""
    path = Path(str(spec)).expanduser()
    if not path.exists():
        raise DatasetError(f"image source not found: {path}")
    try:
        if path.is_dir():
            src: ImageSource = FolderSource(path)
        elif zipfile.is_zipfile(path):
            src = ZipSource(path)
        elif tarfile.is_tarfile(path):
            src = TarSource(path)
        elif path.suffix.lower() in LIST_SUFFIXES:
            src = ListSource(path)
        elif _archive_name(path):
            raise DatasetError(f"{path} is named like an archive but is not a readable zip or tar file (a truncated "
                               "or damaged download?); download or pack it again")
        else:
            raise DatasetError(f"{path} is neither a folder, a zip or tar archive, nor a list file (.txt/.lst/.csv "
                               "with one image path per line)")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, UnicodeDecodeError, OSError) as exc:
        what = "list file" if path.suffix.lower() in LIST_SUFFIXES else "archive" if path.is_file() else "folder"
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200] if str(exc) else "unreadable"
        raise DatasetError(f"cannot read the {what} {path} ({why}): it is damaged, truncated or not readable; "
                           "fix or replace it (a list file is UTF-8 text, one image path per line)") from None
    if len(src) == 0:
        if src.ignored:
            raise DatasetError(f"no images in {path}: {src.ignored} files, none with an image suffix "
                               f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        raise DatasetError(f"no images in {path}: it is empty")
    return src


def _archive_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz"))


def parse_shard(text: Optional[str]) -> tuple:
    """'i/n' -> (i, n); None -> (0, 1)."""
    if text in (None, ""):
        return 0, 1
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise DatasetError(f"--shard must look like i/n (e.g. 0/2), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise DatasetError(f"--shard {text}: need 0 <= i < n")
    return i, n
