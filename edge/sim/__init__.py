"""The simulated showroom as a frame source: a floor, people with plausible behaviour and camera faults.

Built from a node configuration (`edge.config.NodeConfig`): the doors, display cars and staff areas drawn
on the floor plan become the world people walk in; each configured camera sees that world through the
inverse of its calibration homography and yields person detections with realistic faults. The node's real
pipeline runs on those detections (`sim://` camera sources).

Modules: `world` (geometry and paths), `behaviour` (visitors, groups, staff, daily rhythm), `scenarios`
(the seeded library), `simulation` (who is where, when), `camera` (the detections a ceiling camera would
produce), `appearance` (what the re-identification model sees) and `source` (`sim://` frame sources).
The exact ground truth, the pipeline's evaluation against it, store history and the `showroom sim` and
`showroom demo` commands are the application's (`showroom.sim`, `showroom.demo`).
"""
