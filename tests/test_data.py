"""Tests of involution.data: layout, split, decoding, download, transforms, sample set.

Every data set here is a few tiny images written by the test into tmp_path.
Split files live with the data they describe, so no test writes into the
repository; most data modules get an explicit ``split_file`` in tmp_path anyway.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import random
import shutil
import tarfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import involution.data as data
from involution.data import (
    CATEGORIES_DIRNAME,
    Caltech256DataModule,
    CorruptImageError,
    build_transforms,
    check_data,
    denormalize,
    download_caltech256,
    load_split,
    main_check_data,
    make_split,
    sample_data_root,
    split_file_name,
)
from involution.data.locate import list_images

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def write_jpeg(path: Path, mode: str = "RGB", size=(48, 36), seed: int = 0) -> Path:
    """A random-noise JPEG in the given PIL mode ("RGB", "L" or "CMYK")."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path, quality=90)
    return path


def make_tree(root: Path, class_sizes: dict[str, int], order_seed: int | None = None) -> Path:
    """root/256_ObjectCategories/<class>/<class>_NNNN.jpg; returns the categories folder.

    ``order_seed`` shuffles the order in which the files are created.
    """
    categories = root / CATEGORIES_DIRNAME
    files = [(folder, i) for folder, n in class_sizes.items() for i in range(1, n + 1)]
    if order_seed is not None:
        random.Random(order_seed).shuffle(files)
    for folder, i in files:
        write_jpeg(categories / folder / f"{folder[:3]}_{i:04d}.jpg", size=(24, 20), seed=i)
    return categories


def module(root, tmp_path, **kwargs) -> Caltech256DataModule:
    """A data module on ``root`` with a split file in tmp_path and cheap settings."""
    kwargs.setdefault("split_file", tmp_path / "split.csv")
    kwargs.setdefault("image_size", 16)
    kwargs.setdefault("num_workers", 0)
    return Caltech256DataModule(root, **kwargs)


def counts_by_class(split: dict[str, str]) -> dict[str, tuple[int, int, int]]:
    result = {}
    for path, name in split.items():
        counts = result.setdefault(path.split("/")[0], [0, 0, 0])
        counts[("train", "val", "test").index(name)] += 1
    return {folder: tuple(c) for folder, c in result.items()}


# ---------------------------------------------------------------------------
# The split
# ---------------------------------------------------------------------------


def test_split_is_independent_of_listing_order():
    paths = [f"{c:03d}.c{c}/{c:03d}_{i:04d}.jpg" for c in range(1, 6) for i in range(1, 41)]
    shuffled = paths[:]
    random.Random(1).shuffle(shuffled)
    assert make_split(paths) == make_split(shuffled)
    assert list(make_split(shuffled)) == sorted(paths)  # sorted by path
    assert make_split(paths, seed=1) != make_split(paths, seed=0)


def test_split_is_stratified_with_rounding_and_tiny_classes():
    sizes = {"001.a": 40, "002.b": 20, "003.c": 16, "004.d": 3, "005.e": 2, "006.f": 1}
    paths = [f"{c}/{i}.jpg" for c, n in sizes.items() for i in range(n)]
    assert counts_by_class(make_split(paths, (0.8, 0.1, 0.1))) == {
        "001.a": (32, 4, 4),
        "002.b": (16, 2, 2),
        "003.c": (12, 2, 2),  # 1.6 rounds to 2
        "004.d": (1, 1, 1),
        "005.e": (2, 0, 0),
        "006.f": (1, 0, 0),
    }
    # Extreme fractions still leave one training image per class.
    assert counts_by_class(make_split(paths[:40], (0.02, 0.49, 0.49))) == {"001.a": (1, 19, 20)}


@pytest.mark.parametrize("bad", [(0.8, 0.1), (0.8, 0.3, 0.1), (0.0, 0.5, 0.5), (1.1, -0.1, 0.0)])
def test_bad_split_fractions_are_rejected(bad):
    with pytest.raises(ValueError, match="split"):
        make_split(["001.a/1.jpg"], bad)


def test_split_file_name_encodes_the_settings():
    assert split_file_name("caltech256", 0, (0.8, 0.1, 0.1), True) == "caltech256_seed0_80-10-10_with-clutter.csv"
    assert split_file_name("caltech256", 3, (0.7, 0.15, 0.15), False) == "caltech256_seed3_70-15-15_no-clutter.csv"
    assert split_file_name("sample", 0, (0.8, 0.1, 0.1), None) == "sample_seed0_80-10-10.csv"


def test_split_file_is_the_same_for_copies_made_in_different_orders(tmp_path):
    sizes = {"001.ant": 12, "002.bee": 7, "003.cat": 3}
    files = []
    for copy in (1, 2):
        make_tree(tmp_path / f"copy{copy}", sizes, order_seed=copy)
        split_file = tmp_path / f"split{copy}.csv"
        module(tmp_path / f"copy{copy}", tmp_path, split_file=split_file).prepare_data()
        files.append(split_file.read_bytes())
    assert files[0] == files[1]
    lines = files[0].decode().splitlines()
    assert lines[0] == "path,split"
    assert lines[1:] == sorted(lines[1:]) and len(lines) == 1 + 22
    assert lines[1].startswith("001.ant/001_0001.jpg,")


def test_split_is_loaded_from_the_file_once_written(tmp_path):
    make_tree(tmp_path, {"001.ant": 10, "002.bee": 10})
    dm = module(tmp_path, tmp_path)
    dm.setup()
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (16, 2, 2)

    # Edit the file by hand: a new module must follow it, not recompute.
    split_file = tmp_path / "split.csv"
    text = split_file.read_text().replace(",train", ",val", 3)
    split_file.write_text(text)
    dm2 = module(tmp_path, tmp_path)
    dm2.setup()
    assert (len(dm2.train_dataset), len(dm2.val_dataset), len(dm2.test_dataset)) == (13, 5, 2)
    assert load_split(split_file) == {
        str(p.relative_to(dm2.categories_dir).as_posix()): s
        for ds, s in ((dm2.train_dataset, "train"), (dm2.val_dataset, "val"), (dm2.test_dataset, "test"))
        for p, _ in ds.samples
    }


def test_missing_files_in_split_are_listed(tmp_path):
    # A SplitMismatchError that counts both directions, lists five examples and names split_update as the fix.
    categories = make_tree(tmp_path, {"001.ant": 30, "002.bee": 3})
    module(tmp_path, tmp_path).prepare_data()
    removed = sorted(categories.glob("001.ant/*.jpg"))[:25]
    for path in removed:
        path.unlink()
    with pytest.raises(data.SplitMismatchError) as error:
        module(tmp_path, tmp_path).setup()
    message = str(error.value)
    assert "25 image(s) in the split file are missing from disk" in message
    assert "0 image(s) on disk are not in the split file" in message
    assert "001.ant/001_0001.jpg" in message and "001.ant/001_0005.jpg" in message
    assert "001.ant/001_0006.jpg" not in message and "... and 20 more" in message
    assert "restore them" in message and "split_update rebuild" in message


def test_split_without_training_image_for_a_class_is_rejected(tmp_path):
    make_tree(tmp_path, {"001.ant": 3, "002.bee": 3})
    module(tmp_path, tmp_path).prepare_data()
    split_file = tmp_path / "split.csv"
    split_file.write_text(split_file.read_text().replace("002.bee/002_0001.jpg,train", "002.bee/002_0001.jpg,val")
                          .replace("002.bee/002_0002.jpg,train", "002.bee/002_0002.jpg,val")
                          .replace("002.bee/002_0003.jpg,train", "002.bee/002_0003.jpg,val"))
    with pytest.raises(ValueError, match="no training image for class.*002.bee"):
        module(tmp_path, tmp_path).setup()


# ---------------------------------------------------------------------------
# Decoding, broken files and the folder layout
# ---------------------------------------------------------------------------


@pytest.fixture
def odd_images(tmp_path):
    """A class with a grayscale, a CMYK and a truncated JPEG, and one normal class."""
    categories = make_tree(tmp_path, {"001.ant": 3})
    folder = categories / "002.bee"
    gray = write_jpeg(folder / "gray.jpg", mode="L", size=(40, 30))
    cmyk = write_jpeg(folder / "cmyk.jpg", mode="CMYK", size=(30, 40))
    truncated = write_jpeg(folder / "truncated.jpg", size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    return {"gray": gray, "cmyk": cmyk, "truncated": truncated}


def test_grayscale_and_cmyk_load_as_rgb_and_truncated_fails(tmp_path, odd_images):
    assert Image.open(odd_images["gray"]).mode == "L"
    assert Image.open(odd_images["cmyk"]).mode == "CMYK"
    dm = module(tmp_path, tmp_path, split=(1.0, 0.0, 0.0))  # every image in train
    dm.setup()
    dataset = dm.train_dataset
    dataset.transform = build_transforms("course", 16, train=False)
    by_name = {path.name: i for i, (path, _) in enumerate(dataset.samples)}
    for name in ("gray.jpg", "cmyk.jpg"):
        image, label = dataset[by_name[name]]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32
        assert label == 1
    with pytest.raises(CorruptImageError) as error:
        dataset[by_name["truncated.jpg"]]
    assert str(odd_images["truncated"]) in str(error.value)
    assert "python -m involution check-data" in str(error.value)


def test_truncated_image_fails_through_the_dataloader(tmp_path, odd_images):
    dm = module(tmp_path, tmp_path, split=(1.0, 0.0, 0.0), batch_size=64)
    with pytest.raises(CorruptImageError, match="truncated.jpg"):
        next(iter(dm.train_dataloader()))


def test_check_data_lists_only_the_broken_file(tmp_path, odd_images, capsys):
    problems = check_data(tmp_path)
    assert [path for path, _ in problems] == [odd_images["truncated"]]
    assert "truncated" in problems[0][1]
    assert main_check_data(tmp_path) == 1
    output = capsys.readouterr().out
    assert "Checked 6 images in 2 class folders" in output and "truncated.jpg" in output
    odd_images["truncated"].unlink()
    assert main_check_data(tmp_path) == 0
    assert main_check_data(tmp_path / "nowhere") == 2


def test_non_images_and_subfolders_are_ignored(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 3, "002.bee": 3})
    (categories / "001.ant" / "RENAME2").write_text("not an image")
    (categories / "001.ant" / "notes.txt").write_text("not an image")
    (categories / "001.ant" / "._001_0001.jpg").write_bytes(b"macOS metadata")
    write_jpeg(categories / "001.ant" / "greg" / "hidden.jpg")  # a sub-folder
    write_jpeg(categories / "002.bee" / "UPPER.JPG")  # suffixes are case-insensitive
    dm = module(tmp_path, tmp_path, split=(1.0, 0.0, 0.0))
    dm.setup()
    names = sorted(path.name for path, _ in dm.train_dataset.samples)
    assert names == ["001_0001.jpg", "001_0002.jpg", "001_0003.jpg",
                     "002_0001.jpg", "002_0002.jpg", "002_0003.jpg", "UPPER.JPG"]
    assert dm.num_classes == 2


def test_empty_class_folder_is_named(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 3})
    (categories / "002.empty").mkdir()
    (categories / "002.empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="002.empty"):
        module(tmp_path, tmp_path).setup()


def test_missing_root_says_how_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        Caltech256DataModule(tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere" / CATEGORIES_DIRNAME) in message
    assert "download=True" in message and data.CALTECH256_URL in message and data.CALTECH256_MD5 in message
    assert "README" not in message  # an installed user has no data/README.md


def test_torchvision_layout_is_found(tmp_path):
    make_tree(tmp_path / "caltech256", {"001.ant": 3, "002.bee": 3})
    dm = module(tmp_path, tmp_path)
    assert dm.categories_dir == tmp_path / "caltech256" / CATEGORIES_DIRNAME
    assert dm.class_folders == ["001.ant", "002.bee"] and dm.class_names == ["ant", "bee"]


def test_clutter_class_can_be_left_out(tmp_path):
    make_tree(tmp_path, {"001.ant": 3, "002.bee": 3, "257.clutter": 4})
    with_clutter = module(tmp_path, tmp_path, split_file=tmp_path / "with.csv")
    without = module(tmp_path, tmp_path, split_file=tmp_path / "without.csv", include_clutter=False)
    assert (with_clutter.num_classes, without.num_classes) == (3, 2)
    without.setup()
    assert without.class_names == ["ant", "bee"]
    assert data.class_names(tmp_path, include_clutter=False) == ["ant", "bee"]
    assert data.class_names(tmp_path) == ["ant", "bee", "clutter"]
    used = {path.parent.name for ds in (without.train_dataset, without.val_dataset, without.test_dataset)
            for path, _ in ds.samples}
    assert used == {"001.ant", "002.bee"}
    # A split made with the clutter class also serves without it.
    with_clutter.prepare_data()
    reuse = module(tmp_path, tmp_path, split_file=tmp_path / "with.csv", include_clutter=False)
    reuse.setup()
    assert sum(map(len, (reuse.train_dataset, reuse.val_dataset, reuse.test_dataset))) == 6


def test_num_classes_is_known_before_download(tmp_path):
    assert Caltech256DataModule(tmp_path, download=True).num_classes == 257
    assert Caltech256DataModule(tmp_path, download=True, include_clutter=False).num_classes == 256


def test_an_image_of_extreme_proportions_is_named_by_check_data_and_the_loader(tmp_path):
    # A 3 KB PNG of 1,000,000 x 1 pixels decoded fine, then asked for 196 GB when resized
    # for the model, in a worker, without naming the file.
    categories = make_tree(tmp_path, {"001.ant": 3})
    line = categories / "001.ant" / "line.png"
    Image.new("RGB", (1_000_000, 1)).save(line)
    with pytest.raises(CorruptImageError) as error:
        data.load_rgb_image(line)
    assert str(line) in str(error.value) and "1000000 x 1 pixels" in str(error.value)
    assert [path for path, _ in check_data(tmp_path)] == [line]


def test_image_files_the_loader_does_not_read_are_named_not_skipped_quietly(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 3})
    Image.new("RGB", (8, 8)).save(categories / "001.ant" / "moving.gif")
    with pytest.warns(UserWarning, match=r"(?s)1 file\(s\) .* left out.*001.ant/moving.gif"):
        paths = list_images(categories, ["001.ant"])
    assert len(paths) == 3


def test_a_photo_is_turned_as_its_exif_orientation_says(tmp_path):
    # A phone photo stored sideways with "rotate 90" in its EXIF trained sideways.
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    Image.new("RGB", (40, 20)).save(path, exif=exif)
    assert data.load_rgb_image(path).size == (20, 40)


def test_a_finished_extraction_leaves_no_staging_folder(tmp_path):
    # A download killed while extracting left .extracting (most of 1.2 GB) behind when the
    # data was then put in place another way.
    make_tree(tmp_path, {"001.ant": 3})
    (tmp_path / ".extracting" / CATEGORIES_DIRNAME).mkdir(parents=True)
    download_caltech256(tmp_path, url="http://127.0.0.1:9/never-fetched", md5="0" * 32)
    assert not (tmp_path / ".extracting").exists()


# ---------------------------------------------------------------------------
# Download from a local HTTP server
# ---------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def served_archive(tmp_path, monkeypatch):
    """A small Caltech-style tar served on 127.0.0.1; yields (url, md5)."""
    make_tree(tmp_path / "source", {"001.ant": 5, "002.bee": 5})
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "archive.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "source" / CATEGORIES_DIRNAME, arcname=CATEGORIES_DIRNAME)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()

    # A proxy set in the environment must not intercept the local server.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/archive.tar", md5
    server.shutdown()
    server.server_close()


def test_download_verifies_extracts_and_sets_up(tmp_path, served_archive, capsys):
    url, md5 = served_archive
    root = tmp_path / "downloaded"
    categories = download_caltech256(root, url=url, md5=md5)
    assert categories == root / CATEGORIES_DIRNAME
    # Extraction shows progress, one step per archive member (2 folders + 10 images + the top folder).
    assert "Extracting 256_ObjectCategories.tar" in capsys.readouterr().err
    assert sorted(p.relative_to(categories).as_posix() for p in categories.glob("*/*.jpg"))[:2] == [
        "001.ant/001_0001.jpg", "001.ant/001_0002.jpg"]
    assert not (root / data.CALTECH256_FILENAME).exists()  # the archive is removed
    assert not (root / ".extracting").exists()
    assert download_caltech256(root, url="http://127.0.0.1:9/never-fetched", md5=md5) == categories

    dm = module(root, tmp_path, batch_size=4)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 16, 16) and set(labels.tolist()) <= {0, 1}


def test_data_module_downloads_when_asked(tmp_path, served_archive, monkeypatch):
    url, md5 = served_archive
    monkeypatch.setattr(data.module, "CALTECH256_URL", url)
    monkeypatch.setattr(data.module, "CALTECH256_MD5", md5)
    dm = module(tmp_path / "root", tmp_path, download=True)
    assert dm.num_classes == 257  # promised before the download
    with pytest.raises(RuntimeError, match="has 2 classes, not the 257"):
        dm.prepare_data()


def test_an_archive_that_is_not_a_tar_is_named(tmp_path):
    (tmp_path / "fake.tar").write_bytes(b"<html>not found</html>")
    with pytest.raises(RuntimeError, match="fake.tar is not a tar archive") as error:
        data.extract_archive(tmp_path / "fake.tar", tmp_path / "out")
    assert data.CALTECH256_URL in str(error.value)


def test_extraction_refuses_members_outside_the_destination(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, fileobj=io.BytesIO(b"hi"))
    with pytest.raises(tarfile.OutsideDestinationError):
        data.extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_download_with_wrong_md5_fails_clearly(tmp_path, served_archive):
    url, md5 = served_archive
    with pytest.raises(RuntimeError) as error:
        download_caltech256(tmp_path / "bad", url=url, md5="0" * 32)
    message = str(error.value)
    assert f"has MD5 {md5}, expected {'0' * 32}" in message
    # Says how to get the archive by hand without a checkout (no pointer to data/README.md).
    assert data.CALTECH256_URL in message and "tar xf" in message and "README" not in message
    assert not (tmp_path / "bad" / data.CALTECH256_FILENAME).exists()
    assert not (tmp_path / "bad" / CATEGORIES_DIRNAME).exists()


class _StallingHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``archive`` (bytes): the first request stalls halfway, later ones honour Range."""

    archive, requests, release = b"", [], None

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.headers.get("Range"))
        start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if self.headers.get("Range") else 0
        body = self.archive[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if len(self.requests) == 1:  # send half, then stall (at most 5 s: the server stops by itself)
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.release.wait(5)
            return
        self.wfile.write(body)


def test_a_download_that_stalls_times_out_clearly_and_resumes_where_it_stopped(tmp_path, monkeypatch):
    # urlopen had no timeout: a server that stalled mid-transfer hung the download at 0% for ever.
    make_tree(tmp_path / "source", {"001.ant": 5, "002.bee": 5})
    archive = tmp_path / "archive.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "source" / CATEGORIES_DIRNAME, arcname=CATEGORIES_DIRNAME)
    payload, md5 = archive.read_bytes(), hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    handler = type("Handler", (_StallingHandler,), {"archive": payload, "requests": [],
                                                    "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url, root = f"http://127.0.0.1:{server.server_address[1]}/archive.tar", tmp_path / "root"
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError) as error:
            download_caltech256(root, url=url, md5=md5, timeout=0.5)
        assert time.monotonic() - started < 4
        message = str(error.value)
        partial = root / (data.CALTECH256_FILENAME + ".partial")
        assert f"The download of {url} stalled: no data for 0.5 s" in message and str(partial) in message
        assert partial.stat().st_size == len(payload) // 2  # what arrived is kept
        assert not (root / data.CALTECH256_FILENAME).exists()  # never taken for the archive

        categories = download_caltech256(root, url=url, md5=md5, timeout=0.5)
        assert handler.requests[-1] == f"bytes={len(payload) // 2}-"  # resumed, not restarted
        assert len(list(categories.glob("*/*.jpg"))) == 10 and not partial.exists()
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))


@pytest.mark.parametrize("preset", ["course", "standard"])
def test_transforms_shapes_and_randomness(preset, photo):
    evaluate = build_transforms(preset, 32, train=False)
    train = build_transforms(preset, 32, train=True)
    torch.manual_seed(0)
    first, second = evaluate(photo), evaluate(photo)
    assert first.shape == (3, 32, 32) and first.dtype == torch.float32
    assert torch.equal(first, second)
    augmented = [train(photo) for _ in range(4)]
    assert augmented[0].shape == (3, 32, 32)
    assert not all(torch.equal(augmented[0], other) for other in augmented[1:])


def test_eval_transform_resizes_then_crops_the_centre():
    names = [type(t).__name__ for t in build_transforms("standard", 224, train=False).transforms]
    assert names == ["ToImage", "Resize", "CenterCrop", "ToDtype", "Normalize"]
    assert build_transforms("standard", 224, train=False).transforms[1].size == [256]


def _share_of_other_pixels(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return (ours != theirs).any(0).float().mean().item()


@pytest.mark.parametrize("size", [(3, 64, 64), (3, 40, 53)])
def test_rotate_nearest_is_torchvisions_rotation_up_to_rounding_ties(size):
    from torchvision.transforms.v2 import functional as F
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(1, 256, size, dtype=torch.uint8, generator=generator)
    angles = (torch.rand(12, 2, generator=generator) * 90 - 45).tolist()
    for first, second in angles:
        assert _share_of_other_pixels(data.rotate_nearest(image, [first]), F.rotate(image, first)) < 0.002
        # Two rotations in a row compose into one lookup, rounding at each step as the two steps do.
        assert _share_of_other_pixels(data.rotate_nearest(image, [first, second]),
                                      F.rotate(F.rotate(image, first), second)) < 0.002
    floats = image.float() / 255
    assert _share_of_other_pixels(data.rotate_nearest(floats, [12.0]), F.rotate(floats, 12.0)) < 0.002


def test_course_preset_gives_the_images_torchvisions_rotations_gave(photo):
    # The two rotations are one uint8 lookup; the images, draw for draw, are torchvision's.
    from torchvision.transforms import v2
    before = v2.Compose([
        v2.ToImage(), v2.Resize(32), v2.CenterCrop(32), v2.RandomHorizontalFlip(0.5), v2.RandomVerticalFlip(0.5),
        v2.RandomRotation(45), v2.RandomAffine(degrees=45), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(data.IMAGENET_MEAN, data.IMAGENET_STD)])
    now = build_transforms("course", 32, train=True)
    for seed in range(20):
        torch.manual_seed(seed)
        expected = before(photo)
        torch.manual_seed(seed)
        assert _share_of_other_pixels(now(photo), expected) < 0.002, seed  # the same draws: the same views
    with pytest.raises(ValueError, match="one entry per rotation"):
        data.RandomRotations((45, 45), clockwise=(True,))


@pytest.mark.filterwarnings("ignore:.*does not have many workers")
def test_uint8_batches_are_normalised_after_the_transfer(tmp_path):
    make_tree(tmp_path, {"001.ant": 10, "002.bee": 10})
    plain = module(tmp_path, tmp_path, batch_size=4)
    raw = module(tmp_path, tmp_path, batch_size=4, uint8_batches=True)
    for dm in (plain, raw):
        dm.setup()
    images, labels = next(iter(raw.val_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 16, 16)  # one val image per class
    finished, same_labels = raw.on_after_batch_transfer((images, labels), 0)
    expected, expected_labels = next(iter(plain.val_dataloader()))
    assert torch.equal(same_labels, expected_labels)
    assert torch.allclose(finished, expected, atol=1e-5)
    assert plain.on_after_batch_transfer((expected, labels), 0)[0] is expected  # untouched when off

    # In a fit, Lightning calls the data module's hook: the training step sees normalised floats.
    import lightning as L

    class Check(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3 * 16 * 16, 2)
            self.seen = set()

        def training_step(self, batch, index):
            self.seen.add(batch[0].dtype)
            return torch.nn.functional.cross_entropy(self.layer(batch[0].flatten(1)), batch[1])

        def validation_step(self, batch, index):
            self.seen.add(batch[0].dtype)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    model = Check()
    L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=1, default_root_dir=tmp_path).fit(model, raw)
    assert model.seen == {torch.float32}
    with pytest.raises(ValueError, match="uint8 images"):
        data.normalize_batch(expected)


def test_resized_copy_keeps_layout_split_and_small_images(tmp_path):
    categories = make_tree(tmp_path / "full", {"001.ant": 5, "002.bee": 5})
    big = write_jpeg(categories / "001.ant" / "big.jpg", size=(90, 60))
    copy = data.make_resized_copy(tmp_path / "full", tmp_path / "small", short_side=30)
    resized = copy / CATEGORIES_DIRNAME
    assert Image.open(resized / "001.ant" / "big.jpg").size == (45, 30)
    small = resized / "002.bee" / "002_0001.jpg"  # 24 x 20 already: copied byte for byte
    assert small.read_bytes() == (categories / "002.bee" / "002_0001.jpg").read_bytes()
    assert check_data(copy) == [] and data.class_names(copy) == data.class_names(tmp_path / "full")
    splits = [Caltech256DataModule(root, image_size=16, num_workers=0) for root in (tmp_path / "full", copy)]
    for dm in splits:
        dm.setup()
    assert load_split(splits[0].split_path) == load_split(splits[1].split_path)  # the same images, the same split
    assert big.is_file()
    with pytest.raises(ValueError, match="another folder"):
        data.make_resized_copy(tmp_path / "full", tmp_path / "full")


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'course', 'standard'"):
        build_transforms("fancy", 224, train=True)
    with pytest.raises(ValueError, match="image_size"):
        build_transforms("course", 0, train=True)


def test_denormalize_inverts_normalisation(photo):
    image = build_transforms("course", 32, train=False)(photo)
    restored = denormalize(image)
    assert restored.min() >= 0 and restored.max() <= 1
    raw = torch.rand(2, 3, 4, 4)
    mean = torch.tensor(data.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(data.IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(denormalize((raw - mean) / std), raw, atol=1e-6)
    with pytest.raises(ValueError, match="3, H, W"):
        denormalize(torch.rand(4, 4))


def test_train_split_is_augmented_and_eval_splits_are_not(tmp_path):
    make_tree(tmp_path, {"001.ant": 10})
    dm = module(tmp_path, tmp_path, transforms="course", image_size=16)
    dm.setup()
    torch.manual_seed(0)
    for dataset in (dm.val_dataset, dm.test_dataset, dm.predict_dataloader().dataset):
        assert torch.equal(dataset[0][0], dataset[0][0])
    train_views = [dm.train_dataset[0][0] for _ in range(4)]
    assert not all(torch.equal(train_views[0], view) for view in train_views[1:])
    assert dm.predict_dataloader().dataset is dm.test_dataset


# ---------------------------------------------------------------------------
# The built-in sample set
# ---------------------------------------------------------------------------


def test_sample_set_files_and_split_are_committed_and_valid():
    categories = sample_data_root() / CATEGORIES_DIRNAME
    files = sorted(categories.glob("*/*.jpg"))
    assert len(files) == 160 and len({p.parent for p in files}) == 10
    assert sum(p.stat().st_size for p in files) < 2_000_000
    assert check_data(sample_data_root()) == []
    assert {Image.open(p).mode for p in files} == {"RGB", "L"}
    assert (sample_data_root() / "README.txt").read_text().count("NOT Caltech-256") == 1

    # The sample set's own split ships with it (not in the repository's data/splits/);
    # it is the split it always had, stratified 80/10/10 with seed 0.
    relative = [p.relative_to(categories).as_posix() for p in files]
    assert load_split(sample_data_root() / "split.csv") == make_split(relative)


def test_sample_set_batches(capsys):
    from involution._notices import new_command
    new_command()
    dm = Caltech256DataModule("sample", image_size=32, batch_size=8, num_workers=0)
    assert data.SAMPLE_SET_NOTICE in capsys.readouterr().out
    Caltech256DataModule("sample", image_size=32, num_workers=0)
    assert capsys.readouterr().out == ""  # the notice is shown once a command
    assert dm.is_sample_set and dm.num_classes == 10
    assert dm.class_names[:2] == ["astronaut", "cat"]
    assert data.class_names("sample") == dm.class_names  # the same list without a data module
    assert dm.uses_own_split and dm.split_path == sample_data_root() / "split.csv"
    dm.setup("fit")
    assert "train 120 | val 20 | test 20" in dm.describe() and "NOT Caltech-256" in dm.describe()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() < 10
    assert len(dm.train_dataloader()) == 15  # 120 / 8, the last incomplete batch dropped
    assert {label for _, label in dm.val_dataset.samples} == set(range(10))  # stratified


def test_data_module_works_with_lightning_cli_parsing(tmp_path, capsys):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(Caltech256DataModule, "data")
    # The sample set has its own fixed split: other fractions need a split file of one's own.
    split_file = str(tmp_path / "mine.csv")
    config = parser.parse_args(["--data.root", "sample", "--data.split", "[0.6, 0.2, 0.2]", "--data.num_workers", "0",
                                "--data.split_file", split_file, "--data.split_update", "extend"])
    dm = Caltech256DataModule(**config.data.as_dict())
    assert dm.fractions == (0.6, 0.2, 0.2) and dm.hparams.root == "sample" and dm.split_update == "extend"
    assert dm.split_path == tmp_path / "mine.csv"
    with pytest.raises(SystemExit):
        parser.parse_args(["--data.root", "sample", "--data.split_update", "merge"])
    assert "data.split_update" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Splits that match their data
# ---------------------------------------------------------------------------


def add_images(categories: Path, folder: str, names: list[str]) -> list[str]:
    for i, name in enumerate(names):
        write_jpeg(categories / folder / name, size=(24, 20), seed=100 + i)
    return [f"{folder}/{name}" for name in names]


def test_images_added_after_the_split_stop_with_counts_and_the_fix(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 10, "002.bee": 10})
    module(tmp_path, tmp_path).prepare_data()
    add_images(categories, "002.bee", [f"new_{i}.jpg" for i in range(7)])
    with pytest.raises(data.SplitMismatchError) as error:
        module(tmp_path, tmp_path).setup()
    message = str(error.value)
    assert str(tmp_path / "split.csv") in message and str(categories) in message
    assert "7 image(s) on disk are not in the split file" in message
    assert "0 image(s) in the split file are missing" in message
    assert "002.bee/new_0.jpg" in message and "... and 2 more" in message  # five examples
    assert "split_update extend" in message and "split_update rebuild" in message


def test_images_added_and_removed_are_both_counted(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 10, "002.bee": 10})
    module(tmp_path, tmp_path).prepare_data()
    add_images(categories, "001.ant", ["extra.jpg"])
    (categories / "002.bee" / "002_0003.jpg").unlink()
    with pytest.raises(data.SplitMismatchError) as error:
        module(tmp_path, tmp_path).setup()
    message = str(error.value)
    assert "1 image(s) on disk are not in the split file" in message and "001.ant/extra.jpg" in message
    assert "1 image(s) in the split file are missing" in message and "002.bee/002_0003.jpg" in message


def test_split_update_extend_adds_new_images_and_keeps_every_assignment(tmp_path, capsys):
    categories = make_tree(tmp_path, {"001.ant": 10, "002.bee": 10})
    module(tmp_path, tmp_path).prepare_data()
    before = load_split(tmp_path / "split.csv")
    new = add_images(categories, "002.bee", [f"new_{i:02d}.jpg" for i in range(10)])
    new += add_images(categories, "003.cat", [f"cat_{i:02d}.jpg" for i in range(10)])  # a new class

    dm = module(tmp_path, tmp_path, split_update="extend")
    dm.setup()
    after = load_split(tmp_path / "split.csv")
    assert {path: after[path] for path in before} == before  # nothing moved
    assert sorted(set(after) - set(before)) == sorted(new)
    # 002.bee grows from 10 (8/1/1) to 20: the new images fill val and test up to 2/2.
    assert counts_by_class(after) == {"001.ant": (8, 1, 1), "002.bee": (16, 2, 2), "003.cat": (8, 1, 1)}
    # A class that is entirely new is split exactly as make_split would split it.
    new_class = {p: s for p, s in after.items() if p.startswith("003.cat/")}
    assert new_class == make_split([p for p in new if p.startswith("003.cat/")])
    assert sum(map(len, (dm.train_dataset, dm.val_dataset, dm.test_dataset))) == 40
    assert "added 20 new image(s)" in capsys.readouterr().out
    # Deterministic: extending a second copy of the same files gives the same file.
    assert data.extend_split(before, new) == after


def test_split_update_extend_refuses_to_drop_missing_images(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 10})
    module(tmp_path, tmp_path).prepare_data()
    text = (tmp_path / "split.csv").read_text()
    (categories / "001.ant" / "001_0001.jpg").unlink()
    with pytest.raises(data.SplitMismatchError, match="extend only adds images"):
        module(tmp_path, tmp_path, split_update="extend").setup()
    assert (tmp_path / "split.csv").read_text() == text  # untouched


def test_split_update_rebuild_splits_the_files_present(tmp_path, capsys):
    categories = make_tree(tmp_path, {"001.ant": 10, "002.bee": 10})
    module(tmp_path, tmp_path).prepare_data()
    (categories / "001.ant" / "001_0001.jpg").unlink()
    add_images(categories, "002.bee", ["new.jpg"])
    dm = module(tmp_path, tmp_path, split_update="rebuild")
    dm.setup()
    on_disk = sorted(p.relative_to(categories).as_posix() for p in categories.glob("*/*.jpg"))
    assert load_split(tmp_path / "split.csv") == make_split(on_disk)
    assert "Rebuilt the split file" in capsys.readouterr().out
    # When split and files agree, split_update does nothing.
    stamp = (tmp_path / "split.csv").stat().st_mtime_ns
    module(tmp_path, tmp_path, split_update="rebuild").setup()
    assert (tmp_path / "split.csv").stat().st_mtime_ns == stamp


def test_unknown_split_update_is_rejected():
    with pytest.raises(ValueError, match="split_update.*'extend', 'rebuild'"):
        Caltech256DataModule("sample", split_update="merge", num_workers=0)


def test_two_data_folders_get_their_own_split_files(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    make_tree(first, {"001.ant": 5, "002.bee": 5})
    make_tree(second / "caltech256", {"001.owl": 4, "002.yak": 4, "003.zebu": 4})  # torchvision's layout
    modules = []
    for root in (first, second):
        dm = Caltech256DataModule(root, image_size=16, num_workers=0)
        dm.setup()
        modules.append(dm)
    name = "caltech256_seed0_80-10-10_with-clutter.csv"
    assert modules[0].split_path == first / "splits" / name
    assert modules[1].split_path == second / "caltech256" / "splits" / name  # next to 256_ObjectCategories
    assert data.default_split_dir(second) == second / "caltech256" / "splits"
    assert len(modules[0].train_dataset) + len(modules[0].val_dataset) + len(modules[0].test_dataset) == 10
    assert modules[1].num_classes == 3 and len(load_split(modules[1].split_path)) == 12


def test_a_data_sets_own_split_file_is_used_and_nothing_else_is_written(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 4, "002.bee": 4})
    own = {path: "train" for path in make_split([p.relative_to(categories).as_posix()
                                                  for p in categories.glob("*/*.jpg")])}
    own["001.ant/001_0001.jpg"] = own["002.bee/002_0001.jpg"] = "val"
    own["001.ant/001_0002.jpg"] = own["002.bee/002_0002.jpg"] = "test"
    data.save_split(own, tmp_path / "split.csv")
    before = sorted(tmp_path.rglob("*"))

    dm = Caltech256DataModule(tmp_path, image_size=16, num_workers=0)
    dm.prepare_data()
    dm.setup()
    assert dm.split_path == tmp_path / "split.csv"
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (4, 2, 2)
    assert sorted(tmp_path.rglob("*")) == before  # no splits/ folder, no other file

    # Its own split is not cut by seed and fractions: asking for them is an error that says what to do.
    with pytest.raises(ValueError) as error:
        Caltech256DataModule(tmp_path, split=(0.6, 0.2, 0.2), num_workers=0)
    assert "comes with its own split" in str(error.value) and "split_file" in str(error.value)
    with pytest.raises(ValueError, match="split_seed=3"):
        Caltech256DataModule(tmp_path, split_seed=3, num_workers=0)
    with pytest.raises(ValueError, match="split_dir="):
        Caltech256DataModule(tmp_path, split_dir=tmp_path / "splits", num_workers=0)
    # ... and an explicit split_file still makes a split of one's own.
    mine = module(tmp_path, tmp_path / "elsewhere", split=(0.5, 0.25, 0.25))
    mine.setup()
    assert mine.split_path == tmp_path / "elsewhere" / "split.csv" and len(mine.val_dataset) == 2


def test_split_dir_keeps_made_splits_out_of_the_data_folder(tmp_path):
    make_tree(tmp_path / "shared", {"001.ant": 5, "002.bee": 5})
    before = sorted((tmp_path / "shared").rglob("*"))
    dm = Caltech256DataModule(tmp_path / "shared", split_dir=tmp_path / "mine", image_size=16, num_workers=0)
    dm.prepare_data()
    dm.setup()
    assert dm.split_path == tmp_path / "mine" / "caltech256_seed0_80-10-10_with-clutter.csv"
    assert dm.split_path.is_file() and sorted((tmp_path / "shared").rglob("*")) == before
    assert len(dm.train_dataset) + len(dm.val_dataset) + len(dm.test_dataset) == 10


def test_an_unwritable_split_folder_warns_and_names_split_dir(tmp_path, monkeypatch):
    make_tree(tmp_path, {"001.ant": 5})

    def refuse(split, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(data.splits, "save_split", refuse)
    dm = Caltech256DataModule(tmp_path, image_size=16, num_workers=0)
    with pytest.warns(UserWarning, match="using the split in memory.*--data.split_dir"):
        dm.setup()
    assert len(dm.train_dataset) == 3 and not dm.split_path.exists()


def test_a_data_sets_own_split_is_never_updated(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 4})
    data.save_split(make_split(p.relative_to(categories).as_posix() for p in categories.glob("*/*.jpg")),
                    tmp_path / "split.csv")
    text = (tmp_path / "split.csv").read_text()
    add_images(categories, "001.ant", ["new.jpg"])
    for update in (None, "extend", "rebuild"):
        with pytest.raises(data.SplitMismatchError) as error:
            Caltech256DataModule(tmp_path, split_update=update, num_workers=0).setup()
        assert "data set's own split" in str(error.value) and "--data.split_file" in str(error.value)
    assert (tmp_path / "split.csv").read_text() == text


@pytest.mark.parametrize("rows, lines", [
    (["001.a/1.jpg,train", "001.a/2.jpg,val", "001.a/1.jpg,train"], "lines 2 and 4"),
    (["001.a/1.jpg,train", "001.a/1.jpg,test"], "lines 2 and 3"),
])
def test_split_file_listing_an_image_twice_is_rejected_with_line_numbers(tmp_path, rows, lines):
    path = tmp_path / "split.csv"
    path.write_text("\n".join(["path,split", *rows]) + "\n")
    with pytest.raises(ValueError) as error:
        load_split(path)
    message = str(error.value)
    assert str(path) in message and "001.a/1.jpg" in message and lines in message


# ---------------------------------------------------------------------------
# Every pixel format decoded to the right 8-bit RGB
# ---------------------------------------------------------------------------


def write_png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit PNG (grey + alpha, RGB or RGBA) written by hand: Pillow cannot write these."""
    color_type = {2: 4, 3: 2, 4: 6}[pixels.shape[2]]
    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)  # filter 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([16, color_type, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


def rgb_pixels(path: Path) -> np.ndarray:
    image = data.load_rgb_image(path)
    assert image.mode == "RGB"
    return np.asarray(image)


GREY_16 = np.array([[0, 255, 256, 1000], [32768, 40000, 65280, 65535]], dtype=np.uint16)
GREY_16_AS_8 = np.array([[0, 0, 1, 3], [128, 156, 255, 255]], dtype=np.uint8)  # the high byte


@pytest.mark.parametrize("suffix, dtype", [(".png", "<u2"), (".tif", ">u2"), (".tif", "<i4")])
def test_16_bit_and_32_bit_grey_images_keep_their_brightness(tmp_path, suffix, dtype):
    path = tmp_path / f"grey{suffix}"
    Image.fromarray(GREY_16.astype(dtype)).save(path)
    assert Image.open(path).mode in {"I;16", "I;16B", "I"}
    assert np.array_equal(rgb_pixels(path), np.repeat(GREY_16_AS_8[..., None], 3, axis=2))


def test_16_bit_colour_png_matches_16_bit_grey(tmp_path):
    rgb = np.stack([GREY_16, 65535 - GREY_16, GREY_16], axis=2)
    expected = np.stack([GREY_16_AS_8, 255 - GREY_16_AS_8, GREY_16_AS_8], axis=2)
    assert np.array_equal(rgb_pixels(write_png16(tmp_path / "rgb16.png", rgb)), expected)


def test_32_bit_grey_outside_the_16_bit_range_is_named(tmp_path):
    path = tmp_path / "wide.tif"
    Image.fromarray(np.array([[0, 70000], [-5, 3]], dtype=np.int32)).save(path)
    with pytest.raises(CorruptImageError) as error:
        data.load_rgb_image(path)
    message = str(error.value)
    assert str(path) in message and "-5" in message and "70000" in message and "0..65535" in message


def test_floating_point_images_are_named_not_called_corrupt(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.zeros((2, 2), dtype=np.float32)).save(path)
    with pytest.raises(CorruptImageError) as error:
        data.load_rgb_image(path)
    assert "mode F" in str(error.value) and "corrupt" not in str(error.value)


def palette_image(transparent_index: int | None) -> Image.Image:
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 0, 255, 10, 200, 30])
    image.putdata([0, 1, 2])
    if transparent_index is not None:
        image.info["transparency"] = transparent_index
    return image


def test_palette_images_are_looked_up_and_transparency_becomes_white(tmp_path):
    palette_image(None).save(tmp_path / "p.png")
    palette_image(1).save(tmp_path / "p_transparent.png")
    assert Image.open(tmp_path / "p_transparent.png").mode == "P"
    assert rgb_pixels(tmp_path / "p.png").tolist() == [[[255, 0, 0], [0, 0, 255], [10, 200, 30]]]
    assert rgb_pixels(tmp_path / "p_transparent.png").tolist() == [[[255, 0, 0], [255, 255, 255], [10, 200, 30]]]


@pytest.mark.parametrize("mode", ["LA", "RGBA", "LA16"])
def test_alpha_is_composited_on_white(tmp_path, mode):
    # Three pixels of one colour (grey 100 for LA), with alpha 255, 0 and 128.
    colour = np.array([100, 150, 200]) if mode == "RGBA" else np.array([100])
    alpha = np.array([[255], [0], [128]])
    pixels = np.concatenate([np.broadcast_to(colour, (3, colour.size)), alpha], axis=1)[None]  # 1 x 3 pixels
    if mode == "LA16":
        path = write_png16(tmp_path / "la16.png", pixels * 257)
    else:
        path = tmp_path / f"{mode}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        assert Image.open(path).mode == mode
    expected = colour * alpha / 255 + 255 * (1 - alpha / 255)  # "over" a white background
    rgb = rgb_pixels(path)[0].astype(int)
    assert np.abs(rgb - expected).max() <= 1
    assert rgb[1].tolist() == [255, 255, 255]  # fully transparent is white, not the stored colour


def test_cmyk_is_converted_with_known_values(tmp_path):
    image = Image.new("CMYK", (4, 1))
    image.putdata([(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 255, 0), (0, 0, 0, 255)])
    image.save(tmp_path / "cmyk.tif")
    assert rgb_pixels(tmp_path / "cmyk.tif").tolist() == [[[255, 255, 255], [0, 255, 255], [255, 0, 0], [0, 0, 0]]]


def test_check_data_passes_16_bit_images_that_decode_correctly(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 2})
    Image.fromarray(GREY_16).save(categories / "001.ant" / "deep.png")
    assert check_data(tmp_path) == []
    dm = module(tmp_path, tmp_path, split=(1.0, 0.0, 0.0))
    dm.setup()
    dm.train_dataset.transform = None
    by_name = {path.name: i for i, (path, _) in enumerate(dm.train_dataset.samples)}
    image, _ = dm.train_dataset[by_name["deep.png"]]
    assert np.array_equal(np.asarray(image)[..., 0], GREY_16_AS_8)


# ---------------------------------------------------------------------------
# Broken symbolic links are problems, not crashes or silent skips
# ---------------------------------------------------------------------------


@pytest.fixture
def broken_links(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 3, "002.bee": 3})
    loop = categories / "001.ant" / "loop.jpg"
    loop.symlink_to(loop.name)  # points at itself
    dangling = categories / "002.bee" / "gone.jpg"
    dangling.symlink_to(tmp_path / "nowhere.jpg")
    (categories / "002.bee" / "notes").symlink_to(tmp_path / "nowhere.txt")  # not an image name: ignored
    dangling_class = categories / "003.cow"
    dangling_class.symlink_to(tmp_path / "no-such-folder")
    return {"loop": loop, "dangling": dangling, "dangling_class": dangling_class}


def test_check_data_reports_symlink_loops_and_dangling_links(tmp_path, broken_links, capsys):
    problems = dict(check_data(tmp_path))
    assert set(problems) == set(broken_links.values())
    assert "loop" in problems[broken_links["loop"]]
    assert "dangling" in problems[broken_links["dangling"]] and "nowhere.jpg" in problems[broken_links["dangling"]]
    assert main_check_data(tmp_path) == 1
    output = capsys.readouterr().out
    for path in broken_links.values():
        assert str(path) in output
    assert "3 broken link(s)" in output


def test_data_module_names_broken_links_instead_of_crashing(tmp_path, broken_links):
    broken_links["dangling_class"].unlink()  # found when listing classes; here test the images
    with pytest.raises(FileNotFoundError) as error:
        module(tmp_path, tmp_path).setup()
    message = str(error.value)
    assert str(broken_links["loop"]) in message and str(broken_links["dangling"]) in message
    assert "check-data" in message


def test_a_class_folder_removed_after_the_split_is_a_mismatch(tmp_path):
    categories = make_tree(tmp_path, {"001.ant": 4, "002.bee": 4, "003.cat": 4})
    module(tmp_path, tmp_path).prepare_data()
    shutil.rmtree(categories / "003.cat")
    with pytest.raises(data.SplitMismatchError, match="4 image.s. in the split file are missing"):
        module(tmp_path, tmp_path).setup()


# An installed package never writes into its own folder, whatever the data module
# does (fit, test, check-data): tested on the installed wheel in tests/test_packaging.py.


def test_train_per_class_keeps_the_same_few_training_images_of_every_class():
    full = Caltech256DataModule("sample", image_size=32, num_workers=0)
    full.setup()
    few = Caltech256DataModule("sample", image_size=32, num_workers=0, train_per_class=3)
    few.setup()
    labels = [label for _, label in few.train_dataset.samples]
    assert sorted(set(labels)) == list(range(full.num_classes))
    assert all(labels.count(label) == 3 for label in set(labels))
    # The first three by path of each class: the same on every machine, and a subset of the full split.
    for label in set(labels):
        first = sorted(path for path, lab in full.train_dataset.samples if lab == label)[:3]
        assert sorted(path for path, lab in few.train_dataset.samples if lab == label) == first
    # Validation and test are untouched; the run record says how the training set was cut.
    assert len(few.val_dataset) == len(full.val_dataset) and len(few.test_dataset) == len(full.test_dataset)
    assert few.summary()["train_per_class"] == 3 and full.summary()["train_per_class"] is None
    with pytest.raises(ValueError, match="train_per_class must be an integer >= 1; got 0"):
        Caltech256DataModule("sample", train_per_class=0)


def test_an_unreadable_image_is_called_unreadable_not_corrupt(tmp_path, monkeypatch):
    # Permission denied was reported as "corrupt or truncated ... delete them".
    from involution.data import images
    path = tmp_path / "photo.jpg"
    write_jpeg(path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(images.Image, "open", denied)
    with pytest.raises(images.CorruptImageError, match="permission denied.*make it readable") as error:
        images.load_rgb_image(path)
    assert "corrupt" not in str(error.value) and "delete" not in str(error.value)


def test_a_file_name_that_is_not_utf8_is_named_by_check_data_and_by_the_data_module(tmp_path, capsys):
    # check-data said "All images decode", then fit crashed with a UnicodeEncodeError naming no file.
    categories = make_tree(tmp_path, {"001.ant": 3, "002.bee": 3})
    with open(os.fsencode(categories / "001.ant") + b"/caf\xe9.jpg", "wb") as file:
        file.write((categories / "001.ant" / "001_0001.jpg").read_bytes())
    assert main_check_data(tmp_path) == 1
    out = capsys.readouterr().out
    assert "is not valid UTF-8" in out and "caf\\xe9.jpg" in out and "All images decode" not in out
    with pytest.raises(ValueError, match=r"cannot be used as named:\n.*caf\\udce9.jpg: its name is not valid UTF-8"):
        module(tmp_path, tmp_path).setup()
