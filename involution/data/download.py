"""Fetching Caltech-256: download with a timeout and resumption, verify, extract with progress.

The archive is fetched from the official address and checked against its
published MD5, the same as torchvision's ``Caltech256``, so both projects
agree on what "the" data is. The download goes to ``<archive>.partial`` and
takes the archive's name only once complete; a server that stops sending for
``timeout`` seconds ends it with a clear message, and the next attempt resumes
from the bytes already received. Extracting 30,607 files takes a while, so it
shows a progress bar of its own; it goes to a temporary folder that is moved
into place only when complete, so an interrupted run never leaves a
half-extracted data set that looks finished.
"""
from __future__ import annotations

import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from torchvision.datasets.utils import calculate_md5
from tqdm.auto import tqdm

from involution.data.locate import (
    CALTECH256_FILENAME,
    CALTECH256_MD5,
    CALTECH256_URL,
    CATEGORIES_DIRNAME,
    MANUAL_DOWNLOAD,
    find_categories_dir,
)

# Seconds a download may wait for the server (to connect, or for the next bytes) before giving up.
DOWNLOAD_TIMEOUT = 60.0
PARTIAL_SUFFIX = ".partial"
STAGING_DIRNAME = ".extracting"


def download_caltech256(
    root: str | os.PathLike,
    url: str = CALTECH256_URL,
    md5: str = CALTECH256_MD5,
    filename: str = CALTECH256_FILENAME,
    remove_archive: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """Download, verify and extract Caltech-256 into ``root``; return the categories folder.

    Does nothing when ``root`` already holds the data. Otherwise the archive
    is fetched into ``root/filename`` (an earlier complete download with the
    right MD5 is reused, an interrupted one resumed) and extracted to
    ``root/256_ObjectCategories``. ``timeout``: seconds without data from the
    server before the download stops with an error (what arrived is kept).
    """
    root = Path(root).expanduser()
    existing = find_categories_dir(root)
    if existing is not None:
        # What an extraction killed midway left, if the data was then put in place another way.
        shutil.rmtree(root / STAGING_DIRNAME, ignore_errors=True)
        return existing

    archive = root / filename
    _download(url, root, filename, md5, timeout)
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
    shutil.rmtree(staging, ignore_errors=True)
    if remove_archive:
        archive.unlink()
    return root / CATEGORIES_DIRNAME


def _download(url: str, root: Path, filename: str, md5: str, timeout: float) -> None:
    """Fetch ``url`` into ``root/filename`` and check its MD5, with errors that say what to do."""
    archive = root / filename
    if archive.is_file() and calculate_md5(archive) == md5:  # downloaded before
        return
    root.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + PARTIAL_SUFFIX)
    try:
        _fetch(url, partial, timeout)
    except (TimeoutError, http.client.IncompleteRead, ConnectionError) as error:
        raise RuntimeError(_interrupted(url, partial, root, error, timeout)) from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise RuntimeError(_interrupted(url, partial, root, error.reason, timeout)) from error
        raise RuntimeError(
            f"Could not download {url}: {error.reason}. Check the internet connection, or get the "
            f"archive by hand: {MANUAL_DOWNLOAD} ({root})."
        ) from error
    actual = calculate_md5(partial)
    if actual != md5:
        partial.unlink()
        raise RuntimeError(
            f"The archive downloaded from {url} has MD5 {actual}, expected {md5}: the download "
            "is corrupt or incomplete. The bad file was deleted; run again to retry, or get the "
            f"archive by hand: {MANUAL_DOWNLOAD} ({root})."
        )
    os.replace(partial, archive)


def _fetch(url: str, partial: Path, timeout: float) -> None:
    """Download ``url`` into ``partial``, going on from its end when it exists and the server allows."""
    start = partial.stat().st_size if partial.is_file() else 0
    headers = {"User-Agent": "involution"} | ({"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not start:  # 416: nothing after `start`; the MD5 check will tell
            raise
        return
    with response:
        if start and response.status != 206:  # the server sends the whole file: start over
            start = 0
        total = start + response.length if response.length is not None else None
        with open(partial, "ab" if start else "wb") as file, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, desc=f"Downloading {partial.stem}") as bar:
            while chunk := response.read1(1 << 20):  # what has arrived: a stall loses nothing
                file.write(chunk)
                bar.update(len(chunk))
    if total is not None and partial.stat().st_size < total:  # the server closed the connection early
        raise http.client.IncompleteRead(b"", total - partial.stat().st_size)


def _interrupted(url: str, partial: Path, root: Path, error: BaseException, timeout: float) -> str:
    received = partial.stat().st_size if partial.is_file() else 0
    what = (f"stalled: no data for {timeout:g} s" if isinstance(error, TimeoutError)
            else f"was cut off ({type(error).__name__})")
    return (f"The download of {url} {what}, after {received / 1e6:.1f} MB. The part received is kept in "
            f"{partial}: run again to resume from there (delete it to start over), or get the archive by "
            f"hand: {MANUAL_DOWNLOAD} ({root}).")


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
