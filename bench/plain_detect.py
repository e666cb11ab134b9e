"""Reference for the whole-process comparison: the plain way to run a detector over a video.

Decode with OpenCV, letterbox, normalise with NumPy, run ONNX Runtime on 2 threads, write MOTChallenge rows.
No project code is imported, so start-up is only Python, NumPy, OpenCV and ONNX Runtime.

    python bench/plain_detect.py MODEL.onnx VIDEO OUT.txt 480 384
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import onnxruntime as ort

MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)


def main(model_path: str, video: str, out_path: str, in_w: int, in_h: int) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    cap = cv2.VideoCapture(video)
    with open(out_path, "w", encoding="utf-8") as out:  # noqa: PTH123
        frame_number = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frame_number += 1
            h, w = frame.shape[:2]
            scale = min(in_w / w, in_h / h)
            new_w, new_h = round(w * scale), round(h * scale)
            resized = cv2.resize(frame, (new_w, new_h)) if (new_w, new_h) != (w, h) else frame
            padded = cv2.copyMakeBorder(
                resized, 0, in_h - new_h, 0, in_w - new_w, cv2.BORDER_CONSTANT, value=(114, 114, 114)
            )
            blob = ((padded.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
            dets, labels = session.run(None, {"input": np.ascontiguousarray(blob)})
            keep = (dets[0, :, 4] >= 0.3) & (labels[0] == 0)
            for x1, y1, x2, y2, score in dets[0][keep]:
                x1, y1, x2, y2 = (v / scale for v in (x1, y1, x2, y2))
                x1, x2 = max(0.0, x1), min(float(w), x2)
                y1, y2 = max(0.0, y1), min(float(h), y2)
                out.write(
                    f"{frame_number},-1,{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1\n"
                )
    cap.release()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
