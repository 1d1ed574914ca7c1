"""The built-in shapes set: disjoint by source across splits, deterministic, re-creatable, loadable."""
import csv
import io
from collections import Counter, defaultdict
from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from involution.data import Caltech256DataModule, load_split, shapes

SMALL = {"train": 3, "val": 2, "test": 2}  # images per class: a set made in a second


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return shapes.generate_shapes(tmp_path_factory.mktemp("shapes") / "set", seed=0, sizes=SMALL)


@pytest.fixture(scope="module")
def full_records():
    return shapes.draw_records(seed=0)


def sources_by_split(records):
    """{split: set of photographs used for backgrounds or textures}."""
    used = defaultdict(set)
    for record in records:
        used[record.split].add(record.photo)
        if record.texture_photo:
            used[record.split].add(record.texture_photo)
    return used


def test_full_set_sizes_give_usable_confidence_intervals(full_records):
    counts = Counter((r.split, r.label) for r in full_records)
    per_split = Counter(r.split for r in full_records)
    assert per_split == {"train": 4000, "val": 1000, "test": 2500}
    assert len(shapes.SHAPE_CLASSES) >= 10
    assert set(counts.values()) == {400, 100, 250}  # balanced: every class equally often per split
    # A test top-1 of 80% or more is known to +-1.6 points (95%, binomial) or better.
    assert 1.96 * (0.8 * 0.2 / per_split["test"]) ** 0.5 < 0.016


def test_training_never_shares_a_photograph_with_validation_or_test(full_records):
    used = sources_by_split(full_records)
    for held_out in ("val", "test"):
        assert not used["train"] & used[held_out], (held_out, used["train"] & used[held_out])
    # Validation and test share the held-out pool, so validation is a fair guide to test ...
    assert shapes.PHOTO_POOLS["val"] == shapes.PHOTO_POOLS["test"]
    assert len(used["val"] & used["test"]) >= 5
    # ... and every photograph a split used is in that split's pool.
    for split, photos in used.items():
        assert photos <= set(shapes.PHOTO_POOLS[split])


def test_pools_hold_different_photographs():
    # Names are not enough: scikit-image ships the same cat as "cat" and "chelsea".
    # Compare small grey thumbnails of every pair of photographs in different pools.
    thumbs = {}
    for split, photos in shapes.PHOTO_POOLS.items():
        for photo in photos:
            grey = shapes.load_photo(photo).convert("L").resize((24, 24), Image.Resampling.BILINEAR)
            values = np.asarray(grey, dtype=np.float64).ravel()
            thumbs[photo] = (split, (values - values.mean()) / (values.std() + 1e-9))
    for (a, (split_a, x)), (b, (split_b, y)) in combinations(thumbs.items(), 2):
        if "train" in (split_a, split_b) and split_a != split_b:
            assert float(np.mean(x * y)) < 0.9, f"{a} ({split_a}) looks like {b} ({split_b})"


def test_splits_draw_from_independent_random_streams(full_records):
    seeds = defaultdict(set)
    for record in full_records:
        seeds[record.split].add(record.noise_seed)
    for a, b in combinations(seeds, 2):
        assert not seeds[a] & seeds[b]
    # A split's draws do not depend on how many images the other splits have.
    fewer = shapes.draw_records(seed=0, sizes={"train": 1, "val": 60, "test": shapes.SPLIT_SIZES["test"]})
    assert [r for r in fewer if r.split == "test"] == [r for r in full_records if r.split == "test"]


def test_generated_files_match_their_records(small_set):
    records = shapes.read_sources(small_set)
    assert records == shapes.draw_records(seed=0, sizes=SMALL)
    split = load_split(small_set / "split.csv")
    assert split == {r.path: r.split for r in records}
    for record in records[:: max(1, len(records) // 8)]:
        stored = np.asarray(Image.open(small_set / "256_ObjectCategories" / record.path))
        buffer = io.BytesIO()
        shapes.render(record).save(buffer, format="JPEG", quality=shapes.JPEG_QUALITY)
        assert np.array_equal(stored, np.asarray(Image.open(buffer))), record.path
        assert stored.shape == (shapes.SIZE, shapes.SIZE, 3)


def test_no_image_appears_in_two_splits(small_set):
    by_pixels = defaultdict(set)
    with open(small_set / "split.csv", newline="") as file:
        for row in csv.DictReader(file):
            pixels = np.asarray(Image.open(small_set / "256_ObjectCategories" / row["path"]))
            by_pixels[pixels.tobytes()].add(row["split"])
    assert all(len(splits) == 1 for splits in by_pixels.values())


def test_generation_is_deterministic(small_set, tmp_path):
    again = shapes.generate_shapes(tmp_path / "again", seed=0, sizes=SMALL)
    for name in ("split.csv", "sources.csv"):
        assert (again / name).read_bytes() == (small_set / name).read_bytes()
    first = sorted((small_set / "256_ObjectCategories").rglob("*.jpg"))
    assert [p.read_bytes() for p in first] == [
        (again / p.relative_to(small_set)).read_bytes() for p in first]


def test_the_shape_is_where_its_record_says(small_set):
    # The label is really drawn: a solid shape's colour is at its centre.
    for record in shapes.read_sources(small_set):
        if record.fill != "solid" or record.label in ("ring", "crescent") or record.strokes:
            continue
        x, y = (round(c * shapes.SIZE) for c in record.center)
        pixel = np.asarray(shapes.render(record), dtype=float)[y, x]
        assert np.abs(pixel - record.color).max() < 40, record


def test_data_module_reads_the_generated_set(tmp_path, monkeypatch):
    monkeypatch.setenv("INVOLUTION_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(shapes, "SPLIT_SIZES", SMALL)
    dm = Caltech256DataModule("shapes", image_size=32, batch_size=4, num_workers=0)
    dm.setup()
    assert dm.kind == "shapes" and not dm.is_sample_set
    assert dm.num_classes == len(shapes.SHAPE_CLASSES)
    assert dm.split_path == tmp_path / f"shapes-v{shapes.VERSION}-seed0" / "split.csv"
    assert [len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)] == [30, 20, 20]
    summary = dm.summary()
    assert summary["kind"] == "shapes" and "NOT Caltech-256" in summary["name"]
    assert summary["root"] == "shapes" and str(tmp_path) not in str(summary)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32)
    # Used again, not generated again.
    stamp = (tmp_path / f"shapes-v{shapes.VERSION}-seed0" / "split.csv").stat().st_mtime_ns
    Caltech256DataModule("shapes", image_size=32).setup()
    assert (tmp_path / f"shapes-v{shapes.VERSION}-seed0" / "split.csv").stat().st_mtime_ns == stamp


def test_a_set_finished_by_another_process_first_is_kept(small_set, tmp_path):
    # Two processes (DDP ranks, two notebooks) may generate the set at once: the
    # slower one finds the folder complete and leaves it as it is.
    before = (small_set / "split.csv").read_bytes()
    assert shapes.generate_shapes(small_set, seed=0, sizes=SMALL) == small_set
    assert (small_set / "split.csv").read_bytes() == before
    assert not [p for p in small_set.parent.iterdir() if p.name.startswith(".generating-")]


def test_every_outline_stays_within_its_radius():
    # The placement keeps a circle of the drawn radius inside the evaluation crop.
    for name, points in shapes._POLYGONS.items():
        assert max(np.hypot(x, y) for x, y in points) == pytest.approx(1.0), name


def test_generation_leaves_nothing_behind_a_killed_one_and_a_set_others_can_read(tmp_path):
    # A generation killed midway left its .generating-* folder for ever; tempfile's 0700
    # folder became the set's folder, unreadable to the other users of a shared data home.
    import os
    import socket
    home = tmp_path / "home"
    home.mkdir()
    killed = home / f".generating-999999999@{socket.gethostname()}.abcd"  # a process that no longer runs
    other_machine = home / ".generating-12@another-host.efgh"  # may still be running there: kept
    other_machine.mkdir()
    (killed / "256_ObjectCategories").mkdir(parents=True)
    mask = os.umask(0o022)
    try:
        made = shapes.generate_shapes(home / "set", seed=0, sizes=SMALL)
    finally:
        os.umask(mask)
    assert not killed.exists()
    assert sorted(p.name for p in home.iterdir()) == [other_machine.name, "set"]
    assert made.stat().st_mode & 0o777 == 0o755


def _record(label: str, center, radius: float, fill: str = "solid") -> shapes.ShapeRecord:
    """A shape on its own: landmarks read only its outline (class, centre, size, angle, fill)."""
    return shapes.ShapeRecord(path="x.jpg", split="test", label=label, photo="", crop=(0, 0, 1, 1), flip=False,
                              tint=(1.0, 1.0, 1.0), center=center, radius=radius, angle=0.0, fill=fill,
                              color=(255, 0, 0), texture_photo="", texture_crop=(0, 0, 1, 1), strokes=(),
                              noise_seed=0, noise_std=0.0)


@pytest.mark.parametrize("record", [
    _record("circle", (0.55, 0.5), 0.45),             # fills the image: its outline runs along the border
    _record("square", (0.5, 0.5), 0.2, "outline"),    # hollow: its stroke is all there is of it
    _record("star", (0.3, 0.7), 0.15),
], ids=["large circle", "hollow square", "small star"])
def test_landmarks_are_three_different_places(record):
    size = shapes.SIZE
    marks = shapes.landmarks(record, size)
    for (a, p), (b, q) in combinations(marks.items(), 2):
        assert max(abs(p[0] - q[0]), abs(p[1] - q[1])) >= size / 8, (a, b, marks)
    row, col = marks["outline"]
    assert size / 8 - 1 <= row <= size - size / 8 and size / 8 - 1 <= col <= size - size / 8  # off the border


def test_a_data_home_that_is_a_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    # INVOLUTION_DATA_HOME pointing at a file gave a bare FileExistsError from deep inside.
    from involution.data.constants import data_home
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    monkeypatch.setenv("INVOLUTION_DATA_HOME", str(a_file))
    with pytest.raises(ValueError, match=r"is a file, not a folder: point \$INVOLUTION_DATA_HOME at a folder"):
        data_home()
