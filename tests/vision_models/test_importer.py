"""`showroom models import`: tiny ONNX detectors built here with onnx.helper, imported into a temporary model
directory, listed, loaded and run with the node's detector code; bad files refused with one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from click.testing import CliRunner, Result
from onnx import TensorProto, helper

from showroom.cli import main
from vision_models.detector import load_detector
from vision_models.local_registry import LOCAL_REGISTRY_FILE, EntrySchema, LocalRegistryError
from vision_models.registry import MODELS, get_entry, model_ids, sha256_of

SHARED_MODELS = Path(__file__).resolve().parents[3] / "shared" / "models"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "pets09.yaml"

INPUT_WH = (320, 256)
ANCHORS = sum((INPUT_WH[0] // s) * (INPUT_WH[1] // s) for s in (8, 16, 32))  # 1680
BOX_XYXY_INPUT = (40.0, 60.0, 120.0, 220.0)  # the constant person box, in network input pixels
SCORE = 0.9


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the shared model directory as SHOWROOM_MODEL_DIR, and an empty user cache."""
    directory = tmp_path / "models"
    directory.mkdir()
    for onnx_file in SHARED_MODELS.glob("*.onnx"):
        shutil.copyfile(onnx_file, directory / onnx_file.name)
    monkeypatch.setenv("SHOWROOM_MODEL_DIR", str(directory))
    monkeypatch.setenv("SHOWROOM_CACHE_DIR", str(tmp_path / "cache"))
    return directory


def _constant_output(name: str, values: np.ndarray, input_name: str) -> list[onnx.NodeProto]:
    """Nodes making `name` = `values` + 0 * mean(input): constant boxes from a graph that reads its input."""
    return [
        helper.make_node("ReduceMean", [input_name], [f"{name}_mean"], keepdims=0),
        helper.make_node(
            "Constant",
            [],
            [f"{name}_zero"],
            value=helper.make_tensor(f"{name}_z", TensorProto.FLOAT, [], [0.0]),
        ),
        helper.make_node("Mul", [f"{name}_mean", f"{name}_zero"], [f"{name}_nothing"]),
        helper.make_node("Constant", [], [f"{name}_const"], value=onnx.numpy_helper.from_array(values)),
        helper.make_node("Add", [f"{name}_const", f"{name}_nothing"], [name]),
    ]


def make_yolov8_detector(
    path: Path,
    *,
    classes: int = 2,
    input_shape: list[int | str] | None = None,
    names: str | None = "{0: 'person', 1: 'car'}",
) -> Path:
    """An Ultralytics-YOLOv8-shaped detector: input `images` [1,3,256,320], output `output0` [1, 4+C, 1680]
    holding one person box (cx, cy, w, h of BOX_XYXY_INPUT, score SCORE) and nothing else."""
    head = np.zeros((1, 4 + classes, ANCHORS), np.float32)
    x1, y1, x2, y2 = BOX_XYXY_INPUT
    head[0, :4, 7] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
    head[0, 4, 7] = SCORE
    head[0, :4, 8] = [200.0, 100.0, 30.0, 60.0]
    head[0, 5 % (4 + classes), 8] = 0.95 if classes > 1 else 0.0  # a confident car: never a person
    shape = input_shape or [1, 3, INPUT_WH[1], INPUT_WH[0]]
    graph = helper.make_graph(
        _constant_output("output0", head, "images"),
        "tiny-yolov8",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(head.shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    if names is not None:
        helper.set_model_props(model, {"names": names})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_rtmdet_detector(path: Path) -> Path:
    """An mmdeploy-RTMDet-shaped detector with a dynamic input [1,3,h,w]: `dets` [1,2,5] and `labels` [1,2]
    (one person at BOX_XYXY_INPUT, one box of class 1)."""
    dets = np.array([[[*BOX_XYXY_INPUT, SCORE], [10, 10, 50, 50, 0.99]]], np.float32)
    labels = np.array([[0, 1]], np.int64)
    nodes = _constant_output("dets", dets, "input")
    nodes.append(helper.make_node("Constant", [], ["labels"], value=onnx.numpy_helper.from_array(labels)))
    graph = helper.make_graph(
        nodes,
        "tiny-rtmdet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [
            helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, "num_dets", 5]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [1, "num_dets"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def models_cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["models", *args])


def assert_clean_error(result: Result, *fragments: str) -> None:
    """Exit 2 with one `error:` line naming what went wrong (besides INFO log lines), and no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and all(" INFO " in line for line in lines if line not in errors), result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_import_lists_loads_and_detects_the_constant_box(model_dir: Path, tmp_path: Path) -> None:
    source = make_yolov8_detector(tmp_path / "ceiling.onnx")
    digest = sha256_of(source)
    result = models_cli("import", str(source), "--id", "ceiling-v8", "--licence", "AGPL-3.0 (Ultralytics)")
    assert result.exit_code == 0, result.output
    installed = model_dir / "ceiling-v8.onnx"
    assert installed.read_bytes() == source.read_bytes()
    assert f"ceiling-v8: imported {source} -> {installed} (sha256 {digest})" in result.output

    listed = models_cli("list")
    assert listed.exit_code == 0, listed.output
    assert "ceiling-v8 (imported): verified; yolov8, input 320x256 (fixed)" in listed.output
    assert f"sha256: {digest}" in listed.output and "licence AGPL-3.0 (Ultralytics)" in listed.output
    assert "rtmdet-nano-person (default): verified" in listed.output  # the built-in models stay
    assert model_ids() == ["rtmdet-nano-person", "yolox-nano", "ceiling-v8"]

    entry = get_entry("ceiling-v8")
    assert entry.imported and entry.sha256 == (digest,) and entry.classes == ("person", "car")
    assert entry.preprocess.channel_order == "rgb" and entry.preprocess.std_bgr == (255.0, 255.0, 255.0)

    detector = load_detector("ceiling-v8")
    frame = np.zeros((512, 640, 3), np.uint8)  # twice the network input: boxes come back scaled by 2
    detections = detector.detect(frame)
    assert detector.sha256 == digest
    np.testing.assert_allclose(detections.xyxy, [[2 * v for v in BOX_XYXY_INPUT]], atol=1e-3)
    np.testing.assert_allclose(detections.confidence, [SCORE], atol=1e-6)
    assert detections.resolution_wh == (640, 512)


def test_a_node_configuration_can_name_an_imported_detector(model_dir: Path, tmp_path: Path) -> None:
    source = make_yolov8_detector(tmp_path / "ceiling.onnx")
    assert models_cli("import", str(source), "--id", "ceiling-v8").exit_code == 0
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    config["detector"] = {"model": "ceiling-v8", "threads": 1}
    for camera in config["cameras"]:  # the example's files, named from where the copy lives
        camera["source"] = str((EXAMPLE_CONFIG.parent / camera["source"]).resolve())
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    checked = CliRunner().invoke(main, ["edge", "check-config", str(path)])
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("OK ")
    from edge.config import load_config

    detector = load_detector(load_config(path).detector.model)  # what the node does when it starts
    assert detector.model_id == "ceiling-v8"


def test_import_a_dynamic_rtmdet_export_at_a_declared_size(model_dir: Path, tmp_path: Path) -> None:
    source = make_rtmdet_detector(tmp_path / "end2end.onnx")
    no_size = models_cli("import", str(source), "--id", "steep-rtm", "--postprocess", "rtmdet")
    assert_clean_error(no_size, str(source), "dynamic", "--input-size")
    args = ["--id", "steep-rtm", "--postprocess", "rtmdet", "--input-size", "480x384"]
    result = models_cli("import", str(source), *args, "--preprocess", "bgr-imagenet")
    assert result.exit_code == 0, result.output
    entry = get_entry("steep-rtm")
    assert (
        entry.dynamic_input and entry.input_size_wh == (480, 384) and entry.output_names == ("dets", "labels")
    )
    assert entry.preprocess.mean_bgr == (103.53, 116.28, 123.675)
    detector = load_detector("steep-rtm", input_size_wh=(320, 256))
    detections = detector.detect(np.zeros((256, 320, 3), np.uint8))
    np.testing.assert_allclose(detections.xyxy, [BOX_XYXY_INPUT], atol=1e-3)  # the class-1 box is dropped


def test_reimport_is_refused_for_other_bytes_unless_replaced(model_dir: Path, tmp_path: Path) -> None:
    first = make_yolov8_detector(tmp_path / "a.onnx")
    second = make_yolov8_detector(tmp_path / "b.onnx", names="{0: 'person', 1: 'forklift'}")
    assert sha256_of(first) != sha256_of(second)
    assert models_cli("import", str(first), "--id", "ceiling-v8").exit_code == 0
    again = models_cli("import", str(first), "--id", "ceiling-v8")
    assert again.exit_code == 0, again.output  # the same bytes again: nothing changes
    refused = models_cli("import", str(second), "--id", "ceiling-v8")
    assert_clean_error(refused, str(second), "already imported", sha256_of(first), "--replace")
    assert get_entry("ceiling-v8").sha256 == (sha256_of(first),)
    replaced = models_cli("import", str(second), "--id", "ceiling-v8", "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert get_entry("ceiling-v8").sha256 == (sha256_of(second),)
    assert load_detector("ceiling-v8").sha256 == sha256_of(second)
    registry = yaml.safe_load((model_dir / LOCAL_REGISTRY_FILE).read_text(encoding="utf-8"))
    assert [m["id"] for m in registry["models"]] == ["ceiling-v8"]


def test_bad_files_and_options_give_one_clear_error(model_dir: Path, tmp_path: Path) -> None:
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("this is not a model\n")
    assert_clean_error(
        models_cli("import", str(not_onnx), "--id", "x1"), str(not_onnx), "not a loadable ONNX"
    )

    rank3 = make_yolov8_detector(tmp_path / "rank3.onnx", input_shape=[1, 3, 256])
    assert_clean_error(models_cli("import", str(rank3), "--id", "x2"), str(rank3), "rank 3", "[batch, 3,")

    good = make_yolov8_detector(tmp_path / "good.onnx")
    unknown = models_cli("import", str(good), "--id", "x3", "--postprocess", "detr")
    assert_clean_error(unknown, str(good), "unknown postprocess family 'detr'", "rtmdet, yolox, yolov8")
    wrong_family = models_cli("import", str(good), "--id", "x4", "--postprocess", "yolox")
    assert_clean_error(wrong_family, str(good), "do not fit the yolox family")
    clash = models_cli("import", str(good), "--id", "yolox-nano")
    assert_clean_error(clash, str(good), "built-in model's id")
    wrong_size = models_cli("import", str(good), "--id", "x5", "--input-size", "640x640")
    assert_clean_error(wrong_size, str(good), "fixed input size 320x256")
    person = models_cli("import", str(good), "--id", "x6", "--person-class", "7")
    assert_clean_error(person, str(good), "--person-class 7", "it has 2")
    preprocess = models_cli("import", str(good), "--id", "x7", "--preprocess", "bgr")
    assert_clean_error(preprocess, str(good), "unknown preprocess 'bgr'")
    missing = models_cli("import", str(tmp_path / "nope.onnx"), "--id", "x8")
    assert_clean_error(missing, "nope.onnx", "no such file")

    assert not (model_dir / LOCAL_REGISTRY_FILE).exists()  # nothing was registered
    assert model_ids() == ["rtmdet-nano-person", "yolox-nano"]


def test_an_ultralytics_checkpoint_needs_the_train_extra(model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    try:
        import ultralytics  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ultralytics is installed here: the error path cannot be reached")
    checkpoint = tmp_path / "ceiling.pt"
    checkpoint.write_bytes(b"not really a torch checkpoint")
    result = models_cli("import", str(checkpoint), "--id", "ceiling-pt")
    assert_clean_error(result, str(checkpoint), "ultralytics", "pip install '.[train]'")


def test_custom_preprocess_spec(model_dir: Path, tmp_path: Path) -> None:
    source = make_yolov8_detector(tmp_path / "ceiling.onnx", classes=1, names=None)
    spec = "order=bgr;mean=10,20,30;std=2,2,2;pad=0"
    result = models_cli("import", str(source), "--id", "ceiling-raw", "--preprocess", spec)
    assert result.exit_code == 0, result.output
    entry = get_entry("ceiling-raw")
    assert entry.classes == ("person",)
    assert (entry.preprocess.channel_order, entry.preprocess.mean_bgr) == ("bgr", (10.0, 20.0, 30.0))
    assert (entry.preprocess.std_bgr, entry.preprocess.pad_value) == ((2.0, 2.0, 2.0), 0)


def test_the_local_file_uses_the_built_in_entries_schema(model_dir: Path, tmp_path: Path) -> None:
    for entry in MODELS.values():  # every built-in entry survives the file format unchanged
        assert EntrySchema.from_entry(entry).to_entry() == entry
    assert (
        models_cli("import", str(make_yolov8_detector(tmp_path / "c.onnx")), "--id", "ceiling-v8").exit_code
        == 0
    )
    path = model_dir / LOCAL_REGISTRY_FILE
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["models"][0]["postprocess"]["person_class"] = 5  # only two classes
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(
        LocalRegistryError, match=r"registry.local.yaml: models\[0\] \(ceiling-v8\).*person_class 5"
    ):
        get_entry("ceiling-v8")
    data["models"][0]["sha256"] = ["abc"]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(LocalRegistryError, match=r"invalid local registry: models\.0\.sha256\.0"):
        get_entry("ceiling-v8")
