"""`showroom hardware uniform` on a synthetic snapshot: staff in a saturated uniform, visitors in others.

The learnt cue is checked the way the node uses it: `edge.cues.uniform.wears_uniform` with the config the
command wrote, on the staff it learnt from, on a staff member it never saw and on every visitor.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from click.testing import CliRunner

from edge.config import load_config
from edge.cues.uniform import wears_uniform
from hardware.uniform import replace_block, uniform_command

REPO = Path(__file__).resolve().parents[2]
UNIFORM_BGR = (170, 60, 15)  # a saturated dark blue
OTHER_SHIRTS_BGR = [
    (40, 40, 200),
    (40, 160, 40),
    (40, 200, 220),
    (235, 235, 235),
    (70, 70, 70),
    (190, 160, 140),
]
"""Red, green, yellow, white, dark grey and a washed-out blue (same hue family, far less saturated)."""


def person(image: np.ndarray, xywh: tuple[int, int, int, int], shirt_bgr: tuple[int, int, int]) -> None:
    """A standing person as rectangles: head, shirt (shoulders to hips), trousers; a little sensor noise."""
    x, y, w, h = xywh
    rng = np.random.default_rng(x * 7 + y)
    parts = [
        (0.0, 0.15, (140, 170, 210), 0.3),
        (0.15, 0.55, shirt_bgr, 0.0),
        (0.55, 1.0, (50, 40, 35), 0.1),
    ]
    for top, bottom, colour, inset in parts:
        y1, y2 = y + round(top * h), y + round(bottom * h)
        x1, x2 = x + round(inset * w), x + w - round(inset * w)
        patch = np.array(colour, np.float64) + rng.normal(0, 6, (y2 - y1, x2 - x1, 3))
        image[y1:y2, x1:x2] = np.clip(patch, 0, 255).astype(np.uint8)


def snapshot(tmp_path: Path) -> tuple[Path, list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(150, 12, (480, 640, 3)), 0, 255).astype(np.uint8)
    staff = [(30, 40, 60, 170), (200, 60, 56, 160), (420, 30, 64, 180), (560, 250, 58, 170)]
    others = [(110, 260, 60, 170), (250, 280, 56, 160), (350, 250, 62, 175), (470, 270, 60, 170)]
    others += [(120, 30, 60, 170), (300, 40, 58, 165)]
    for box in staff:
        person(image, box, UNIFORM_BGR)
    for box, shirt in zip(others, OTHER_SHIRTS_BGR, strict=True):
        person(image, box, shirt)
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), image)
    return path, staff, others


def as_arg(box: tuple[int, int, int, int]) -> str:
    return ",".join(str(v) for v in box)


def config_copy(tmp_path: Path) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text((REPO / "examples" / "pets09.yaml").read_text())
    return path


def test_learnt_uniform_separates_staff_and_is_written_into_the_config(tmp_path: Path) -> None:
    frame, staff, others = snapshot(tmp_path)
    config = config_copy(tmp_path)
    original = config.read_text()
    learn_from = staff[:3]  # staff[3] is never shown to the command
    args = ["--config", str(config), "--camera", "view-1", "--snapshot", str(frame), "--write"]
    for box in learn_from:
        args += ["--boxes", as_arg(box)]
    for box in others:
        args += ["--others", as_arg(box)]
    result = CliRunner().invoke(uniform_command, args)
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "separation 100% (9 of 9 people classified right)" in result.output

    # The node's own cue, with the config as written: every staff member (one never shown), no visitor.
    appearance = load_config(config).staff_appearance
    assert appearance is not None
    image = cv2.imread(str(frame))
    xyxy = [np.array([x, y, x + w, y + h], float) for x, y, w, h in [*staff, *others]]
    flagged = [wears_uniform(image, b, appearance) for b in xyxy]
    assert flagged == [True] * len(staff) + [False] * len(others)

    # Only the staff_appearance block was added; every other line (comments included) is as it was.
    written = config.read_text()
    assert written.startswith(original.rstrip("\n"))
    assert written.count("staff_appearance:") == 1
    data = yaml.safe_load(written)
    assert data["staff_appearance"]["uniform_hsv"][0] == appearance.uniform_hsv[0]

    # Learning again replaces the block in place.
    again = CliRunner().invoke(uniform_command, args)
    assert again.exit_code == 0, again.output
    assert config.read_text() == written


def test_a_colour_that_does_not_separate_is_reported_and_not_written(tmp_path: Path) -> None:
    frame, staff, others = snapshot(tmp_path)
    config = config_copy(tmp_path)
    original = config.read_text()
    # A visitor who happens to wear the uniform's blue: no colour can tell them from staff.
    args = ["--config", str(config), "--camera", "view-1", "--snapshot", str(frame), "--write"]
    args += ["--boxes", as_arg(staff[0]), "--boxes", as_arg(staff[1])]
    args += ["--others", as_arg(others[0]), "--others", as_arg(staff[3])]
    result = CliRunner().invoke(uniform_command, args)
    print(result.output)
    assert result.exit_code == 1
    assert "not written" in result.output
    assert config.read_text() == original


def test_unusable_inputs_exit_2_naming_the_problem(tmp_path: Path) -> None:
    frame, staff, _ = snapshot(tmp_path)
    config = config_copy(tmp_path)
    base = ["--config", str(config), "--snapshot", str(frame)]
    unknown = CliRunner().invoke(uniform_command, [*base, "--camera", "nope", "--boxes", as_arg(staff[0])])
    assert unknown.exit_code == 2 and "no camera 'nope'" in unknown.output
    outside = CliRunner().invoke(uniform_command, [*base, "--camera", "view-1", "--boxes", "600,400,80,200"])
    assert outside.exit_code == 2 and "outside the 640 x 480 snapshot" in outside.output
    malformed = CliRunner().invoke(uniform_command, [*base, "--camera", "view-1", "--boxes", "1,2,3"])
    assert malformed.exit_code == 2 and "expected x,y,w,h" in malformed.output
    garbage = tmp_path / "bad.png"
    garbage.write_bytes(b"nope")
    unreadable = CliRunner().invoke(
        uniform_command,
        [
            "--config",
            str(config),
            "--camera",
            "view-1",
            "--snapshot",
            str(garbage),
            "--boxes",
            as_arg(staff[0]),
        ],
    )
    assert unreadable.exit_code == 2 and str(garbage) in unreadable.output


def test_the_block_is_replaced_between_its_neighbours_keeping_their_comments() -> None:
    text = "a: 1\nstaff_appearance:\n  uniform_hsv: [1, 2, 3]\n\n# the thresholds\nthresholds:\n  x: 1\n"
    new = replace_block(text, "staff_appearance", "staff_appearance:\n  uniform_hsv: [9, 9, 9]\n")
    assert (
        new == "a: 1\nstaff_appearance:\n  uniform_hsv: [9, 9, 9]\n\n# the thresholds\nthresholds:\n  x: 1\n"
    )
