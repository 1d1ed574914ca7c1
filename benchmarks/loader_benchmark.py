"""How fast the Caltech-256 loader feeds a training step, per configuration.

Two commands::

    python benchmarks/loader_benchmark.py make  FOLDER [--images 30607]
    python benchmarks/loader_benchmark.py run   FOLDER [--resized COPY] [--workers 2] [--save STEM]

``make`` writes a synthetic, Caltech-sized folder (not committed): 257 class
folders in Caltech-256's layout, 30,607 JPEGs by default (``--images`` makes a
proportional subset), at least 80 per class and the clutter class largest,
as in Caltech-256. Each image is a random crop of a photograph that ships with
scikit-image or matplotlib, scaled to a Caltech-like size, so that JPEG
decoding costs what it costs on photographs; 1.4% are grayscale, as in
Caltech-256. The real size distribution was not available here: the long
side is drawn log-normally around 400 px (100 to 1,600 px) and the JPEG
quality from 75 to 92; ``make`` prints the mean file size to compare with the
real archive's (about 1.2 GB / 30,607, roughly 39 KB; crops of these few
photographs, often scaled up, compress better: about 26 KB).

``run`` times each loader configuration on the folder (``--resized`` adds a
copy made by ``python -m involution resize-data``): the training loader of
:class:`~involution.data.Caltech256DataModule` at 224 px with the course
augmentations, batch 32, as many worker processes as ``--workers``. It
reports images per second into the training step (batches taken from the
loader, nothing else done with them), after one warm-up batch per worker.
The machine's load average is printed beside the numbers: on a shared
machine they are noisy, and configurations are timed in turn, round after
round, so that a change in load affects all of them alike.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from involution.data import CATEGORIES_DIRNAME, Caltech256DataModule
from involution.data.shapes import PHOTO_POOLS, load_photo

CALTECH_IMAGES = 30_607
CALTECH_CLASSES = 257
MIN_PER_CLASS = 80  # Caltech-256's smallest classes
CLUTTER_IMAGES = 827  # 257.clutter, Caltech-256's largest class
GREY_FRACTION = 0.014


def class_sizes(total: int, rng: np.random.Generator) -> list[int]:
    """Images per class: a long tail from 80 up, clutter largest, summing to ``total`` (scaled down for a subset)."""
    scale = total / CALTECH_IMAGES
    clutter = max(1, round(CLUTTER_IMAGES * scale))
    rest = total - clutter
    floor = max(1, round(MIN_PER_CLASS * scale))
    extra = rng.pareto(1.5, CALTECH_CLASSES - 1)
    extra = extra / extra.sum() * (rest - floor * (CALTECH_CLASSES - 1))
    sizes = [floor + int(e) for e in extra]
    for index in range(rest - sum(sizes)):  # rounding leftovers, one each to the first classes
        sizes[index % len(sizes)] += 1
    return sizes + [clutter]


def random_image(rng: np.random.Generator, photos: list[Image.Image]) -> tuple[Image.Image, int]:
    """A photograph crop at a Caltech-like size, and the JPEG quality to save it with."""
    long_side = int(np.clip(rng.lognormal(math.log(400), 0.35), 100, 1600))
    short_side = max(60, int(long_side * rng.uniform(0.55, 1.0)))
    size = (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)
    photo = photos[rng.integers(len(photos))]
    width, height = photo.size
    crop_w, crop_h = int(width * rng.uniform(0.4, 1.0)), int(height * rng.uniform(0.4, 1.0))
    left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    image = photo.resize(size, Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
    if rng.random() < GREY_FRACTION:
        image = image.convert("L")
    return image, int(rng.integers(75, 93))


def make_folder(folder: Path, images: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    photos = [load_photo(name) for pool in PHOTO_POOLS.values() for name in pool]
    categories = folder / CATEGORIES_DIRNAME
    sizes = class_sizes(images, rng)
    total_bytes, written = 0, 0
    start = time.perf_counter()
    for index, count in enumerate(sizes, start=1):
        if index == CALTECH_CLASSES:
            name = "257.clutter"
        else:
            name = "001.ak47" if index == 1 else f"{index:03d}.class{index}"
        (categories / name).mkdir(parents=True, exist_ok=True)
        for number in range(1, count + 1):
            path = categories / name / f"{index:03d}_{number:04d}.jpg"
            image, quality = random_image(rng, photos)
            image.save(path, quality=quality)
            total_bytes += path.stat().st_size
            written += 1
        if index % 32 == 0 or index == len(sizes):
            print(f"  {written}/{images} images ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"Wrote {written} images in {len(sizes)} classes to {categories}: mean file "
          f"{total_bytes / written / 1024:.1f} KB (Caltech-256: about 39 KB).")


def _torchvision_rotations_course(image_size: int):
    """The course preset built from torchvision's float rotations (the same images, slower)."""
    import torch
    from torchvision.transforms import v2

    from involution.data import IMAGENET_MEAN, IMAGENET_STD
    return v2.Compose([
        v2.ToImage(), v2.Resize(image_size), v2.CenterCrop(image_size), v2.RandomHorizontalFlip(0.5),
        v2.RandomVerticalFlip(0.5), v2.RandomRotation(45), v2.RandomAffine(degrees=45),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def configurations(folder: Path, resized: Path | None, image_size: int) -> dict[str, dict]:
    """Name -> (data module settings, optional train transform) of every loader timed."""
    configs = {
        "course, torchvision rotations (before)": {"root": folder, "old_rotations": True},
        "course, uint8 rotations": {"root": folder},
        "course, uint8 rotations + uint8 batches": {"root": folder, "uint8_batches": True},
    }
    if resized is not None:
        configs["course, all of the above + 256 px copy"] = {"root": resized, "uint8_batches": True}
    configs["standard (RandomResizedCrop)"] = {"root": folder, "transforms": "standard"}
    return configs


def _loader(settings: dict, image_size: int, batch_size: int, workers: int, split_dir: Path):
    settings = dict(settings)
    old_rotations = settings.pop("old_rotations", False)
    datamodule = Caltech256DataModule(image_size=image_size, batch_size=batch_size, num_workers=workers,
                                      split_dir=split_dir, **settings)
    datamodule.setup("fit")
    if old_rotations:
        datamodule.train_dataset.transform = _torchvision_rotations_course(image_size)
    return datamodule, datamodule.train_dataloader()


def _images_per_second(datamodule, loader, batches: int) -> float:
    """Batches as the training step gets them (after the data module's batch-transfer hook)."""
    iterator = iter(loader)
    for _ in range(max(1, loader.num_workers)):  # warm-up: every worker has started its first batch
        next(iterator)
    start, images = time.perf_counter(), 0
    for _ in range(batches):
        batch = datamodule.on_after_batch_transfer(next(iterator), 0)
        images += len(batch[0])
    return images / (time.perf_counter() - start)


def run(folder: Path, resized: Path | None, workers: int, batches: int, rounds: int, image_size: int,
        batch_size: int) -> dict:
    import tempfile

    import torch

    torch.set_num_threads(1)  # the main process only collects batches; the workers do the work
    loads, results = [os.getloadavg()[0]], {}
    with tempfile.TemporaryDirectory() as split_dir:
        loaders = {name: _loader(settings, image_size, batch_size, workers, Path(split_dir))
                   for name, settings in configurations(folder, resized, image_size).items()}
        for round_number in range(rounds):
            for name, (datamodule, loader) in loaders.items():
                results.setdefault(name, []).append(_images_per_second(datamodule, loader, batches))
                print(f"  round {round_number + 1}: {name}: {results[name][-1]:.0f} images/s", flush=True)
            loads.append(os.getloadavg()[0])
    files = list((folder / CATEGORIES_DIRNAME).glob("*/*.jpg"))
    return {"folder_images": len(files), "folder_mean_kb": sum(f.stat().st_size for f in files) / len(files) / 1024,
            "workers": workers, "image_size": image_size, "batch_size": batch_size, "batches": batches,
            "rounds": rounds, "cpu_count": os.cpu_count(), "load_average_1min": loads,
            "images_per_second": {name: sorted(values) for name, values in results.items()}}


def report(result: dict) -> str:
    loads = result["load_average_1min"]
    lines = [f"Loader images/s into the training step: {result['image_size']} px, batch {result['batch_size']}, "
             f"{result['workers']} workers, median of {result['rounds']} rounds of {result['batches']} batches; "
             f"{result['cpu_count']} CPUs, 1-minute load average {min(loads):.1f} to {max(loads):.1f} "
             f"(other processes shared the CPUs). Folder: {result['folder_images']} synthetic Caltech-like JPEGs, "
             f"mean {result['folder_mean_kb']:.1f} KB.", "",
             "| configuration | images/s (median) | min - max |", "|---|---:|---:|"]
    for name, values in result["images_per_second"].items():
        lines.append(f"| {name} | {values[len(values) // 2]:.0f} | {values[0]:.0f} - {values[-1]:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="write a synthetic Caltech-sized folder")
    make.add_argument("folder", type=Path)
    make.add_argument("--images", type=int, default=CALTECH_IMAGES)
    timing = commands.add_parser("run", help="time each loader configuration on a folder")
    timing.add_argument("folder", type=Path)
    timing.add_argument("--resized", type=Path, help="a pre-resized copy of the folder "
                        "(python -m involution resize-data FOLDER COPY), timed as one more configuration")
    timing.add_argument("--workers", type=int, default=2)
    timing.add_argument("--batches", type=int, default=15)
    timing.add_argument("--rounds", type=int, default=3)
    timing.add_argument("--image-size", type=int, default=224)
    timing.add_argument("--batch-size", type=int, default=32)
    timing.add_argument("--save", type=Path, metavar="STEM",
                        help="also write the numbers to STEM.json and the table to STEM.md "
                             "(e.g. benchmarks/results/loader_cpu)")
    args = parser.parse_args(argv)
    if args.command == "make":
        make_folder(args.folder, args.images)
        return 0
    result = run(args.folder, args.resized, args.workers, args.batches, args.rounds, args.image_size,
                 args.batch_size)
    table = report(result)
    print(table)
    if args.save:
        args.save.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        command = "python benchmarks/loader_benchmark.py run " + " ".join(sys.argv[2:])
        args.save.with_suffix(".md").write_text(f"{table}\n\nMade by `{command}` on {time.strftime('%Y-%m-%d')}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
