"""The slide deck: built from slides/ data, up to date, and shown by a real headless browser.

The browser tests drive Debian's Chromium through its matching chromedriver
with Selenium, entirely offline (nothing is downloaded). ``./test.sh``
installs both on first use when run as root on Debian/Ubuntu; elsewhere
install them yourself (see the failure message).
"""
import html
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from matplotlib.colors import to_hex
from PIL import Image, ImageStat

from involution.train.runs import Run
from involution.workbook import deck

REPO = Path(__file__).resolve().parents[1]
SLIDES = REPO / "slides"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_FIX = ("install Debian's Chromium and its driver: `sudo apt-get install -y chromium "
               "chromium-driver` (./test.sh does this by itself when run as root), or set "
               "CHROME_BINARY and CHROMEDRIVER to their paths")


# -- building ------------------------------------------------------------------------------


def _fake_slides(tmp_path: Path, sample: bool = True, kind: str | None = None,
                 seeds: dict | None = None) -> Path:
    """A slides folder with tiny figures and fake runs, written by write_deck_data.

    ``seeds``: {seed: (RedNet test top-1, ResNet test top-1)}; one seed by default.
    """
    slides = tmp_path / "slides"
    (slides / "figures").mkdir(parents=True)
    for name in deck.FIGURES.values():
        Image.new("RGB", (40, 30), (200, 30, 30)).save(slides / "figures" / name)
    kind = kind or ("sample" if sample else "caltech256")
    runs = {}
    for seed, tops in (seeds or {0: (0.35, 0.30)}).items():
        for (model, params), test_top1 in zip((("rednet26", 7_204_656), ("resnet26", 11_668_042)), tops):
            folder = tmp_path / "runs" / f"{model}_{kind}_seed{seed}" / "20260101-000000"
            folder.mkdir(parents=True)
            (folder / "results.json").write_text(json.dumps({
                "model": model, "params": params, "epochs_trained": 15, "best_val_top1": test_top1 + 0.05,
                "best_val_top5": 0.9, "test_top1": test_top1, "test_top5": 0.85, "seed": seed,
                "dataset": {"is_sample_set": kind == "sample", "kind": kind, "image_size": 64},
                "config": {"model": {"model_name": model,
                                     "optimizer": {"name": "adamw", "lr": 0.002, "momentum": 0.9,
                                                   "weight_decay": 0.05}},
                           "data": {"batch_size": 32, "transforms": "light"}},
                "machine": {"cpu": "Test CPU", "cpu_threads": 2, "gpu": None}}))
            (folder / "metrics.csv").write_text("epoch,step,val/top1\n0,7,0.3\n")
            runs[f"{model}_seed{seed}"] = Run.load(folder)
    rows = [{"model": "rednet26", "params": 9_233_166, "gmacs": 1.685, "involution_gmacs": 0.034,
             "mmcv_style_gflops": 1.71, "reported_params_m": 9.23, "reported_gflops": 1.73,
             "reported_by": "paper", "gap_percent": -1.1},
            {"model": "resnet26", "params": 13_696_552, "gmacs": 2.342, "involution_gmacs": 0.0,
             "mmcv_style_gflops": 2.361, "reported_params_m": None, "reported_gflops": None,
             "reported_by": "", "gap_percent": None}]
    deck.write_deck_data(slides, runs=runs, data_statement="Training data: test data.",
                         complexity_rows=rows, complexity_input_size=(3, 224, 224),
                         kernels={"weights": "Weights: test weights.", "image": "chelsea",
                                  "image_size": 128, "summary": "deviation"})
    return slides


def test_deck_numbers_come_from_the_data_and_sample_results_say_so(tmp_path):
    slides = _fake_slides(tmp_path)
    assert (slides / "data" / "runs" / "rednet26_seed0" / "results.json").is_file()
    page = deck.render_deck(slides)
    # without notebook 04's two, whose data is absent; with the question and the limitations
    assert len(re.findall(r'<section class="slide[ "]', page)) == 19
    assert "40.0%" in page and "35.0%" in page  # best val top-1 of the two runs
    assert "7.20M" in page and "11.67M" in page
    assert "sample set (memorisation check), not Caltech-256" in page
    assert "reported by the original course project" in page and "60.05%" in page
    assert "+4.40 points (50.6% → 55.0%)" in html.unescape(page)  # the reported ablation's step
    assert "reported by Li et al." in page and "75.96%" in page
    assert "RedNet-26 has 67% of ResNet-26's parameters" in html.unescape(page)  # complexity rows
    assert 'src="figures/training_curves.png"' in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch: works offline


def _slide_containing(page: str, heading: str) -> str:
    return next(s for s in re.split(r'<section class="slide[^"]*">', page) if f"<h2>{heading}" in s)


def test_numbers_from_different_data_never_share_a_column(tmp_path):
    page = html.unescape(deck.render_deck(_fake_slides(tmp_path)))
    results = _slide_containing(page, "Results")
    table = results.split("<table>")[1].split("</table>")[0]
    assert "ImageNet" not in table and "Caltech" not in table and "reported" not in table
    assert "75.96% top-1 for RedNet-26, reported by Li et al." in results  # a sentence, apart
    findings = _slide_containing(page, "What the course project found")
    assert "Caltech-256" in findings.split("</table>")[0] and "35.0%" not in findings


def test_data_badges_only_on_slides_about_data(tmp_path):
    page = deck.render_deck(_fake_slides(tmp_path))
    for heading in ("Convolution vs involution", "Generating the kernels", "What an involution costs",
                    "What the course project found"):
        assert 'class="badge"' not in _slide_containing(page, heading), heading
    for heading in ("The data", "Results", "The training recipe"):
        assert 'class="badge"' in _slide_containing(page, heading), heading
    assert "built by python -m involution deck" not in page  # no build boilerplate in footers


def test_title_slide_authors_are_a_setting(tmp_path, capsys):
    slides = _fake_slides(tmp_path)
    assert "class=\"authors\"" not in deck.render_deck(slides)
    (slides / deck.SETTINGS).write_text('title = "My talk"\nauthors = ["Ada L.", "Alan T."]\n')
    page = deck.render_deck(slides)
    assert "<h1>My talk</h1>" in page and "Ada L., Alan T." in page
    assert "Grace H." in deck.render_deck(slides, authors=["Grace H."])
    assert deck.main(["--slides", str(slides), "--no-pdf", "--author", "Grace H."]) == 0
    assert "Grace H." in (slides / "deck.html").read_text()
    (slides / deck.SETTINGS).write_text('author = "typo"\n')
    with pytest.raises(ValueError, match="unknown settings \\['author'\\]"):
        deck.render_deck(slides)


def test_recipe_is_read_from_the_runs_config(tmp_path):
    slides = _fake_slides(tmp_path)
    runs = deck.load_deck_data(slides)[1].values()
    rows = dict(deck.recipe_rows(list(runs)))
    assert rows == {"optimiser": "adamw", "learning rate": "0.002", "weight decay": "0.05",
                    "batch size": "32", "augmentations": "light", "epochs trained": "15"}
    # momentum only means something for SGD: it is left out of an AdamW recipe
    assert "<td class=\"text\">optimiser</td><td class=\"text\">adamw</td>" in deck.render_deck(slides)
    runs = list(runs)
    runs[0].results.config["model"]["optimizer"]["lr"] = 0.1  # a recipe that differs shows every value
    assert dict(deck.recipe_rows(runs))["learning rate"] in ("0.1 / 0.002", "0.002 / 0.1")


def test_kernel_generator_wording_matches_the_modules(tmp_path):
    page = html.unescape(deck.render_deck(_fake_slides(tmp_path)))
    assert "grows with C²" not in page.replace("Both grow with C²", "")
    costs = _slide_containing(page, "What an involution costs")
    # RedNet's settings at C = 256: reduce 256*64 + BN 2*64; span 64*K*K*16 + bias K*K*16
    assert "16,512 weights whatever K" in costs
    assert "9,360 at K = 3" in costs and "125,840 at K = 11" in costs


def test_deck_data_keeps_only_the_runs_it_quotes(tmp_path):
    slides = _fake_slides(tmp_path)
    stale = slides / "data" / "runs" / "old_run"
    stale.mkdir()
    (stale / "results.json").write_text("{}")
    deck_data = json.loads((slides / deck.DECK_DATA).read_text())
    runs = {f"{model}_seed0": Run.load(tmp_path / "runs" / f"{model}_sample_seed0" / "20260101-000000")
            for model in ("rednet26", "resnet26")}
    deck.write_deck_data(slides, runs=runs, data_statement="Training data: test data.",
                         complexity_rows=deck_data["complexity"]["rows"],
                         complexity_input_size=(3, 224, 224), kernels=deck_data["kernels"])
    assert sorted(p.name for p in (slides / "data" / "runs").iterdir()) == sorted(runs)


def test_caltech256_results_carry_no_sample_set_badge(tmp_path):
    page = deck.render_deck(_fake_slides(tmp_path, sample=False))
    assert "not Caltech-256" not in page and "badge" not in page.split("</style>")[1]


def test_seeds_are_summarised_and_no_winner_is_claimed_within_the_spread(tmp_path):
    overlapping = {0: (0.60, 0.58), 1: (0.64, 0.62), 2: (0.62, 0.66)}
    page = html.unescape(deck.render_deck(_fake_slides(tmp_path, kind="shapes", seeds=overlapping)))
    assert "shapes set (offline), not Caltech-256" in page
    assert "62.0% ± 2.0" in page and "60.0–64.0" in page  # RedNet-26 test top-1 over 3 seeds
    assert "Verdict: no difference detectable at this precision." in page and "95% interval" in page
    assert "our runs cannot tell RedNet-26 from ResNet-26" in page
    assert "seeds 0, 1, 2" in page
    separated = {0: (0.70, 0.58), 1: (0.72, 0.62), 2: (0.71, 0.60)}
    page = html.unescape(deck.render_deck(_fake_slides(tmp_path / "b", kind="shapes", seeds=separated)))
    assert "RedNet-26 minus ResNet-26: +11.0 points" in page and "Verdict: RedNet-26 higher." in page
    assert "RedNet-26 reached the higher test accuracy" in page


def test_build_deck_references_or_embeds_the_figures(tmp_path):
    slides = _fake_slides(tmp_path)
    elsewhere = deck.build_deck(slides, tmp_path / "out" / "deck.html")
    assert 'src="../slides/figures/operator_costs.png"' in elsewhere.read_text()
    embedded = deck.build_deck(slides, tmp_path / "one-file.html", embed_images=True)
    assert embedded.read_text().count('src="data:image/png;base64,') == len(deck.FIGURES) - len(deck.SHOWN_AS_TABLES)


def test_missing_inputs_are_named(tmp_path, capsys):
    slides = _fake_slides(tmp_path)
    (slides / "figures" / "training_curves.png").unlink()
    with pytest.raises(FileNotFoundError, match="training_curves.png"):
        deck.render_deck(slides)
    assert deck.main(["--slides", str(tmp_path / "nowhere")]) == 1
    assert "appendix_slide_figures.ipynb" in capsys.readouterr().err


def test_committed_deck_is_built_from_the_committed_data():
    if not (SLIDES / deck.DECK_DATA).is_file():
        pytest.fail(f"{SLIDES / deck.DECK_DATA} is missing: execute notebooks/appendix_slide_figures.ipynb "
                    "(./run.sh does) and commit slides/")
    assert (SLIDES / "deck.html").read_text(encoding="utf-8") == deck.render_deck(SLIDES), (
        "slides/deck.html differs from what slides/data and the deck code give: rebuild it with "
        "`python -m involution deck` and commit it")


# -- in a real browser ------------------------------------------------------------------------


def _find(names, variable):
    if os.environ.get(variable):
        return os.environ[variable]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: pip install -e '.[test]' (./test.sh does it)")
    binary = _find(BROWSERS, "CHROME_BINARY")
    driver_path = _find(("chromedriver",), "CHROMEDRIVER")
    if binary is None or driver_path is None:
        missing = "a Chromium/Chrome browser" if binary is None else "chromedriver"
        pytest.fail(f"the deck test needs a headless browser but found no {missing}: {BROWSER_FIX}")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--window-size=1280,800",
                     "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as error:  # noqa: BLE001 - say what failed and how to fix it
        pytest.fail(f"could not start {binary} through {driver_path}: {error}\n{BROWSER_FIX}")
    yield driver
    driver.quit()


def _screenshot_spread(driver) -> float:
    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L")
    return ImageStat.Stat(image).stddev[0]


def _check_deck_in_browser(driver, path: Path, slides: Path):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && "
        "Array.from(document.images).every(i => i.complete)"))
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src').slice(0, 60), i.naturalWidth])")
    # Every figure once, notebook 04's too when its findings were written.
    with_course = (slides / deck.COURSE_DATA).is_file()
    assert len(images) == len(deck.FIGURES) - len(deck.SHOWN_AS_TABLES) + (len(deck.COURSE_FIGURES) if with_course
                                                                           else 0)
    broken = [src for src, width in images if width == 0]
    assert not broken, f"images that did not load in {path}: {broken}"
    count = driver.execute_script("return window.deck.count")
    assert count == driver.execute_script("return document.querySelectorAll('.slide').length") >= 8
    assert driver.execute_script("return window.deck.current()") == 0

    spreads = [_screenshot_spread(driver)]
    first = driver.get_screenshot_as_png()
    body = driver.find_element("tag name", "body")
    body.send_keys(Keys.ARROW_RIGHT)
    assert driver.execute_script("return [window.deck.current(), location.hash]") == [1, "#2"]
    spreads.append(_screenshot_spread(driver))
    assert driver.get_screenshot_as_png() != first, "the second slide looks like the first"
    assert min(spreads) > 20, f"the first slides look blank (pixel spread {spreads})"

    # Every slide with a figure shows it at a readable size once it is the current slide.
    for index in range(count):
        driver.execute_script("window.deck.show(arguments[0])", index)
        width = driver.execute_script(
            "var img = document.querySelector('.slide.current img');"
            "return img ? img.getBoundingClientRect().width : null")
        assert width is None or width > 200, f"slide {index + 1}: figure drawn {width}px wide"
    body.send_keys(Keys.HOME)
    assert driver.execute_script("return window.deck.current()") == 0
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_committed_deck_in_a_headless_browser(browser):
    if not (SLIDES / "deck.html").is_file():
        pytest.fail("slides/deck.html is missing: execute notebooks/appendix_slide_figures.ipynb (./run.sh "
                    "does) and commit slides/")
    _check_deck_in_browser(browser, SLIDES / "deck.html", SLIDES)


def test_single_file_deck_in_a_headless_browser(browser, tmp_path):
    slides = SLIDES if (SLIDES / deck.DECK_DATA).is_file() else _fake_slides(tmp_path)
    path = deck.build_deck(slides, tmp_path / "embedded" / "deck.html", embed_images=True)
    _check_deck_in_browser(browser, path, slides)


# -- the diagrams ---------------------------------------------------------------------------


def test_diagrams_read_their_labels_and_shapes_from_the_modules():
    from involution.layers import Involution2d
    from involution.workbook import diagrams

    assert diagrams.describe(Involution2d(64, 7, stride=2)) == "7x7 involution, 64 ch, 4 groups, stride 2"
    block, x = diagrams.rednet_block("rednet26", stage=2, image_size=64)
    calls = diagrams.trace_children(block, x)
    assert [name for name, _, _ in calls] == ["conv1", "bn1", "relu", "conv2", "bn2", "relu", "conv3",
                                              "bn3", "downsample", "relu"]
    assert calls[3][2] == (128, 8, 8)  # the strided involution halves the 16x16 map
    texts = [t.get_text() for t in diagrams.plot_bottlenecks(image_size=64).axes[0].texts]
    assert f"{sum(p.numel() for p in block.parameters()):,} parameters in the block" in texts
    assert "ReLU -> output 512 x 8 x 8" in texts
    # Every box, the shortcut's too, says its parameters, and they add up to the block's.
    counts = [int(n.replace(",", "")) for text in texts for n in re.findall(r"([\d,]+) parameters$", text, re.M)]
    resnet_block, _ = diagrams.rednet_block("resnet26", stage=2, image_size=64)
    assert len(counts) == 8  # four boxes a block, for ResNet's and RedNet's
    assert sum(counts) == sum(p.numel() for b in (block, resnet_block) for p in b.parameters())
    layer_input = torch.zeros(1, 128, 16, 16)
    figure = diagrams.plot_kernel_generation(block.conv2, layer_input)
    texts = " ".join(t.get_text() for t in figure.axes[0].texts)
    assert "kernel: 8 x 7 x 7 x 8 x 8" in texts and "span: 1x1 conv 32->392" in texts
    texts = " ".join(t.get_text() for t in diagrams.plot_involution_operation().axes[0].texts)
    assert "16 channels per group" in texts and "7x7 kernel of pixel (i, j)" in texts
    # The window's values reach the multiply-add: an arrow starts at the window and ends at its node.
    operation = diagrams.plot_involution_operation().axes[0]
    assert "x[c] in the\n7x7 window" in [t.get_text() for t in operation.texts]
    window = [patch for patch in operation.patches if type(patch).__name__ == "Rectangle" and not patch.get_fill()][0]
    node = [patch for patch in operation.patches if type(patch).__name__ == "Circle"][0]
    (window_arrow,) = [patch for patch in operation.patches if type(patch).__name__ == "FancyArrowPatch"
                       and to_hex(patch.get_edgecolor()) == "#c0392b"]  # drawn in the window's colour
    (start, end) = window_arrow._posA_posB  # from the window's corner to the node's edge
    assert start == (window.get_x() + window.get_width(), window.get_y())
    assert abs(end[0] - node.center[0]) < 1e-9 and end[1] < node.center[1]


def test_augmentation_figure_shows_each_preset():
    from involution.workbook import diagrams

    image = Image.new("RGB", (80, 60), (200, 30, 30))
    figure = diagrams.plot_augmentations(image, presets=("light", "course"), image_size=32, samples=3)
    assert len(figure.axes) == 2 * 4
    assert [axis.get_ylabel() for axis in figure.axes[::4]] == ['"light"', '"course"']


def test_a_corrupt_results_file_is_named_with_the_fix(tmp_path, capsys):
    # The deck printed json's bare "Expecting property name..." with no file.
    slides = _fake_slides(tmp_path)
    (corrupt,) = [path for path in slides.rglob("results.json") if "rednet26" in str(path)]
    corrupt.write_text('{"model": "rednet26", oops}')
    assert deck.main(["--slides", str(slides), "--no-pdf"]) == 1
    error = capsys.readouterr().err
    assert str(corrupt) in error and "line 1 column" in error


def _findings(test_verdict: str) -> dict:
    """What involution.workbook.overfitting.findings returns, in miniature."""
    higher = test_verdict.removesuffix(" higher") if test_verdict.endswith(" higher") else None
    return {"data": "shapes set (offline), not Caltech-256", "model": "ResNet-26", "train_images": 400, "epochs": 30,
            "all_at_chance": False,
            "rows": [{"setting": "no weight decay", "seeds": 3, "rose": 3, "rise": "0.412 +- 0.050 (n=3, ...)",
                      "test_top1": "70.1% +- 1.0 (n=3, range 69.0 to 71.0)"},
                     {"setting": "weight decay 0.05", "seeds": 3, "rose": 1, "rise": "0.100 +- 0.020 (n=3, ...)",
                      "test_top1": "72.0% +- 1.0 (n=3, range 71.0 to 73.0)"}],
            "verdicts": {"test top-1": {"text": "weight decay 0.05 minus no weight decay: +1.9 points, 95% "
                                                "interval -0.5 to +4.3 (Welch's t, 3 and 3 seeds). Verdict: "
                                                + test_verdict + ".",
                                        "verdict": test_verdict, "higher": higher},
                         "rise of the validation loss": {"text": "weight decay 0.05 minus no weight decay: -0.312",
                                                         "verdict": "no weight decay higher",
                                                         "higher": "no weight decay"}}}


def test_notebook_05s_findings_get_a_slide_once_written(tmp_path):
    slides = _fake_slides(tmp_path)
    assert "tried small" not in deck.render_deck(slides)  # nothing written: no such slide
    with pytest.raises(FileNotFoundError, match="course_overfitting.png"):
        deck.write_course_findings(slides, _findings("no difference detectable at this precision"))
    Image.new("RGB", (40, 30)).save(slides / "figures" / deck.COURSE_FIGURES["course_overfitting"])
    deck.write_course_findings(slides, _findings("no difference detectable at this precision"))
    page = deck.render_deck(slides)
    assert "Overfitting and weight decay, tried small" in page and "3 of 3 runs" in page
    assert "Test top-1, weight decay 0.05 minus no weight decay: +1.9 points" in page
    assert "weight decay made no difference to test accuracy that the seeds could detect" in page
    deck.write_course_findings(slides, _findings("weight decay 0.05 higher"))
    assert "weight decay 0.05 reached the higher test accuracy" in deck.render_deck(slides)


def test_findings_of_an_older_deck_are_not_shown(tmp_path):
    slides = _fake_slides(tmp_path)
    Image.new("RGB", (40, 30)).save(slides / "figures" / deck.COURSE_FIGURES["course_overfitting"])
    (slides / deck.COURSE_DATA).write_text('{"data": "shapes", "sets": {}}')  # before the overfitting test
    assert "tried small" not in deck.render_deck(slides)


def test_the_recipe_shows_whole_numbers_whole(tmp_path):
    assert deck._shown(1.0) == "1" and deck._shown(0.05) == "0.05" and deck._shown(True) == "True"


def test_deck_with_a_missing_slides_folder_says_so_in_one_line_and_creates_nothing(tmp_path, capsys):
    # It used to make the folder (for the HTML) before failing on the missing figures.
    missing = tmp_path / "no-such-slides"
    assert deck.main(["--slides", str(missing), "--no-pdf"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: the slides folder {missing} does not exist") and "\n" not in err
    assert not missing.exists()


# -- readable from the back of the room, and no half-empty page -------------------------------

# The diagrams (involution.workbook.diagrams) still draw their labels too small for a slide: make their type larger,
# re-run notebooks/appendix_slide_figures.ipynb with its save() calling deck.save_figure, then empty this set.
FIGURES_AWAITING_THE_NOTEBOOK = {"involution_operation", "kernel_generation", "bottlenecks"}
MOST_EMPTY = 1 / 3  # the largest share of a page's height that may be left blank
BAND_PX = 24  # a band of the page this tall with no ink in it counts as empty


def blank_fraction(page: Image.Image, band: int = BAND_PX) -> float:
    """The share of a rendered page's height in bands of ``band`` px that hold no ink (every pixel near white)."""
    grey = page.convert("L")
    width, height = grey.size
    bands = [grey.crop((0, top, width, min(top + band, height))) for top in range(0, height, band)]
    return sum(band_image.getextrema()[0] >= 245 for band_image in bands) / len(bands)


def _pdf_pages(pdf: Path, folder: Path) -> list[Path]:
    """The pages of ``pdf`` as PNGs 1280 px wide (96 dpi for its 960 pt pages), by pdftoppm."""
    import subprocess
    if shutil.which("pdftoppm") is None:
        pytest.fail("pdftoppm is missing: install poppler-utils (apt-get install -y poppler-utils)")
    subprocess.run(["pdftoppm", "-r", "96", "-png", str(pdf), str(folder / "page")], check=True, timeout=60)
    return sorted(folder.glob("page-*.png"))


_TEXT_SIZES = """
var slide = document.querySelector('.slide.current'), small = [];
var walker = document.createTreeWalker(slide, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  var node = walker.currentNode, element = node.parentElement;
  if (!node.textContent.trim() || !element.getClientRects().length) continue;
  var size = parseFloat(getComputedStyle(element).fontSize);
  small.push([size, node.textContent.trim().slice(0, 40)]);
}
var images = Array.from(slide.querySelectorAll('img')).map(
  i => [i.getAttribute('alt'), i.getBoundingClientRect().width, i.getBoundingClientRect().height,
       i.naturalWidth, i.naturalHeight]);
return [small, images];
"""


def deck_readability(driver, slides: Path) -> dict:
    """The smallest text (px) of each slide of ``slides/deck.html`` in a 1280 px wide window, its figures' smallest
    text as shown (:func:`deck.figure_text_px`; None where a figure recorded no font size), and each page's blank
    share in ``slides/deck.pdf``."""
    driver.set_window_size(1280, 1000)  # tall enough for the page to scale a slide to its full 1280 px
    driver.get((slides / "deck.html").resolve().as_uri())
    count = driver.execute_script("return window.deck.count")
    text, figures = {}, {}
    for index in range(count):
        driver.execute_script("window.deck.show(arguments[0])", index)
        sizes, images = driver.execute_script(_TEXT_SIZES)
        text[index + 1] = min(sizes)
        scale = driver.execute_script("return document.querySelector('.slide.current').getBoundingClientRect()"
                                      ".width") / 1280  # image sizes as on a slide 1280 px wide
        for key, width, height, natural_width, natural_height in images:
            shown = min(width, height * natural_width / natural_height)  # drawn inside its box (object-fit)
            name = {**deck.FIGURES, **deck.COURSE_FIGURES}[key]
            figures[key] = deck.figure_text_px(slides / "figures" / name, shown / scale)
    return {"count": count, "text": text, "figures": figures}


def test_deck_text_is_large_and_no_page_is_a_third_empty(browser, tmp_path):
    # Rules of the deck: every text on a slide, the figures' too, at least 18 px tall on a 1280 px wide page,
    # and no page of the PDF more than a third blank.
    found = deck_readability(browser, SLIDES)
    small = {slide: (size, text) for slide, (size, text) in found["text"].items() if size < deck.SMALLEST_TEXT_PX}
    assert not small, f"text under {deck.SMALLEST_TEXT_PX} px (slide: (px, text)): {small}"
    figures = {key: px for key, px in found["figures"].items() if key not in FIGURES_AWAITING_THE_NOTEBOOK}
    unreadable = {key: px for key, px in figures.items() if px is None or px < deck.SMALLEST_TEXT_PX}
    assert not unreadable, (f"figures whose smallest text is under {deck.SMALLEST_TEXT_PX} px on the slide (None: "
                            f"saved without deck.save_figure): {unreadable}")
    redrawn = {key for key in FIGURES_AWAITING_THE_NOTEBOOK
               if (found["figures"].get(key) or 0) >= deck.SMALLEST_TEXT_PX}
    assert not redrawn, f"{redrawn} now readable: take them out of FIGURES_AWAITING_THE_NOTEBOOK"
    pages = _pdf_pages(SLIDES / "deck.pdf", tmp_path)
    assert len(pages) == found["count"], "slides/deck.pdf has not been printed from slides/deck.html"
    empty = {number: round(blank_fraction(Image.open(page)), 2) for number, page in enumerate(pages, 1)}
    assert max(empty.values()) <= MOST_EMPTY, f"pages more than a third blank (page: share): {empty}"
