"""The simulated showroom: a floor, people with plausible behaviour, exact ground truth and camera faults.

Built from a node configuration (`edge.config.NodeConfig`): the doors, display cars and staff areas drawn
on the floor plan become the world people walk in; each configured camera sees that world through the
inverse of its calibration homography and yields person detections with realistic faults. The node's real
pipeline runs on those detections (`sim://` camera sources), and its output is compared with the truth.

Modules: `world` (geometry and paths), `behaviour` (visitors, groups, staff, daily rhythm), `scenarios`
(the seeded library), `simulation` (who is where, when), `truth` (counts and events as DOMAIN.md defines
them), `camera` (the detections a ceiling camera would produce), `source` (`sim://` frame sources),
`evaluate` (pipeline versus truth) and `demo` (the one-command demo).
"""
