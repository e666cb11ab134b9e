"""Model zoo and ONNX inference: registry, verified model files, person detection, re-identification.

- `vision_models.arrays`: the array aliases (`Float32Array`, `Float64Array`, `IndexArray`, `BoolArray`,
  `UInt8Image`, `XY`) and `read_only`, which validated types use to hold arrays nothing can change.
- `vision_models.detections`: `Detections` (the one detections type, read-only once validated) and the
  `Detector` Protocol (`detect`, `detect_batch`, `model_id`, `sha256`, `last_timings`).
- `vision_models.registry`: registered models (`MODELS`, `DEFAULT_MODEL_ID`), lookup in `SHOWROOM_MODEL_DIR`
  then the user cache, sha256 verified on every load, `ModelError` and its subclasses.
- `vision_models.detector`: `load_detector(model_id, input_size_wh=..., score_threshold=..., threads=...,
  provider=...)` -> `OnnxDetector` with `detect`, `detect_batch`, `last_timings`, `stats`, `model_id`,
  `sha256`.
- `vision_models.session`: ONNX Runtime sessions tuned for edge CPUs (`make_session`) and the check that a
  file's inputs/outputs match its registry entry (`check_session_io`), for detectors and re-identification.
- `vision_models.reid`: `ReidEmbedder(model_id="person-reid-0288", threads=1)` with `embed(frame_bgr, xyxy)`
  -> (K, 256) unit-length appearance embeddings (NaN rows for unusable boxes), `model_id`, `sha256`, `dim`,
  `last_ms`.
- `vision_models.fetch`, `vision_models.quantize`: download from the official URL; local INT8 variants.
- `vision_models.importer`, `vision_models.local_registry`: bring your own detector (ONNX, or an Ultralytics
  `.pt` through the `train` extra): validated, copied into the model directory, registered with its sha256 in
  `registry.local.yaml` under the same entry schema as the built-in models.
- `vision_models.evaluation`: AP50 / precision / recall against MOTChallenge ground truth; its rows with
  person ids and floor positions (`load_mot_truth_rows`).
- `vision_models.cli`: `showroom models list | fetch | import | evaluate | quantize | detect`.
"""
