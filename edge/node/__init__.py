"""The node appliance: cameras, detector, analytics, durable outbox, MQTT publishing and health.

`runtime.NodeRuntime` composes the parts; each lives in its own module so it can be tested alone:
`sources` (cameras and their health), `outbox` (SQLite, written before any send), `mqtt` (the publisher
that drains the outbox) and `heartbeat` (node and camera health every 30 s).
"""
