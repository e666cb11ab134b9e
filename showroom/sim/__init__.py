"""The simulated showroom judged: exact ground truth, the pipeline's accuracy on it, and store history.

`truth` (counts and events as DOMAIN.md defines them, from the true trajectories), `evaluate` (the edge
pipeline, through the node's real outbox, versus the truth), `history` (whole simulated store days as the
contract events a node would have sent, for the demo's backfill) and `cli` (`showroom sim`). The world,
people and cameras they run are `edge.sim`'s; `sim-store.yaml` is the packaged simulated store.
"""
