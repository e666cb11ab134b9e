"""Showroom Vision, the application: what wires the packages together.

`cli` is the root `showroom` command (logging set-up, and each package's command group found through the
`showroom.commands` entry points), `demo` runs the whole product on one machine, and `sim` holds the
simulator's ground truth, the pipeline's evaluation against it and the backfilled history: the parts of the
simulated showroom that judge or feed the edge, the aggregator and the dashboard together. The simulated
cameras themselves (`edge.sim`) stay with the edge, as a frame source for `sim://` cameras.

Only this package may import every other one; none of them imports it (tests/test_layering.py).
"""
