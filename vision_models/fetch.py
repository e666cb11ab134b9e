"""Download a registered model from its official URL into the user cache, verifying its checksum."""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from vision_models.registry import (
    MODEL_DIR_ENV,
    ModelEntry,
    ModelError,
    ProgressCallback,
    VerifiedModel,
    cache_dir,
    get_entry,
    verify_file,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16


class FetchError(ModelError):
    """A model could not be downloaded (offline, HTTP error, archive without the model)."""


def fetch(
    model_id: str,
    *,
    dest_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    timeout_s: float = 30.0,
) -> VerifiedModel:
    """Download `model_id` from its official URL into `dest_dir` (the user cache by default).

    The file is written under a temporary name, extracted when the URL is an archive, checked against the
    registry's sha256 values and only then moved into place; a failed download leaves nothing behind.
    `progress(done_bytes, total_bytes_or_None)` is called as bytes arrive.

    Raises:
        FetchError: offline, HTTP error, or archive without the model file.
        ChecksumError: the download is not a file the registry accepts.
    """
    return fetch_entry(get_entry(model_id), dest_dir=dest_dir, progress=progress, timeout_s=timeout_s)


def fetch_entry(
    entry: ModelEntry,
    *,
    dest_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    timeout_s: float = 30.0,
) -> VerifiedModel:
    """`fetch` for a registry entry object (see `fetch`)."""
    if not entry.url:
        raise FetchError(
            f"{entry.id} has no download URL; run `showroom models quantize {entry.quantised_from}`"
        )
    target_dir = dest_dir or cache_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir, prefix=".fetch-") as tmp:
        download = Path(tmp) / "download"
        _download(entry.url, download, progress, timeout_s)
        candidate = _extract(download, entry.archive_member, Path(tmp)) if entry.archive_member else download
        verified = verify_file(entry, candidate)
        final = target_dir / entry.file_name
        shutil.move(str(candidate), final)
    log.info("fetched %s into %s (sha256 %s)", entry.id, final, verified.sha256)
    return VerifiedModel(entry=entry, path=final, sha256=verified.sha256)


def _download(url: str, dest: Path, progress: ProgressCallback | None, timeout_s: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "showroom-vision"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response, dest.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise FetchError(
            f"cannot download {url}: {exc}. Offline? Copy the model file into a directory and point "
            f"{MODEL_DIR_ENV} at it (see `showroom models list` for file names and sha256 values)."
        ) from exc


def _extract(archive: Path, member: str, into: Path) -> Path:
    """The model file `member` of a zip or tar(.gz) archive (matched by full path, else by file name)."""
    target = into / "model.onnx"
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                match = _pick_member(zf.namelist(), member)
                with zf.open(match) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile as exc:
            raise FetchError(f"downloaded zip archive is unreadable: {exc}") from exc
        return target
    if tarfile.is_tarfile(archive):
        try:
            with tarfile.open(archive) as tf:
                files = [m.name for m in tf.getmembers() if m.isfile()]
                source = tf.extractfile(_pick_member(files, member))
                if source is None:
                    raise FetchError(f"archive member {member} has no content")
                with source, target.open("wb") as dst:
                    shutil.copyfileobj(source, dst)
        except tarfile.TarError as exc:
            raise FetchError(f"downloaded tar archive is unreadable: {exc}") from exc
        return target
    raise FetchError("downloaded file is neither a zip nor a tar archive (an HTML error page?)")


def _pick_member(names: list[str], member: str) -> str:
    if member in names:
        return member
    match = next((n for n in names if Path(n).name == Path(member).name), None)
    if match is None:
        raise FetchError(f"archive has no {member}; it holds: {', '.join(names[:20])}")
    return match
