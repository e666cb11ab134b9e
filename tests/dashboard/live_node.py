"""The reporting side of an edge node, for the dashboard's live tests: the edge's own outbox and MQTT
publisher (online status, last will `offline`) sending one camera's heartbeat every `--every` seconds until
the process is killed. Run: `python live_node.py --broker URL --store S --node N --outbox FILE`."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from edge.config import BrokerConfig
from edge.events import CameraHealth, EventStamper, Heartbeat, IdSource
from edge.node.mqtt import MqttPublisher
from edge.node.outbox import Outbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--every", type=float, default=2.0, help="Seconds between heartbeats.")
    args = parser.parse_args()
    outbox = Outbox(args.outbox, max_bytes=10_000_000)
    publisher = MqttPublisher(BrokerConfig(url=args.broker), outbox, store_id=args.store, node_id=args.node)
    publisher.start()
    stamper = EventStamper(args.store, args.node, IdSource(), next_seq=outbox.next_seq)
    started = time.monotonic()
    while True:
        camera = CameraHealth(
            camera_id="cam-live",
            state="ok",
            fps=5.0,
            target_fps=5.0,
            inference_ms=40.0,
            dropped_frames=0,
            reconnects=0,
            quality="excellent",
        )
        outbox.append(
            stamper.stamp(
                Heartbeat,
                datetime.now(UTC),
                cameras=[camera],
                outbox_depth=0,
                model_id="yolox-tiny",
                software_version="0.1.0",
                uptime_s=time.monotonic() - started,
            )
        )
        publisher.notify()
        time.sleep(args.every)


if __name__ == "__main__":
    main()
