"""Fetching Caltech-256: download with torchvision's downloader, verify, extract with progress.

The archive is downloaded by torchvision's own ``download_url`` (progress bar,
MD5 check), so both projects agree on what "the" data is. Extracting 30,607
files takes a while, so it shows a progress bar of its own; it goes to a
temporary folder that is moved into place only when complete, so an
interrupted run never leaves a half-extracted data set that looks finished.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
from pathlib import Path

from torchvision.datasets.utils import calculate_md5, download_url
from tqdm.auto import tqdm

from involution.data.locate import (
    CALTECH256_FILENAME,
    CALTECH256_MD5,
    CALTECH256_URL,
    CATEGORIES_DIRNAME,
    MANUAL_DOWNLOAD,
    find_categories_dir,
)

STAGING_DIRNAME = ".extracting"


def download_caltech256(
    root: str | os.PathLike,
    url: str = CALTECH256_URL,
    md5: str = CALTECH256_MD5,
    filename: str = CALTECH256_FILENAME,
    remove_archive: bool = True,
) -> Path:
    """Download, verify and extract Caltech-256 into ``root``; return the categories folder.

    Does nothing when ``root`` already holds the data. Otherwise the archive
    is fetched into ``root/filename`` (an earlier complete download with the
    right MD5 is reused) and extracted to ``root/256_ObjectCategories``.
    """
    root = Path(root).expanduser()
    existing = find_categories_dir(root)
    if existing is not None:
        return existing

    archive = root / filename
    _download(url, root, filename, md5)
    staging = root / STAGING_DIRNAME
    shutil.rmtree(staging, ignore_errors=True)  # left over from an interrupted run
    extract_archive(archive, staging)
    extracted = find_categories_dir(staging)
    if extracted is None:
        raise RuntimeError(
            f"The archive {archive} holds no {CATEGORIES_DIRNAME} folder, so it is not the "
            f"Caltech-256 archive. Delete it and download again: {MANUAL_DOWNLOAD}."
        )
    os.replace(extracted, root / CATEGORIES_DIRNAME)
    shutil.rmtree(staging)
    if remove_archive:
        archive.unlink()
    return root / CATEGORIES_DIRNAME


def _download(url: str, root: Path, filename: str, md5: str) -> None:
    """torchvision's ``download_url``, with errors that say which file failed and what to do."""
    archive = root / filename
    try:
        download_url(url, root, filename=filename, md5=md5)
    except urllib.error.URLError as error:
        raise RuntimeError(
            f"Could not download {url}: {error.reason}. Check the internet connection, or get the "
            f"archive by hand: {MANUAL_DOWNLOAD} ({root})."
        ) from error
    except RuntimeError as error:
        # torchvision only says "File not found or corrupted."; say which file and why.
        actual = calculate_md5(archive) if archive.is_file() else None
        if actual is not None and actual != md5:
            archive.unlink()
            raise RuntimeError(
                f"The archive downloaded from {url} has MD5 {actual}, expected {md5}: the download "
                "is corrupt or incomplete. The bad file was deleted; run again to retry, or get the "
                f"archive by hand: {MANUAL_DOWNLOAD} ({root})."
            ) from error
        raise


def extract_archive(archive: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Extract a tar archive (plain or compressed) into ``destination``, with a progress bar per file.

    Python's "data" filter refuses members that would land outside
    ``destination`` (absolute paths, ``..``, links pointing out), which a
    downloaded archive must not be trusted to avoid.
    """
    archive = Path(archive)
    safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()  # reads the headers only: quick even for 30,607 files
            files = tqdm(members, desc=f"Extracting {archive.name}", unit="file", total=len(members))
            tar.extractall(destination, members=files, **safety)
    except tarfile.ReadError as error:
        raise RuntimeError(
            f"{archive} is not a tar archive ({error}). Delete it and download again: {MANUAL_DOWNLOAD}."
        ) from error
