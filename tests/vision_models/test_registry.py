"""Model registry: lookup order, checksum on every load, clear errors, fetch over real HTTP."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import shutil
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vision_models.detector import build_detector, load_detector
from vision_models.fetch import FetchError, fetch_entry
from vision_models.registry import (
    MODELS,
    ChecksumError,
    ModelError,
    ModelFormatError,
    ModelNotFoundError,
    UnknownModelError,
    VerifiedModel,
    get_entry,
    model_ids,
    resolve,
    sha256_of,
    verify_file,
)
from vision_models.session import check_session_io, make_session

RTMDET = MODELS["rtmdet-nano-person"]
YOLOX = MODELS["yolox-nano"]
REID = MODELS["person-reid-0288"]


@pytest.fixture
def empty_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An empty SHOWROOM_MODEL_DIR and an empty user cache."""
    model_dir, cache = tmp_path / "models", tmp_path / "cache"
    model_dir.mkdir()
    monkeypatch.setenv("SHOWROOM_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("SHOWROOM_CACHE_DIR", str(cache))
    return model_dir, cache / "models"


def entry_for(path: Path, base: object = RTMDET) -> object:
    """`base` with the file name and accepted checksum of `path` (to load arbitrary files as that model)."""
    return dataclasses.replace(base, file_name=path.name, sha256=(sha256_of(path),))  # type: ignore[type-var]


def test_registered_models_resolve_from_model_dir_with_accepted_checksums(model_dir: Path) -> None:
    for model_id, entry in MODELS.items():
        model = resolve(model_id)
        assert model.path == model_dir / entry.file_name
        assert model.sha256 in entry.sha256
        assert model.sha256 == hashlib.sha256(model.path.read_bytes()).hexdigest()
        assert entry.licence.startswith("Apache-2.0") and entry.url.startswith("https://")
    assert resolve(None).entry.id == "rtmdet-nano-person"


def test_detector_tools_see_only_detectors_and_a_reid_model_is_no_detector(model_dir: Path) -> None:
    assert model_ids() == ["rtmdet-nano-person", "yolox-nano"]
    assert model_ids("reid") == ["person-reid-0288"]
    assert model_ids(None) == ["rtmdet-nano-person", "person-reid-0288", "yolox-nano"]
    assert REID.task == "reid" and REID.embedding_dim == 256 and REID.postprocess is None
    assert RTMDET.task == YOLOX.task == "detect"
    with pytest.raises(
        ModelError, match="person-reid-0288 is a re-identification model, not a person detector"
    ):
        load_detector("person-reid-0288")
    with pytest.raises(UnknownModelError, match="'person-reid-0288-int8'"):
        get_entry("person-reid-0288-int8")  # quantised variants exist for detectors only


def test_an_entry_must_match_its_task() -> None:
    with pytest.raises(ModelError, match="reid entry has an embedding_dim"):
        dataclasses.replace(REID, embedding_dim=None)
    with pytest.raises(ModelError, match="detector entry has a postprocess"):
        dataclasses.replace(YOLOX, postprocess=None)


def test_unknown_model_id_lists_registered_ids() -> None:
    with pytest.raises(
        UnknownModelError, match=r"unknown model id 'yolov99'.*rtmdet-nano-person.*yolox-nano"
    ):
        get_entry("yolov99")


def test_missing_file_names_file_dirs_and_env_var(empty_dirs: tuple[Path, Path]) -> None:
    model_dir, cache = empty_dirs
    with pytest.raises(ModelNotFoundError) as err:
        load_detector("yolox-nano")
    message = str(err.value)
    assert "yolox_nano_416.onnx" in message and "SHOWROOM_MODEL_DIR" in message
    assert str(model_dir) in message and str(cache) in message


def test_wrong_checksum_is_an_error_with_no_fallback_to_a_good_copy(
    empty_dirs: tuple[Path, Path], model_dir: Path
) -> None:
    offline_dir, cache = empty_dirs
    corrupt = offline_dir / YOLOX.file_name
    data = bytearray((model_dir / YOLOX.file_name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    cache.mkdir(parents=True)
    shutil.copy(model_dir / YOLOX.file_name, cache / YOLOX.file_name)  # a good copy later in the search order
    with pytest.raises(ChecksumError) as err:
        load_detector("yolox-nano")
    assert sha256_of(corrupt) in str(err.value) and YOLOX.sha256[0] in str(err.value)
    assert str(corrupt) in str(err.value)


def test_file_that_is_not_onnx_gets_a_format_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"<html>404 not found</html>" * 10)
    model = verify_file(entry_for(junk), junk)  # type: ignore[arg-type]
    with pytest.raises(ModelFormatError, match="not a loadable ONNX model"):
        build_detector(model)


def test_model_whose_io_differs_from_its_entry_is_rejected(model_dir: Path) -> None:
    # The YOLOX file registered as if it were the RTMDet model: input/output names and shapes differ.
    path = model_dir / YOLOX.file_name
    model = VerifiedModel(entry=entry_for(path, RTMDET), path=path, sha256=sha256_of(path))  # type: ignore[arg-type]
    with pytest.raises(ModelFormatError, match=r"inputs \['images'\], expected \['input'\]"):
        build_detector(model)
    wrong_outputs = dataclasses.replace(YOLOX, classes=("person",))
    with pytest.raises(ModelFormatError, match=r"output shape \[1, 3549, 85\], expected \[1, anchors, 6\]"):
        build_detector(VerifiedModel(wrong_outputs, path, sha256_of(path)))


def test_reid_model_whose_io_differs_from_its_entry_is_rejected(model_dir: Path) -> None:
    yolox_file = model_dir / YOLOX.file_name
    as_reid = VerifiedModel(entry_for(yolox_file, REID), yolox_file, sha256_of(yolox_file))  # type: ignore[arg-type]
    with pytest.raises(ModelFormatError, match=r"inputs \['images'\], expected \['inputs:0'\]"):
        check_session_io(as_reid.entry, make_session(as_reid))
    reid_file = model_dir / REID.file_name
    wider = dataclasses.replace(REID, embedding_dim=512)
    with pytest.raises(ModelFormatError, match=r"output shape \[1, 256\], expected \[1, 512\]"):
        check_session_io(wider, make_session(VerifiedModel(wider, reid_file, sha256_of(reid_file))))
    detector_entry = dataclasses.replace(
        YOLOX,
        file_name=reid_file.name,
        sha256=REID.sha256,
        input_name="inputs:0",
        output_names=("Identity:0",),
    )
    as_detector = VerifiedModel(detector_entry, reid_file, sha256_of(reid_file))
    with pytest.raises(
        ModelFormatError, match=r"input shape \[1, 256, 128, 3\], expected \[batch, 3, height"
    ):
        check_session_io(as_detector.entry, make_session(as_detector))


def test_input_size_and_provider_errors(model_dir: Path) -> None:
    with pytest.raises(ModelError, match="fixed input size 416x416; cannot run at 640x384"):
        load_detector("yolox-nano", input_size_wh=(640, 384))
    with pytest.raises(ModelError, match="multiples of 32, got 500x384"):
        load_detector("rtmdet-nano-person", input_size_wh=(500, 384))
    with pytest.raises(ModelError, match="unknown execution provider 'tpu'"):
        load_detector("rtmdet-nano-person", provider="tpu")
    with pytest.raises(
        ModelError, match=r"'openvino' .* is not installed; available: .*CPUExecutionProvider"
    ):
        load_detector("rtmdet-nano-person", provider="openvino")
    with pytest.raises(ModelError, match="score_threshold"):
        load_detector("rtmdet-nano-person", score_threshold=1.5)


def test_int8_variant_missing_says_how_to_make_it(empty_dirs: tuple[Path, Path]) -> None:
    with pytest.raises(ModelNotFoundError, match="showroom models quantize rtmdet-nano-person"):
        resolve("rtmdet-nano-person-int8")


# -- fetch over a real local HTTP server ------------------------------------------------------------------


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_fetch_downloads_verifies_and_reports_progress(http_dir: tuple[Path, str], model_dir: Path) -> None:
    root, base_url = http_dir
    shutil.copy(model_dir / YOLOX.file_name, root / "yolox_nano.onnx")
    entry = dataclasses.replace(YOLOX, url=f"{base_url}/yolox_nano.onnx")
    seen: list[tuple[int, int | None]] = []
    dest = root.parent / "dest"
    model = fetch_entry(entry, dest_dir=dest, progress=lambda done, total: seen.append((done, total)))
    assert model.path == dest / YOLOX.file_name and model.sha256 == YOLOX.sha256[0]
    size = (model_dir / YOLOX.file_name).stat().st_size
    assert seen[-1] == (size, size) and len(seen) > 1


def test_fetch_extracts_the_model_from_an_archive(http_dir: tuple[Path, str], model_dir: Path) -> None:
    root, base_url = http_dir
    with zipfile.ZipFile(root / "sdk.zip", "w") as zf:
        zf.writestr("sdk/pipeline.json", "{}")
        zf.write(model_dir / RTMDET.file_name, "sdk/end2end.onnx")
    entry = dataclasses.replace(RTMDET, url=f"{base_url}/sdk.zip", archive_member="sdk/end2end.onnx")
    model = fetch_entry(entry, dest_dir=root.parent / "dest")
    assert model.sha256 == RTMDET.sha256[0]


def test_fetch_extracts_the_model_from_a_tar_gz_archive(http_dir: tuple[Path, str], model_dir: Path) -> None:
    root, base_url = http_dir
    with tarfile.open(root / "resources.tar.gz", "w:gz") as tf:
        tf.add(model_dir / REID.file_name, "resources/model_float32.onnx")
    entry = dataclasses.replace(REID, url=f"{base_url}/resources.tar.gz")
    model = fetch_entry(entry, dest_dir=root.parent / "dest")
    assert model.sha256 == REID.sha256[0] and model.path.name == REID.file_name


def test_fetch_of_an_archive_without_the_model_names_what_it_holds(http_dir: tuple[Path, str]) -> None:
    root, base_url = http_dir
    readme = root / "README.md"
    readme.write_text("no model here")
    with tarfile.open(root / "resources.tar.gz", "w:gz") as tf:
        tf.add(readme, "resources/README.md")
    (root / "page.html").write_text("<html>quota exceeded</html>")
    with pytest.raises(FetchError, match=r"archive has no model_float32.onnx; it holds: resources/README.md"):
        fetch_entry(dataclasses.replace(REID, url=f"{base_url}/resources.tar.gz"), dest_dir=root.parent / "d")
    with pytest.raises(FetchError, match="neither a zip nor a tar archive"):
        fetch_entry(dataclasses.replace(REID, url=f"{base_url}/page.html"), dest_dir=root.parent / "d")


def test_fetch_of_wrong_bytes_fails_and_leaves_nothing(http_dir: tuple[Path, str]) -> None:
    root, base_url = http_dir
    (root / "yolox_nano.onnx").write_bytes(b"not the model")
    entry = dataclasses.replace(YOLOX, url=f"{base_url}/yolox_nano.onnx")
    dest = root.parent / "dest"
    with pytest.raises(ChecksumError):
        fetch_entry(entry, dest_dir=dest)
    assert list(dest.iterdir()) == []


def test_fetch_unreachable_names_model_dir_env(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = dataclasses.replace(YOLOX, url=f"http://127.0.0.1:{port}/yolox_nano.onnx")
    with pytest.raises(FetchError, match=r"Offline.*SHOWROOM_MODEL_DIR"):
        fetch_entry(entry, dest_dir=tmp_path / "dest", timeout_s=5)


def test_int8_variant_is_verified_against_its_quantisation_record(
    empty_dirs: tuple[Path, Path], model_dir: Path
) -> None:
    _, cache = empty_dirs
    cache.mkdir(parents=True)
    # Stand-in for a quantised file (same inputs/outputs): the registry only checks its recorded sha256.
    produced = cache / "yolox_nano_416_int8.onnx"
    shutil.copy(model_dir / YOLOX.file_name, produced)
    record = cache / "yolox_nano_416_int8.json"
    record.write_text(json.dumps({"sha256": sha256_of(produced), "quantised_from": "yolox-nano"}))
    detector = load_detector("yolox-nano-int8")
    assert detector.model_id == "yolox-nano-int8" and detector.sha256 == sha256_of(produced)
    record.write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(ChecksumError, match="yolox-nano-int8"):
        load_detector("yolox-nano-int8")
    record.write_text("{not json")
    with pytest.raises(ModelError, match="unreadable quantisation record"):
        load_detector("yolox-nano-int8")


def test_prediction_layers_found_for_quantisation(model_dir: Path) -> None:
    pytest.importorskip("onnx")
    from vision_models.quantize import prediction_convs

    # RTMDet: classification and box convs at 3 strides; YOLOX: box, objectness and class convs at 3 strides.
    assert len(prediction_convs(model_dir / RTMDET.file_name)) == 6
    assert len(prediction_convs(model_dir / YOLOX.file_name)) == 9
