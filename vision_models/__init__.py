"""Model zoo and ONNX inference: registry, verified model files, person detection.

- `vision_models.detections`: `Detections` (the one detections type) and the `Detector` Protocol.
- `vision_models.registry`: registered models (`MODELS`, `DEFAULT_MODEL_ID`), lookup in `SHOWROOM_MODEL_DIR`
  then the user cache, sha256 verified on every load, `ModelError` and its subclasses.
- `vision_models.detector`: `load_detector(model_id, input_size_wh=..., score_threshold=..., threads=...,
  provider=...)` -> `OnnxDetector` with `detect`, `detect_batch`, `last_timings`, `stats`, `model_id`,
  `sha256`.
- `vision_models.fetch`, `vision_models.quantize`: download from the official URL; local INT8 variants.
- `vision_models.evaluation`: AP50 / precision / recall against MOTChallenge ground truth.
- `vision_models.cli`: `showroom models list | fetch | quantize | detect`.
"""
