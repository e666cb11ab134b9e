"""Model zoo and ONNX inference: registry, verified model files, person detection."""
