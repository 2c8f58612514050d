"""Full-resolution restoration (``restore.restore_photo``) on scikit-image's astronaut (512x512).

Usage::

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/fullres.py [--method latent] [--preset fast]

Three tasks (colorization; a 40x40 hole on the face; super-resolution x4 of the 128x128
bicubic-downsampled photo), each on the whole photo and on the face region (165, 50, 120, 120)
(for x4: (41, 12, 30, 30) of the low-resolution input), with the ``dcgan-digiface64`` prior.
Prints one markdown row per case: output size, how much the prior's image is enlarged, PSNR over
the whole photo and over the region against the truth, beside the classical baseline computed
at full resolution (gray copy, biharmonic, bicubic), seconds, and the number of warning lines.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent  # benchmarks/operators.py would shadow the operators package
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch  # noqa: E402


def _cases():
    from operators import Downsample, Grayscale, Mask

    hole = torch.ones(1, 1, 512, 512)
    hole[..., 95:135, 205:245] = 0
    return [("colorize", Grayscale(), None), ("inpaint 40x40 hole", Mask(hole), None),
            ("superres x4", Downsample(4), (41, 12, 30, 30))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="latent")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import skimage.data

    import priors
    from restore.fullres import Region, restore_photo
    from restore.metrics import psnr
    from restore.tasks import classical_baseline

    x = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 255
    G = priors.load("dcgan-digiface64")
    score = lambda a, b: float(psnr(a.clamp(0, 1), b)[0])  # noqa: E731
    print(f"| task | region | output | prior upsampled | PSNR whole (region) | classical whole (region) | seconds | warnings |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for task, op, small_face in _cases():
        y = x if task.startswith("inpaint") else op(x)
        base_name, base = classical_baseline(op, op(x), (3, 512, 512))
        for region in (None, Region(*(small_face or (165, 50, 120, 120)))):
            warned, t0 = [], time.perf_counter()
            res = restore_photo(y, op, G, region=region, warn=warned.append, method=args.method,
                                preset=args.preset, seed=args.seed, progress=False)
            seconds = time.perf_counter() - t0
            r = res.geometry.out_region
            print(f"| {task} | {'whole' if region is None else f'{region.x},{region.y},{region.w},{region.h}'} "
                  f"| {res.image.shape[-1]}x{res.image.shape[-2]} | {res.geometry.upscale:.1f}x "
                  f"| {score(res.image, x):.2f} ({score(r.crop(res.image), r.crop(x)):.2f}) "
                  f"| {base_name} {score(base, x):.2f} ({score(r.crop(base), r.crop(x)):.2f}) "
                  f"| {seconds:.1f} | {len(warned)} |", flush=True)


if __name__ == "__main__":
    main()
