"""The data side of the fuzz harness: damaged images, image folders, archives and run directories.

Photos start from crops of the bundled real photo (onnxviz/data/chelsea.jpg) and are then broken:
truncated, bit-flipped, empty, text named .jpg, decompression-bomb headers, CMYK / 16-bit / palette
modes, odd file names; archives get bombs, traversal names and broken members; run directories
(what mine and render wrote) get truncated JSON, corrupt SQLite and missing PNGs.
"""
from __future__ import annotations

import functools
import io
import json
import random
import shutil
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from .models import flip_bytes

ODD_NAMES = ["space name.jpg", "ñoño 名前.jpg", "-dash.jpg", "UPPER.JPG", "dots..jpg", "x" * 200 + ".jpg",
             "semi;colon.png", "quote'\".png", "new\nline.jpg", "tab\tname.png", "#hash.jpg", "%41.png"]
BOMB_BYTES = 320 * 2 ** 20  # an archive member that inflates to this many bytes (zeros): beyond any photo


def photos(n: int, size: int = 40, seed: int = 0) -> list:
    """``n`` RGB crops (PIL images) of the bundled photo at seeded positions."""
    from ..preprocessing.images import sample_image_path

    rng = random.Random(seed)
    full = Image.open(sample_image_path()).convert("RGB")
    out = []
    for _ in range(n):
        s = rng.randrange(size, min(full.size) // 2)
        x, y = rng.randrange(full.width - s), rng.randrange(full.height - s)
        out.append(full.crop((x, y, x + s, y + s)).resize((size, size)))
    return out


def encode(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header declares width x height pixels, with almost no data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def bomb_jpeg(jpeg: bytes, width: int = 65500, height: int = 65500) -> bytes:
    """A JPEG whose SOF marker claims width x height."""
    b = bytearray(jpeg)
    i = b.find(b"\xff\xc0")
    if i < 0:
        return bytes(b)
    b[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(b)


def damaged_image(rng: random.Random, photo: Image.Image) -> tuple:
    """(label, file name, bytes) of one damaged or unusual image."""
    jpeg = encode(photo)
    kind = rng.choice(["truncated", "flipped", "empty", "text", "bomb_png", "bomb_jpeg", "cmyk", "16bit", "palette",
                       "la", "1bit", "tiny", "odd_name", "gif_anim", "webp", "huge_meta", "wrong_suffix"])
    name = f"{kind}.jpg"
    if kind == "truncated":
        data = jpeg[:rng.randrange(1, len(jpeg))]
    elif kind == "flipped":
        data = flip_bytes(jpeg, rng)
    elif kind == "empty":
        data = b""
    elif kind == "text":
        data = b"this is not an image\n" * rng.choice([1, 100])
    elif kind == "bomb_png":
        data, name = bomb_png(*rng.choice([(100_000, 100_000), (1, 2 ** 31 - 1), (30_000, 30_000)])), "bomb.png"
    elif kind == "bomb_jpeg":
        data = bomb_jpeg(jpeg)
    elif kind == "cmyk":
        data = encode(photo.convert("CMYK"))
    elif kind == "16bit":
        data, name = encode(photo.convert("I;16"), "PNG"), "16bit.png"
    elif kind == "palette":
        data, name = encode(photo.convert("P"), "PNG"), "palette.png"
    elif kind == "la":
        data, name = encode(photo.convert("LA"), "PNG"), "la.png"
    elif kind == "1bit":
        data, name = encode(photo.convert("1"), "PNG"), "1bit.png"
    elif kind == "tiny":
        data, name = encode(photo.resize((1, 1)), "PNG"), "tiny.png"
    elif kind == "gif_anim":
        buf = io.BytesIO()
        photo.save(buf, "GIF", save_all=True, append_images=[photo.rotate(90)])
        data, name = buf.getvalue(), "anim.gif"
    elif kind == "webp":
        data, name = encode(photo, "WEBP"), "photo.webp"
    elif kind == "huge_meta":
        data, name = encode(photo, "PNG")[:-12] + _png_chunk(b"tEXt", b"k\x00" + b"v" * 2_000_000) + \
            _png_chunk(b"IEND", b""), "meta.png"
    elif kind == "wrong_suffix":
        data, name = encode(photo, "PNG"), "really_png.jpg"
    else:
        data, name = jpeg, rng.choice(ODD_NAMES)
    return f"image:{kind}", name, data


@functools.lru_cache(maxsize=None)
def _bomb_archive(kind: str) -> bytes:
    """A zip or tar.gz holding one photo and ``bomb.png``, BOMB_BYTES of zeros (built once per process)."""
    buf = io.BytesIO()
    photo = encode(photos(1, seed=0)[0])
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("bomb.png", b"\x00" * BOMB_BYTES)
            z.writestr("photo.jpg", photo)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as t:
            for name, data in (("photo.jpg", photo), ("bomb.png", b"\x00" * BOMB_BYTES)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE_KINDS = ["zip_bomb", "zip_traversal", "zip_broken", "zip_absolute", "zip_dupes", "zip_truncated",
                 "tar_bomb", "tar_traversal", "tar_symlink", "tar_device", "tar_truncated", "tar_gz_broken",
                 "zip_in_zip", "zip_encrypted_flag", "zip_empty"]


def archive(rng: random.Random, folder: Path, good: list) -> tuple:
    """(label, path) of a damaged or hostile zip/tar archive holding ``good`` (name, bytes) members too."""
    kind = rng.choice(ARCHIVE_KINDS)
    members = list(good)
    if kind.startswith("zip"):
        path = folder / "photos.zip"
        if kind == "zip_bomb":
            path.write_bytes(_bomb_archive("zip"))
            with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:
                for name, data in members:
                    z.writestr(name, data)
            return f"archive:{kind}", path
        extra = {"zip_traversal": [("../../escape.jpg", good[0][1])],
                 "zip_absolute": [("/tmp/abs.jpg", good[0][1])], "zip_dupes": [good[0], good[0]],
                 "zip_in_zip": [("inner.zip.jpg", b"PK\x03\x04" + b"\x00" * 40)]}.get(kind, [])
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members + extra:
                z.writestr(name, data)
        data = bytearray(path.read_bytes())
        if kind == "zip_broken":  # corrupt the first member's compressed bytes (a CRC/inflate error on read)
            for i in range(40, min(len(data), 200)):
                data[i] ^= 0x5A
        elif kind == "zip_truncated":
            data = data[: len(data) * 2 // 3]
        elif kind == "zip_encrypted_flag":
            data[6] |= 1  # general purpose flag: encrypted
        elif kind == "zip_empty":
            data = bytearray(b"PK\x05\x06" + b"\x00" * 18)
        path.write_bytes(bytes(data))
        return f"archive:{kind}", path
    if kind == "tar_bomb":
        path = folder / "photos.tar.gz"
        path.write_bytes(_bomb_archive("tar"))
        return f"archive:{kind}", path
    path = folder / ("photos.tar.gz" if kind == "tar_gz_broken" else "photos.tar")
    with tarfile.open(path, "w:gz" if path.suffix == ".gz" else "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        if kind == "tar_traversal":
            info = tarfile.TarInfo("../../escape.jpg")
            info.size = len(good[0][1])
            t.addfile(info, io.BytesIO(good[0][1]))
        elif kind == "tar_symlink":
            info = tarfile.TarInfo("link.jpg")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            t.addfile(info)
            info = tarfile.TarInfo("hard.jpg")
            info.type, info.linkname = tarfile.LNKTYPE, "../../etc/passwd"
            t.addfile(info)
        elif kind == "tar_device":
            info = tarfile.TarInfo("dev.jpg")
            info.type = tarfile.CHRTYPE
            t.addfile(info)
    data = path.read_bytes()
    if kind in ("tar_truncated", "tar_gz_broken"):
        data = data[: len(data) * 2 // 3] if kind == "tar_truncated" else flip_bytes(data, rng, 16)
    path.write_bytes(data)
    return f"archive:{kind}", path


def dataset(rng: random.Random, folder: Path, n_good: int = 6) -> tuple:
    """(label, source path) of a mining source: a folder with damaged images among good ones, an
    archive, a list file, or an empty or odd folder."""
    good = [(f"good_{i}.jpg", encode(p)) for i, p in enumerate(photos(n_good, seed=rng.randrange(1000)))]
    kind = rng.choice(["folder", "folder", "folder", "archive", "archive", "list", "empty", "only_bad", "symlinks"])
    if kind == "archive":
        return archive(rng, folder, good)
    root = folder / "photos"
    root.mkdir(parents=True, exist_ok=True)
    labels = []
    if kind != "only_bad":
        for name, data in good:
            (root / name).write_bytes(data)
    if kind in ("folder", "only_bad", "list"):
        for i in range(rng.choice([1, 2, 5])):
            label, name, data = damaged_image(rng, photos(1, seed=rng.randrange(1000))[0])
            labels.append(label)
            target = root / f"{i}_{name}" if rng.random() < 0.5 else root / name
            try:
                target.write_bytes(data)
            except OSError:  # a name this filesystem refuses
                (root / f"{i}.jpg").write_bytes(data)
        if rng.random() < 0.2:
            (root / "folder.jpg").mkdir(exist_ok=True)
            labels.append("image:folder named .jpg")
    if kind == "symlinks":
        for target in ("/etc/passwd", "/nonexistent/x.jpg", str(root)):
            (root / f"link{len(labels)}.jpg").symlink_to(target)
            labels.append(f"image:symlink to {target}")
    if kind == "list":
        lst = folder / "files.txt"
        lines = [str(p) for p in sorted(root.iterdir())] + ["/nonexistent.jpg", "relative/missing.png", "", "# c",
                                                            "/etc/passwd"]
        lst.write_text("\n".join(lines), encoding="utf-8")
        return "dataset:list " + ", ".join(labels), lst
    return f"dataset:{kind} " + ", ".join(labels), root


def damage_run(rng: random.Random, run: Path) -> str:
    """Damage a copy of a run directory in place: truncated or wrong-typed JSON, corrupt SQLite,
    missing or broken PNGs, missing folders. Returns a label."""
    files = sorted(p for p in run.rglob("*") if p.is_file())
    by_kind = {s: [p for p in files if p.suffix == s] for s in (".json", ".sqlite", ".png")}
    kind = rng.choice(["json", "json", "sqlite", "sqlite", "png", "png", "folder"])
    pool = by_kind.get("." + kind) or files
    if kind == "folder":
        folders = sorted({p.parent for p in files if p.parent != run})
        victim = rng.choice(folders)
        shutil.rmtree(victim)
        return f"run:folder removed {victim.relative_to(run)}"
    victim = rng.choice(pool)
    data = victim.read_bytes()
    how = rng.choice(["truncate", "flip", "empty", "delete", "replace"])
    if how == "truncate":
        victim.write_bytes(data[:rng.randrange(max(1, len(data)))])
    elif how == "flip":
        victim.write_bytes(flip_bytes(data, rng, rng.choice([1, 16, 256])))
    elif how == "empty":
        victim.write_bytes(b"")
    elif how == "delete":
        victim.unlink()
    elif victim.suffix == ".json":
        value = rng.choice([[1, 2], "text", 5, None, {"layer": 5, "unit": "x"}, {"kind": "channel", "unit": -1,
                                                                                  "layer": "../../x"}])
        if isinstance(value, dict) and rng.random() < 0.5:
            base = json.loads(data.decode("utf-8", "replace") or "{}") if data.startswith(b"{") else {}
            value = {**base, **value}
        victim.write_text(json.dumps(value), encoding="utf-8")
    else:
        victim.write_bytes(b"not a " + victim.suffix.encode() + b" file\n")
    return f"run:{kind} {how} {victim.relative_to(run)}"
