"""Rebuild the real-image fixtures (64x64 PNGs) from their public sources; see README.md.

    python benchmarks/data/real/make_fixtures.py --digiface REPO_DIR

REPO_DIR: a checkout of github.com/microsoft/DigiFace1M (its docs/img/ pictures are read);
the out-of-domain photos come from scikit-image and matplotlib (shipped with the packages).
Which tiles are taken is fixed by rule (every 6th tile of the preview mosaic, every 3rd tile of
each identity grid), not chosen by eye; the dev / held-out split alternates in that order.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = 64


def _square(img: Image.Image, box=None) -> Image.Image:
    """Crop ``box`` (left, top, right, bottom), or the centred square, and resize to SIZE."""
    if box is None:
        w, h = img.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return img.convert("RGB").crop(box).resize((SIZE, SIZE), Image.LANCZOS)


def digiface_tiles(repo: Path):
    """(name, image) pairs: mosaic tiles (sx-data-narrow.jpg, 19 x 8 tiles of ~52 px) and
    identity-grid tiles (variety_id{1,2}.jpg, 6 x 3 tiles of ~300 px, centre 90% kept)."""
    mosaic = Image.open(repo / "docs/img/sx-data-narrow.jpg")
    cw, rh = mosaic.size[0] / 19, mosaic.size[1] / 8
    tiles = []
    for k in range(0, 19 * 8, 6):
        r, c = divmod(k, 19)
        box = (round(c * cw) + 1, round(r * rh) + 1, round((c + 1) * cw) - 1, round((r + 1) * rh) - 1)
        tiles.append((f"digiface-mosaic-r{r}c{c:02d}", _square(mosaic, box)))
    cols = [(953, 1252), (1263, 1563), (1574, 1873), (1885, 2184), (2195, 2495), (2506, 2805)]
    rows = [(0, 299), (310, 610), (621, 920)]
    for ident in (1, 2):
        grid = Image.open(repo / f"docs/img/variety_id{ident}.jpg")
        for k in range(0, 18, 3):
            (y0, y1), (x0, x1) = rows[k // 6], cols[k % 6]
            s, cx, cy = int(0.9 * min(x1 - x0, y1 - y0)), (x0 + x1) // 2, (y0 + y1) // 2
            box = (cx - s // 2, cy - s // 2, cx - s // 2 + s, cy - s // 2 + s)
            tiles.append((f"digiface-id{ident}-r{k // 6}c{k % 6}", _square(grid, box)))
    return tiles


def package_photos():
    """(name, image) pairs from scikit-image and matplotlib sample data (no downloads)."""
    import matplotlib.cbook as cbook
    from skimage import data

    def arr(a):
        return Image.fromarray(a if a.ndim == 3 else np.repeat(a[..., None], 3, -1))

    lfw = (data.lfw_subset() * 255).round().astype(np.uint8)
    return [
        ("astronaut-face", _square(arr(data.astronaut()), (160, 30, 320, 190))),
        ("grace-hopper-face", _square(Image.open(cbook.get_sample_data("grace_hopper.jpg")), (145, 110, 385, 350))),
        ("chelsea-face", _square(arr(data.chelsea()), (40, 0, 340, 300))),
        ("coffee", _square(arr(data.coffee()))),
        ("lfw-0", _square(arr(lfw[0]))),
        ("rocket", _square(arr(data.rocket()))),
        ("astronaut", _square(arr(data.astronaut()))),
        ("immunohistochemistry", _square(arr(data.immunohistochemistry()))),
        ("lfw-1", _square(arr(lfw[1]))),
        ("hubble-deep-field", _square(arr(data.hubble_deep_field()), (300, 200, 600, 500))),
        ("retina", _square(arr(data.retina()))),
        ("camera", _square(arr(data.camera()))),
    ]


def write(folder: Path, items) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, img) in enumerate(items):
        split = "dev" if i % 2 == 0 else "heldout"
        img.save(folder / f"{i:02d}-{split}-{name}.png", optimize=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digiface", required=True, help="a checkout of microsoft/DigiFace1M")
    args = ap.parse_args(argv)
    write(HERE / "in-domain", digiface_tiles(Path(args.digiface)))
    write(HERE / "out-of-domain", package_photos())


if __name__ == "__main__":
    main()
