"""A trained model outside its data set: predict on image files, save and load a shareable folder."""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import involution
from involution.__main__ import main
from involution.data.presets import build_transforms
from involution.inference import ImageError, predict, transforms_for
from involution.models import RedNet, ResNet, create_model
from involution.models.hub import from_pretrained, model_from_checkpoint, save_pretrained
from involution.train.apply import image_paths_in
from involution.train.checkpoints import read_checkpoint
from involution.train.cli import run_cli
from involution.train.module import ImageClassifier

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def best_checkpoint(tmp_path_factory):
    """A tiny RedNet's run on the sample set: one batch of one epoch (what it predicts does not matter,
    only that the command line and the library agree with it)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "disabled")
        run_cli(["fit", "--config", "quick_sample", "--model.model_name", "test_rednet",
                 "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false", "--data.image_size", str(IMAGE_SIZE),
                 "--data.num_workers", "0", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
                 "--trainer.limit_val_batches", "1", "--model.small_input", "true"])
    (best,) = root.glob("*/*/checkpoints/best.ckpt")
    return best


@pytest.fixture(scope="module")
def class_names(best_checkpoint):
    return read_checkpoint(best_checkpoint)["Caltech256DataModule"]["class_names"]


def photo(path: Path, seed: int, size=(45, 37)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


# -- sharing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls, options", [
    ("test_rednet", RedNet, {"small_input": True, "planes": 16, "group_channels": 8, "drop_rate": 0.1}),
    ("test_resnet", ResNet, {"small_input": True, "planes": 8, "drop_rate": 0.1}),
])
def test_a_saved_model_loads_with_identical_logits_its_options_and_class_names(tmp_path, name, cls, options):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, **options).eval()
    with torch.no_grad():  # trained-like batch-norm statistics, so that a wrong load shows
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path / "shared", label_names=["cat", "hot dog", "fire, truck"])
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["config.json", "model.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "shared" / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask  # not private
    config = json.loads((tmp_path / "shared" / "config.json").read_text())
    assert config["architecture"] == name and config["num_classes"] == 3
    assert config["model_args"] == options
    assert config["label_names"] == ["cat", "hot dog", "fire, truck"]
    assert config["pretrained_cfg"]["input_size"] == [3, 224, 224]

    loaded = involution.from_pretrained(tmp_path / "shared")
    same_class = cls.from_pretrained(tmp_path / "shared")
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(loaded(x), expected) and torch.equal(same_class(x), expected)
    assert type(loaded) is cls and not loaded.training
    assert loaded.pretrained_cfg["label_names"] == ["cat", "hot dog", "fire, truck"]
    assert loaded.small_input is True and loaded.num_classes == 3


def test_from_pretrained_of_another_class_and_of_no_saved_model_say_so(tmp_path):
    create_model("test_resnet", num_classes=2).save_pretrained(tmp_path / "resnet")
    with pytest.raises(TypeError, match="holds a ResNet"):
        RedNet.from_pretrained(tmp_path / "resnet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        from_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_pretrained(tmp_path / "nothing" / "here")


def test_a_model_built_by_its_class_cannot_be_saved_without_its_name(tmp_path):
    with pytest.raises(ValueError, match="create_model"):
        save_pretrained(RedNet((1, 1, 1, 1), num_classes=2, planes=16), tmp_path / "out")


# -- the preprocessing ----------------------------------------------------------------------------

def test_a_checkpoints_model_has_its_runs_classes_and_evaluation_transform(best_checkpoint, class_names, tmp_path):
    model = model_from_checkpoint(best_checkpoint)
    assert model.pretrained_cfg["label_names"] == class_names and model.num_classes == len(class_names)
    assert model.pretrained_cfg["input_size"] == (3, IMAGE_SIZE, IMAGE_SIZE)
    image = Image.open(photo(tmp_path / "a.png", 0)).convert("RGB")
    # The data module's evaluation transform at the run's image size: what `test` uses.
    assert torch.equal(transforms_for(model)(image), build_transforms("standard", IMAGE_SIZE, train=False)(image))
    # A model just built takes ImageNet's 224 px view: resize to 256, crop the centre.
    assert transforms_for(create_model("test_rednet"))(image).shape == (3, 224, 224)


# -- predict ----------------------------------------------------------------------------------

def test_predict_finds_files_folders_and_patterns_and_ranks_as_the_trained_module(best_checkpoint, class_names,
                                                                                  tmp_path):
    a = photo(tmp_path / "a.jpg", 1)
    folder = [photo(tmp_path / "folder" / "b.png", 2), photo(tmp_path / "folder" / "sub" / "c.png", 3)]
    (tmp_path / "folder" / "notes.txt").write_text("not an image, and not named like one: left out")
    pattern = [photo(tmp_path / "glob" / "d.png", 4), photo(tmp_path / "glob" / "e.png", 5)]
    photo(tmp_path / "glob" / "f.jpg", 6)  # not matched by the pattern
    results = predict(best_checkpoint, [a, tmp_path / "folder", str(tmp_path / "glob" / "*.png"), a], topk=3)
    assert [r.path for r in results] == [a, *folder, *pattern]

    module = ImageClassifier.load_from_checkpoint(best_checkpoint, map_location="cpu").eval()
    transform = build_transforms("standard", IMAGE_SIZE, train=False)
    for result in results:
        with torch.no_grad():
            probabilities = module(transform(Image.open(result.path).convert("RGB"))[None]).softmax(1)[0]
        values, indices = probabilities.topk(3)
        assert result.indices == indices.tolist()
        assert result.labels == [class_names[i] for i in indices.tolist()]
        assert result.probabilities == pytest.approx(values.tolist(), abs=1e-5)


def test_predict_names_a_missing_or_unreadable_image(best_checkpoint, tmp_path):
    (tmp_path / "bad.jpg").write_text("not a JPEG")
    with pytest.raises(ImageError, match="Cannot read image .*bad.jpg: .*corrupt, truncated, or not an image"):
        predict(best_checkpoint, tmp_path / "bad.jpg")
    with pytest.raises(ImageError, match="missing.png: no such file or folder"):
        predict(best_checkpoint, [tmp_path / "missing.png"])
    reported = predict(best_checkpoint, [tmp_path / "bad.jpg", photo(tmp_path / "ok.png", 7)], errors="report")
    assert "bad.jpg" in reported[0].error and reported[0].labels == []
    assert reported[1].error is None and len(reported[1].labels) == 5


def test_the_command_line_tells_images_from_option_values():
    assert image_paths_in(["--config", "quick_sample", "--ckpt_path", "best.ckpt"]) == []  # the test split's
    assert image_paths_in(["--ckpt_path", "best.ckpt", "a.jpg", "--verbose", "photos/", "--topk=3",
                           "glob/*.png"]) == ["a.jpg", "photos/", "glob/*.png"]


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_predict_command_prints_the_top_5_and_writes_them_to_csv(best_checkpoint, class_names, tmp_path, capsys):
    a = photo(tmp_path / "a.jpg", 8)
    b = photo(tmp_path / "photos" / "b.png", 9)
    c = photo(tmp_path / "glob" / "c.png", 10)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 cut off")
    output = tmp_path / "out" / "predictions.csv"
    status = main(["predict", "--ckpt_path", str(best_checkpoint), str(a), str(tmp_path / "photos"),
                   str(tmp_path / "glob" / "*.png"), str(tmp_path / "bad.jpg"), str(tmp_path / "missing.jpg"),
                   "--output", str(output)])
    shown = capsys.readouterr()
    assert status == 1  # two of the five could not be read
    expected = predict(best_checkpoint, [a, b, c])
    lines = shown.out.splitlines()
    for result, line in zip(expected, lines):
        assert line == result.line() and line.startswith(f"{result.path}: ")
        assert [part.rsplit(" ", 1)[0] for part in line.split(": ", 1)[1].split(", ")] == result.labels
        assert set(result.labels) <= set(class_names) and len(result.labels) == 5
    assert lines[3] == f"Predictions for 3 images written to {output} (2 could not be read: listed above, " \
                       "and in the file's error column)"
    errors = shown.err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"error: Cannot read image {tmp_path / 'bad.jpg'}: ")
    assert errors[1] == f"error: {tmp_path / 'missing.jpg'}: no such file or folder"

    rows = read_rows(output)
    assert [row["path"] for row in rows] == [str(a), str(b), str(c), str(tmp_path / "bad.jpg"),
                                             str(tmp_path / "missing.jpg")]
    for row, result in zip(rows, expected):
        assert json.loads(row["top5"]) == result.labels and row["predicted"] == result.labels[0]
        assert float(row["probability"]) == pytest.approx(result.probabilities[0], abs=1e-4)
        assert json.loads(row["top5_probabilities"]) == pytest.approx(result.probabilities, abs=1e-4)
        assert row["error"] == ""
    assert "bad.jpg" in rows[3]["error"] and rows[3]["top5"] == "" and rows[4]["predicted"] == ""


def test_predict_command_writes_into_the_runs_evaluations_by_default(best_checkpoint, tmp_path, capsys):
    a = photo(tmp_path / "a.jpg", 11)
    assert main(["predict", "--ckpt_path", str(best_checkpoint), str(a), "--topk", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    run = best_checkpoint.parent.parent
    written = sorted(run.glob("evaluations/*-predict/predictions.csv"))[-1]
    assert out[-1] == f"Predictions for 1 image written to {written}"
    (row,) = read_rows(written)
    assert row["path"] == str(a) and len(json.loads(row["top2"])) == 2


def test_predict_command_refuses_training_options_with_images(best_checkpoint, tmp_path, capsys):
    status = main(["predict", "--ckpt_path", str(best_checkpoint), str(photo(tmp_path / "a.png", 12)),
                   "--config", "quick_sample"])
    assert status == 2
    assert "takes only --ckpt_path" in capsys.readouterr().err


# -- export -------------------------------------------------------------------------------------

def test_export_writes_a_folder_that_from_pretrained_loads_as_the_checkpoint(best_checkpoint, class_names,
                                                                             tmp_path, capsys):
    folder = tmp_path / "shared"
    assert main(["export", "--ckpt_path", str(best_checkpoint), "--to", str(folder)]) == 0
    assert f"to {folder}" in capsys.readouterr().out
    loaded = from_pretrained(folder)
    original = model_from_checkpoint(best_checkpoint)
    x = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        assert torch.equal(loaded(x), original(x))
    assert loaded.pretrained_cfg["label_names"] == class_names
    assert loaded.pretrained_cfg["input_size"] == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert loaded.small_input is True
    image = photo(tmp_path / "a.png", 13)
    from_folder, from_checkpoint = predict(folder, image)[0], predict(best_checkpoint, image)[0]
    assert from_folder.labels == from_checkpoint.labels
    assert from_folder.probabilities == pytest.approx(from_checkpoint.probabilities, abs=1e-6)


def test_export_refuses_a_missing_checkpoint_and_a_folder_in_use_in_one_line(best_checkpoint, tmp_path, capsys):
    assert main(["export", "--ckpt_path", str(tmp_path / "nothing.ckpt"), "--to", str(tmp_path / "a")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"error: checkpoint {tmp_path / 'nothing.ckpt'} does not exist")
    assert not (tmp_path / "a").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert main(["export", "--ckpt_path", str(best_checkpoint), "--to", str(tmp_path / "used")]) == 1
    error = capsys.readouterr().err
    assert error == f"error: {tmp_path / 'used'} exists and is not empty: export into a new or empty folder " \
                    "(nothing was written)\n"
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["notes.txt"]
