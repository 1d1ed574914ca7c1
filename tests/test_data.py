"""Tests of involution.data: layout, split, decoding, download, transforms, sample set.

Every data set here is a few tiny JPEGs written by the test into tmp_path, and
every data module gets an explicit ``split_file`` inside tmp_path, so no test
writes into the repository's data/splits/.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import random
import tarfile
import threading
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
    categories = make_tree(tmp_path, {"001.ant": 30, "002.bee": 3})
    module(tmp_path, tmp_path).prepare_data()
    removed = sorted(categories.glob("001.ant/*.jpg"))[:25]
    for path in removed:
        path.unlink()
    with pytest.raises(FileNotFoundError) as error:
        module(tmp_path, tmp_path).setup()
    message = str(error.value)
    assert "25 image(s) that are missing" in message
    assert "001.ant/001_0001.jpg" in message and "001.ant/001_0020.jpg" in message
    assert "001.ant/001_0021.jpg" not in message and "and 5 more" in message
    assert "delete" in message and "regenerate" in message


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
    assert "download=True" in message and "data/README.md" in message


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


def test_download_verifies_extracts_and_sets_up(tmp_path, served_archive):
    url, md5 = served_archive
    root = tmp_path / "downloaded"
    categories = download_caltech256(root, url=url, md5=md5)
    assert categories == root / CATEGORIES_DIRNAME
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
    monkeypatch.setattr(data, "CALTECH256_URL", url)
    monkeypatch.setattr(data, "CALTECH256_MD5", md5)
    dm = module(tmp_path / "root", tmp_path, download=True)
    assert dm.num_classes == 257  # promised before the download
    with pytest.raises(RuntimeError, match="has 2 classes, not the 257"):
        dm.prepare_data()


def test_download_with_wrong_md5_fails_clearly(tmp_path, served_archive):
    url, md5 = served_archive
    with pytest.raises(RuntimeError) as error:
        download_caltech256(tmp_path / "bad", url=url, md5="0" * 32)
    message = str(error.value)
    assert f"has MD5 {md5}, expected {'0' * 32}" in message and "data/README.md" in message
    assert not (tmp_path / "bad" / data.CALTECH256_FILENAME).exists()
    assert not (tmp_path / "bad" / CATEGORIES_DIRNAME).exists()


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

    split_path = data.default_split_dir(sample_data_root()) / "sample_seed0_80-10-10.csv"
    relative = [p.relative_to(categories).as_posix() for p in files]
    assert load_split(split_path) == make_split(relative)  # the committed file is current


def test_sample_set_batches(capsys, monkeypatch):
    monkeypatch.setattr(data, "_notice_shown", False)
    dm = Caltech256DataModule("sample", image_size=32, batch_size=8, num_workers=0)
    assert data.SAMPLE_SET_NOTICE in capsys.readouterr().out
    Caltech256DataModule("sample", image_size=32, num_workers=0)
    assert capsys.readouterr().out == ""  # the notice is shown once
    assert dm.is_sample_set and dm.num_classes == 10
    assert dm.class_names[:2] == ["astronaut", "cat"]
    assert data.class_names("sample") == dm.class_names  # the same list without a data module
    assert dm.split_path.name == "sample_seed0_80-10-10.csv"
    dm.setup("fit")
    assert "train 120 | val 20 | test 20" in dm.describe() and "NOT Caltech-256" in dm.describe()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() < 10
    assert len(dm.train_dataloader()) == 15  # 120 / 8, the last incomplete batch dropped
    assert {label for _, label in dm.val_dataset.samples} == set(range(10))  # stratified


def test_data_module_works_with_lightning_cli_parsing():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(Caltech256DataModule, "data")
    config = parser.parse_args(["--data.root", "sample", "--data.split", "[0.6, 0.2, 0.2]", "--data.num_workers", "0"])
    dm = Caltech256DataModule(**config.data.as_dict())
    assert dm.fractions == (0.6, 0.2, 0.2) and dm.hparams.root == "sample"
    assert dm.split_path.name == "sample_seed0_60-20-20.csv"
