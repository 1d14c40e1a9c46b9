"""Pack CIFAR-10 small enough to carry to a lent GPU in two calls, and unpack it there bit for bit.

The device tool carries at most 64 MiB per call and the shared copy is 133 MiB (LZMA over raw
HWC bytes), so it needs three calls. Coding each colour plane as the residual of the
median-edge predictor of lossless image coders (LOCO-I / JPEG-LS), with the red and blue
residuals taken relative to green, before LZMA, makes it about 98 MiB: two calls.

    python tools/gpu/pack_cifar10.py pack   [--src SHARED] [--dest .data/packed]   # here (about 1.5 min)
    python tools/gpu/pack_cifar10.py unpack [--src .data/packed] [--dest .data/cifar10]   # on the device

`pack` writes two folders, `a/` and `b/`, each under 56 MiB, and records the SHA256 of every
array it packs; `unpack` reconstructs the arrays, refuses any whose SHA256 differs, and writes
them as stored (uncompressed) `.npz` files with `cob_paper.data.write_checksums`, so that `load_cifar10`
verifies them as any cache.
`unpack` takes whatever parts are present, so each call can unpack the part it carried.
"""
import argparse, hashlib, json, lzma, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from cob_paper.data import CACHE_FILES, find_cifar10, verify_checksums, write_checksums
from cob_paper.files import atomic_write

FILES = tuple(Path(name).stem for name in CACHE_FILES)
PARTS = {"a": FILES[:3], "b": FILES[3:]}
FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _median_edge_prediction(a, b, c):
    "LOCO-I's predictor from the left (a), upper (b) and upper-left (c) neighbours."
    low, high = np.minimum(a, b), np.maximum(a, b)
    return np.where(c >= high, low, np.where(c <= low, high, a + b - c))


def _shifted(planes):
    "Left, upper and upper-left neighbours of every pixel (zero outside the image)."
    a, b, c = (np.zeros_like(planes) for _ in range(3))
    a[..., 1:] = planes[..., :-1]
    b[..., 1:, :] = planes[..., :-1, :]
    c[..., 1:, 1:] = planes[..., :-1, :-1]
    return a, b, c


def encode(images: np.ndarray) -> bytes:
    "uint8 HWC images -> LZMA of colour-decorrelated prediction residuals (planar)."
    planes = images.transpose(0, 3, 1, 2).astype(np.int16)
    residual = (planes - _median_edge_prediction(*_shifted(planes))) % 256
    residual[:, 0] = (residual[:, 0] - residual[:, 1]) % 256
    residual[:, 2] = (residual[:, 2] - residual[:, 1]) % 256
    return lzma.compress(residual.astype(np.uint8).tobytes(), format=lzma.FORMAT_XZ, filters=FILTERS)


def decode(blob: bytes, count: int) -> np.ndarray:
    "The inverse of `encode`: pixels are rebuilt in raster order, each from its decoded neighbours."
    residual = np.frombuffer(lzma.decompress(blob), np.uint8).reshape(count, 3, 32, 32).astype(np.int16)
    residual[:, 0] = (residual[:, 0] + residual[:, 1]) % 256
    residual[:, 2] = (residual[:, 2] + residual[:, 1]) % 256
    planes = np.zeros_like(residual)
    zero = np.zeros(residual.shape[:2], np.int16)
    for h in range(32):
        for w in range(32):
            a = planes[:, :, h, w - 1] if w else zero
            b = planes[:, :, h - 1, w] if h else zero
            c = planes[:, :, h - 1, w - 1] if h and w else zero
            planes[:, :, h, w] = (residual[:, :, h, w] + _median_edge_prediction(a, b, c)) % 256
    return planes.astype(np.uint8).transpose(0, 2, 3, 1)


def _pack_one(args):
    src, dest, name = args
    with np.load(Path(src) / f"{name}.npz") as z: x, y = z["x"], z["y"]
    (Path(dest) / f"{name}.x.xz").write_bytes(encode(x))
    np.save(Path(dest) / f"{name}.y.npy", y)
    return name, {"count": len(x), "x_sha256": _digest(x), "y_sha256": _digest(y)}


def pack(src: Path, dest: Path):
    sums = (src / "SHA256SUMS")
    if not sums.exists(): sys.exit(f"pack: {sums} is missing; --src must be the shared CIFAR-10 folder.")
    verify_checksums(src)          # the digests recorded below are of the real data, not of a damaged copy
    jobs = []
    for part, names in PARTS.items():
        (dest / part).mkdir(parents=True, exist_ok=True)
        jobs += [(src, dest / part, name) for name in names]
    with ProcessPoolExecutor() as pool: manifest = dict(pool.map(_pack_one, jobs))
    for part, names in PARTS.items():
        (dest / part / "manifest.json").write_text(json.dumps({n: manifest[n] for n in names}, indent=1))
        size = sum(f.stat().st_size for f in (dest / part).iterdir())
        print(f"{dest / part}: {size / 2**20:.1f} MiB")


def unpack(src: Path, dest: Path):
    dest.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        manifest_path = src / part / "manifest.json"
        if not manifest_path.exists(): continue
        for name, meta in json.loads(manifest_path.read_text()).items():
            if (dest / f"{name}.npz").exists(): continue
            x = decode((src / part / f"{name}.x.xz").read_bytes(), meta["count"])
            y = np.load(src / part / f"{name}.y.npy")
            if _digest(x) != meta["x_sha256"] or _digest(y) != meta["y_sha256"]:
                sys.exit(f"unpack: {name} does not match the SHA256 recorded when it was packed; pack it again.")
            # stored, not compressed (LZMA would take minutes on the device); np.load reads either
            atomic_write(dest / f"{name}.npz", lambda f, x=x, y=y: np.savez(f, x=x, y=y))
            print(f"unpacked {name}: {meta['count']} images, SHA256 of the arrays verified", flush=True)
    present = [n for n in FILES if (dest / f"{n}.npz").exists()]
    if len(present) == len(FILES): write_checksums(dest)
    print(f"{dest}: {len(present)} of {len(FILES)} files present")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("--src")
    parser.add_argument("--dest")
    args = parser.parse_args()
    if args.action == "pack":
        source = args.src or find_cifar10()
        if source is None: sys.exit("pack: no CIFAR-10 copy found; pass --src or set COB_PAPER_DATA.")
        pack(Path(source), Path(args.dest or ".data/packed"))
    else:
        unpack(Path(args.src or ".data/packed"), Path(args.dest or ".data/cifar10"))


if __name__ == "__main__":
    main()
