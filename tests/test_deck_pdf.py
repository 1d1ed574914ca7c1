"""The deck's PDF: one 16:9 page per slide, no text cut off at a page's edge or printed over other text.

The PDF is printed by headless Chromium (``involution.workbook.deck.print_pdf``) and
read back with poppler's ``pdftoppm`` (pages rendered to images) and
``pdftotext -bbox`` (each word and its box). A slide's text is clipped when a
word's box runs past the page, or when a character of the slide's HTML text
is missing from its page: Chromium leaves out glyphs that lie wholly outside
the slide. Two words' boxes that overlap mean text printed over text. Deliberately
overflowing and overlapping slides prove that the checks bite.
"""
import html.parser
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from involution.workbook import deck

REPO = Path(__file__).resolve().parents[1]
SLIDES = REPO / "slides"
POPPLER_FIX = "install poppler's tools: `sudo apt-get install -y poppler-utils` (./test.sh does)"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"the PDF test needs {name}: {POPPLER_FIX}")
    return path


class _SlideText(html.parser.HTMLParser):
    """The text of each ``<section class="slide">`` of a deck's HTML."""

    def __init__(self):
        super().__init__()
        self.slides: list[str] = []
        self._depth = 0  # nesting depth inside the current slide; 0 outside every slide

    def handle_starttag(self, tag, attrs):
        if tag == "section" and "slide" in (dict(attrs).get("class") or "").split():  # "slide", "slide title"...
            self.slides.append("")
            self._depth = 1
        elif self._depth and tag == "section":
            self._depth += 1

    def handle_endtag(self, tag):
        if self._depth and tag == "section":
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.slides[-1] += data + " "


def slide_texts(page: str) -> list[str]:
    parser = _SlideText()
    parser.feed(page)
    return parser.slides


def _characters(text: str) -> Counter:
    return Counter(c for c in unicodedata.normalize("NFKC", text) if not c.isspace())


def page_images(pdf: Path, folder: Path) -> list[Image.Image]:
    """Every page of ``pdf`` rendered by pdftoppm (36 dpi: enough for the page's proportions)."""
    subprocess.run([_tool("pdftoppm"), "-r", "36", "-png", str(pdf), str(folder / "page")], check=True)
    return [Image.open(path) for path in sorted(folder.glob("page-*.png"))]


def page_words(pdf: Path) -> list[dict]:
    """Per page: its size in points and its words with their boxes (pdftotext -bbox)."""
    out = subprocess.run([_tool("pdftotext"), "-bbox", str(pdf), "-"], check=True,
                         capture_output=True, text=True).stdout
    pages = []
    for size, body in re.findall(r'<page width="([\d.]+)" height="[\d.]+">(.*?)</page>', out, re.S):
        height = float(re.search(r'<page width="%s" height="([\d.]+)"' % re.escape(size), out)[1])
        words = [{"x0": float(a), "y0": float(b), "x1": float(c), "y1": float(d),
                  "text": html.unescape(w)}
                 for a, b, c, d, w in re.findall(r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" '
                                                 r'xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>', body)]
        pages.append({"width": float(size), "height": height, "words": words})
    return pages


def clipping_problems(pdf: Path, page: str) -> list[str]:
    """What is cut off in ``pdf``, the print of the deck HTML ``page``: [] when nothing is."""
    problems = []
    for number, (expected, printed) in enumerate(zip(slide_texts(page), page_words(pdf)), 1):
        for word in printed["words"]:
            if (word["x0"] < -0.5 or word["y0"] < -0.5 or word["x1"] > printed["width"] + 0.5
                    or word["y1"] > printed["height"] + 0.5):
                problems.append(f"slide {number}: {word['text'][:40]!r} runs past the page")
        missing = _characters(expected) - _characters(" ".join(w["text"] for w in printed["words"]))
        if missing:
            problems.append(f"slide {number}: {sum(missing.values())} characters of its text are "
                            f"not on the page ({''.join(sorted(missing.elements()))[:40]!r})")
    return problems


def overlapping_words(pdf: Path) -> list[str]:
    """Words printed over other words, per page: [] when none are.

    Two boxes count as overlapping when they share more than a quarter of the
    smaller one's area (neighbouring words on a line touch at most; a subscript
    or an accent may graze its neighbour).
    """
    problems = []
    for number, printed in enumerate(page_words(pdf), 1):
        words = printed["words"]
        for i, a in enumerate(words):
            for b in words[i + 1:]:
                width = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
                height = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
                if width <= 0 or height <= 0:
                    continue
                smaller = min((w["x1"] - w["x0"]) * (w["y1"] - w["y0"]) for w in (a, b))
                if width * height > 0.25 * smaller:
                    problems.append(f"slide {number}: {a['text'][:20]!r} overlaps {b['text'][:20]!r}")
    return problems


def _check_pdf(pdf: Path, page: str, folder: Path) -> None:
    slides = len(slide_texts(page))
    images = page_images(pdf, folder)
    assert len(images) == slides >= 10, f"{pdf}: {len(images)} pages for {slides} slides"
    for number, image in enumerate(images, 1):
        width, height = image.size
        assert abs(width / height - 16 / 9) < 0.01, f"page {number} is {width}x{height}, not 16:9"
    assert clipping_problems(pdf, page) == []
    assert overlapping_words(pdf) == []


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """The committed deck built afresh by the one command, `python -m involution deck`: HTML and PDF."""
    try:
        deck.find_browser()
    except FileNotFoundError as error:
        pytest.fail(str(error))
    folder = tmp_path_factory.mktemp("printed")
    assert deck.main(["--slides", str(SLIDES), "--output", str(folder / "deck.html")]) == 0
    return folder / "deck.html", folder / "deck.pdf"


def test_printed_deck_has_one_16_9_page_per_slide_and_nothing_clipped(printed, tmp_path):
    html_path, pdf = printed
    _check_pdf(pdf, html_path.read_text(encoding="utf-8"), tmp_path)


def test_committed_pdf_matches_the_committed_deck(tmp_path):
    pdf = SLIDES / "deck.pdf"
    if not pdf.is_file():
        pytest.fail(f"{pdf} is missing: build it with `python -m involution deck` and commit it")
    page = (SLIDES / "deck.html").read_text(encoding="utf-8")
    _check_pdf(pdf, page, tmp_path)
    expected = [_characters(text) for text in slide_texts(page)]
    printed = [_characters(" ".join(w["text"] for w in p["words"])) for p in page_words(pdf)]
    stale = [n for n, (want, got) in enumerate(zip(expected, printed), 1) if want - got]
    assert not stale, (f"slides {stale} of slides/deck.pdf differ from slides/deck.html: rebuild "
                       "both with `python -m involution deck` and commit them")


@pytest.mark.parametrize("overflow", ["wide", "tall"])
def test_an_overflowing_slide_is_caught(printed, tmp_path, overflow):
    html_path, _ = printed
    page = html_path.read_text(encoding="utf-8")
    # A word too long for any line, or more lines than a slide holds.
    body = ("<p>" + "Unbreakable" * 30 + "</p>" if overflow == "wide"
            else "".join(f"<p>line {i} of a slide with too much to say</p>" for i in range(40)))
    bad = page.replace("</div>\n<script>", f'<section class="slide"><h2>Too much</h2>{body}'
                                            "</section>\n</div>\n<script>", 1)
    assert bad != page
    bad_html = tmp_path / "bad.html"
    bad_html.write_text(bad, encoding="utf-8")
    pdf = deck.print_pdf(bad_html)
    problems = clipping_problems(pdf, bad)
    slides = len(slide_texts(bad))
    assert problems and all(problem.startswith(f"slide {slides}:") for problem in problems), problems


def test_overlapping_text_is_caught(printed, tmp_path):
    html_path, _ = printed
    page = html_path.read_text(encoding="utf-8")
    # Two paragraphs placed on the same spot.
    body = ('<p style="position:absolute;top:200px;left:100px">printed here first</p>'
            '<p style="position:absolute;top:204px;left:104px">printed over it</p>')
    bad = page.replace("</div>\n<script>", f'<section class="slide"><h2>Overlap</h2>{body}'
                                            "</section>\n</div>\n<script>", 1)
    bad_html = tmp_path / "bad.html"
    bad_html.write_text(bad, encoding="utf-8")
    problems = overlapping_words(deck.print_pdf(bad_html))
    slides = len(slide_texts(bad))
    assert problems and all(problem.startswith(f"slide {slides}:") for problem in problems), problems


def _page_text(pdf: Path, number: int) -> str:
    return " ".join(word["text"] for word in page_words(pdf)[number - 1]["words"])


def test_the_author_line_comes_from_the_setting_and_no_keyboard_hint_is_printed(tmp_path):
    settings = deck.read_settings(SLIDES)
    first = _page_text(SLIDES / "deck.pdf", 1)
    assert " ".join(settings["authors"]) in first
    everything = " ".join(" ".join(w["text"] for w in p["words"]) for p in page_words(SLIDES / "deck.pdf"))
    assert "Keys" not in everything and "space: next" not in everything and "arrow keys" not in everything
    assert deck.main(["--slides", str(SLIDES), "--output", str(tmp_path / "deck.html"),
                      "--author", "Ada L.", "--author", "Alan T."]) == 0
    assert "Ada L., Alan T." in _page_text(tmp_path / "deck.pdf", 1)


def test_the_committed_deck_shows_the_interval_verdicts_and_the_small_scale_test():
    text = " ".join(" ".join(w["text"] for w in p["words"]) for p in page_words(SLIDES / "deck.pdf"))
    assert "tried small" in text and "chance" in text
    assert text.count("95% interval") >= 2 and "Verdict:" in text
