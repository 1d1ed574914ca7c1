"""Where the data is and what it is: Caltech-256's layout, the built-in sets, class folders.

A data folder holds ``256_ObjectCategories/NNN.name/*.jpg`` (what extracting
the official archive gives). This module finds that folder for a ``root``
(``"sample"`` and ``"shapes"`` name the built-in sets), lists its class
folders and images, and tells which kind of data it is, so that every number
is reported with the name of the data it came from.

Listing is strict: a broken symbolic link where an image or a class folder
would be, or a class folder without images, is an error that names it,
because skipping it would shrink the data set without anyone noticing.
"""
from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from involution.data.constants import SAMPLE_ROOT_ALIAS, SHAPES_ROOT_ALIAS
from involution.data.shapes import shapes_root

# The official archive, exactly as torchvision's ``Caltech256`` class fetches it
# (torchvision/datasets/caltech.py), so that both agree on what "the" data is.
CALTECH256_URL = "https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar"
CALTECH256_FILENAME = "256_ObjectCategories.tar"
CALTECH256_MD5 = "67b4f42ca05d46448c6bb8ecd2220f6d"
CALTECH256_NUM_CLASSES = 257  # 256 object classes + 257.clutter

CATEGORIES_DIRNAME = "256_ObjectCategories"
CLUTTER_NAME = "clutter"  # the folder is "257.clutter"
# Where the archive can be found: the plain layout, then torchvision's.
_LAYOUTS = (Path(CATEGORIES_DIRNAME), Path("caltech256") / CATEGORIES_DIRNAME)

# Lower-case suffixes that count as images; torchvision's ImageFolder uses the same.
IMAGE_EXTENSIONS = frozenset(IMG_EXTENSIONS)

# How to get the archive by hand. Error messages spell this out instead of pointing
# at data/README.md, which a user who installed the package with pip does not have.
MANUAL_DOWNLOAD = (
    f"download {CALTECH256_URL} (about 1.2 GB, MD5 {CALTECH256_MD5}) and run "
    f"`tar xf {CALTECH256_FILENAME}` in the data folder"
)

CHECK_DATA_HINT = "python -m involution check-data {root}"
MAX_LISTED = 20  # how many file names an error message lists before counting the rest


def sample_data_root() -> Path:
    """The folder of the built-in sample set (it holds ``256_ObjectCategories``); shipped in the package."""
    return Path(__file__).resolve().parent / "sample_data"


def resolve_root(root: str | os.PathLike) -> Path:
    """Turn the ``root`` argument into a path.

    ``"sample"`` means the built-in sample set, ``"shapes"`` the built-in
    shapes set (generated into the cache on first use, see :mod:`involution.data.shapes`).
    """
    if str(root) == SAMPLE_ROOT_ALIAS:
        return sample_data_root()
    if str(root) == SHAPES_ROOT_ALIAS:
        return shapes_root()
    return Path(root).expanduser()


def dataset_kind(categories_dir: Path | None) -> str:
    """What a data folder is: ``"sample"``, ``"shapes"``, ``"caltech256"`` or ``"folder"`` (other images).

    Every number is reported with this, so that a built-in set's accuracy is
    never mistaken for a Caltech-256 result.
    """
    if categories_dir is None:
        return "caltech256"  # not downloaded yet: only Caltech-256 is ever downloaded
    if categories_dir.resolve().parent == sample_data_root():
        return "sample"
    if (categories_dir.parent / "sources.csv").is_file() and categories_dir.parent.name.startswith("shapes-"):
        return "shapes"
    # Caltech-256 is 256 classes (257 with clutter) starting at 001.ak47; a subset is just a folder.
    if (categories_dir / "001.ak47").is_dir() and len(list_class_folders(categories_dir, True)) >= 256:
        return "caltech256"
    return "folder"


def find_categories_dir(root: str | os.PathLike) -> Path | None:
    """Return ``root``'s ``256_ObjectCategories`` folder, or None if there is none.

    Accepts ``root/256_ObjectCategories`` (what extracting the archive gives),
    ``root/caltech256/256_ObjectCategories`` (what torchvision's ``Caltech256``
    downloads) and ``root`` itself being that folder.
    """
    root = resolve_root(root)
    if root.name == CATEGORIES_DIRNAME and root.is_dir():
        return root
    for layout in _LAYOUTS:
        if (root / layout).is_dir():
            return root / layout
    return None


def data_folder(root: Path, categories_dir: Path | None) -> Path:
    """The folder that holds ``256_ObjectCategories`` (where a download puts it, before there is one)."""
    return categories_dir.parent if categories_dir is not None else root


def missing_data_message(root: Path) -> str:
    """What to say when ``root`` holds no Caltech-256: where it was looked for and how to get it."""
    return (
        f"Caltech-256 was not found under {root}: expected the folder "
        f"{root / CATEGORIES_DIRNAME} (or {root / 'caltech256' / CATEGORIES_DIRNAME}) "
        "holding one sub-folder per class (001.ak47, 002.american-flag, ...). "
        "Pass download=True (on the command line: --data.download true) to fetch the "
        f"official archive, or {MANUAL_DOWNLOAD} ({root}). "
        f"To train without downloading, use root={SHAPES_ROOT_ALIAS!r} (the built-in shapes set, "
        f"generated offline) or root={SAMPLE_ROOT_ALIAS!r} (the tiny sample set)."
    )


def is_clutter(class_folder: str) -> bool:
    """Whether ``class_folder`` is Caltech-256's "none of the above" class, ``257.clutter``."""
    return class_folder.partition(".")[2] == CLUTTER_NAME


def _has_image_suffix(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _broken_link(entry: os.DirEntry) -> str | None:
    """Why the symbolic link ``entry`` cannot be followed, or None (also for anything not a link).

    A dangling link would otherwise be skipped quietly (it is not a file) and
    a link loop would crash the listing with ``OSError: [Errno 40]``.
    """
    if not entry.is_symlink():
        return None
    try:
        os.stat(entry.path)
    except OSError as error:
        kind = "symbolic link loop" if error.errno == errno.ELOOP else "dangling symbolic link"
        return f"{kind} to {os.readlink(entry.path)} ({error.strerror})"
    return None


def _listing(folder: Path, wanted: Callable[[os.DirEntry], bool], named_like_wanted: Callable[[str], bool]):
    """Sorted names of the wanted entries of ``folder``, and its broken links as sorted (path, reason).

    A broken link is reported only where its name says it would have been
    used (``named_like_wanted``), like an image file in a class folder.
    Hidden entries are skipped: macOS leaves "._name.jpg" metadata files that
    carry an image suffix but are not images.
    """
    names, broken = [], []
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        problem = _broken_link(entry)
        if problem is not None:
            if named_like_wanted(entry.name):
                broken.append((Path(entry.path), problem))
        elif wanted(entry):
            names.append(entry.name)
    return sorted(names), sorted(broken)


def scan_class_folders(categories_dir: Path, include_clutter: bool) -> tuple[list[str], list[tuple[Path, str]]]:
    """Class folder names (the numeric prefix makes the sort Caltech's order) and broken links among them."""
    folders, broken = _listing(categories_dir, os.DirEntry.is_dir, lambda name: True)
    if not include_clutter:
        folders = [name for name in folders if not is_clutter(name)]
    if not folders:
        raise ValueError(
            f"{categories_dir} contains no class folders. It should hold one folder per class "
            "(001.ak47/, 002.american-flag/, ...): re-extract the archive there, or delete the folder "
            "and download again."
        )
    return folders, broken


def scan_images(class_dir: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """Names of the image files directly inside one class folder, and its broken image links."""
    return _listing(class_dir, lambda entry: entry.is_file() and _has_image_suffix(entry.name), _has_image_suffix)


def unread_image_files(class_dir: Path) -> list[str]:
    """Names of the files in a class folder that are images of a type the loader leaves out (GIF, ICO...)."""
    from PIL import Image  # only for its list of file types

    Image.init()
    other_types = set(Image.registered_extensions()) - IMAGE_EXTENSIONS
    return sorted(entry.name for entry in os.scandir(class_dir) if not entry.name.startswith(".")
                  and os.path.splitext(entry.name)[1].lower() in other_types and entry.is_file())


def _fail_on_broken_links(broken: Sequence[tuple[Path, str]], categories_dir: Path) -> None:
    if broken:
        raise FileNotFoundError(
            f"{len(broken)} symbolic link(s) under {categories_dir} cannot be followed:\n  "
            + format_examples([f"{path}: {reason}" for path, reason in broken], MAX_LISTED)
            + "\nRepair or delete them; "
            f"`{CHECK_DATA_HINT.format(root=categories_dir)}` lists every problem of the data folder."
        )


def list_class_folders(categories_dir: Path, include_clutter: bool) -> list[str]:
    """Sorted class folder names; broken links among them are an error."""
    folders, broken = scan_class_folders(categories_dir, include_clutter)
    _fail_on_broken_links(broken, categories_dir)
    return folders


def class_names(root: str | os.PathLike, include_clutter: bool = True) -> list[str]:
    """Readable class names in label order: the folder names without "NNN.", e.g. ``"ak47"``.

    ``root`` is anything :func:`find_categories_dir` accepts.
    """
    categories_dir = find_categories_dir(root)
    if categories_dir is None:
        raise FileNotFoundError(missing_data_message(resolve_root(root)))
    return readable_names(list_class_folders(categories_dir, include_clutter))


def readable_names(class_folders: Sequence[str]) -> list[str]:
    """Class names without their number: ``001.ak47`` -> ``ak47``."""
    return [folder.partition(".")[2] or folder for folder in class_folders]


def printable(path) -> str:
    """``path`` as text that can be printed or written anywhere (undecodable bytes as escapes)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def name_problem(relative_path: str) -> str | None:
    """Why a file's path cannot be used as a name (recorded in the split file, printed), or None.

    A name that is not valid UTF-8 (bytes from another encoding) reaches Python as
    surrogate escapes: it can be opened, but not written to a UTF-8 file or printed.
    """
    try:
        relative_path.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(relative_path)
        return f"its name is not valid UTF-8 ({raw!r}): rename it with UTF-8 characters only"
    return None


def list_images(categories_dir: Path, class_folders: Sequence[str]) -> list[str]:
    """All image paths, relative to ``categories_dir`` in POSIX form, sorted.

    Raises naming every class folder that has no image in it, because an
    empty class cannot be learned and would break the split, and every
    broken link to an image, which must not be skipped quietly. Images of a
    type the loader does not read (GIF, ...) are named in a warning.
    """
    paths, empty, broken, left_out = [], [], [], []
    for folder in class_folders:
        names, broken_here = scan_images(categories_dir / folder)
        broken += broken_here
        if not names:
            empty.append(folder)
        paths.extend(f"{folder}/{name}" for name in names)
        left_out.extend(f"{folder}/{name}" for name in unread_image_files(categories_dir / folder))
    _fail_on_broken_links(broken, categories_dir)
    misnamed = [f"{printable(categories_dir / path)}: {problem}" for path in paths if (problem := name_problem(path))]
    if misnamed:  # else a UnicodeEncodeError naming no file, when the split file is written
        raise ValueError(f"{len(misnamed)} image(s) in {categories_dir} cannot be used as named:\n  "
                         + format_examples(misnamed))
    if left_out:
        warnings.warn(
            f"{len(left_out)} file(s) in the class folders of {categories_dir} are images of a type the loader "
            f"does not read ({', '.join(sorted(IMAGE_EXTENSIONS))}), and are left out:\n  "
            + format_examples(left_out) + "\nConvert them to PNG or JPEG to use them.", UserWarning, stacklevel=2)
    if empty:
        raise ValueError(
            f"These class folders in {categories_dir} contain no image file: {', '.join(empty)}. "
            "Put images in them or delete them (with include_clutter=False the clutter "
            "class is left out)."
        )
    return paths


def format_examples(items: Sequence[str], limit: int = MAX_LISTED, indent: str = "  ") -> str:
    """The first ``limit`` items, one per line after the first, and how many more there are."""
    lines = list(items[:limit]) + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])
    return f"\n{indent}".join(lines)
