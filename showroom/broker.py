"""An embedded MQTT broker (amqtt, pure Python) for the demo on machines without Mosquitto.

MQTT 3.1.1 only: the edge node and the aggregator fall back to 3.1.1 by themselves (the aggregator then
subscribes without a shared subscription, which one aggregator does not need). Listens on 127.0.0.1 only,
anonymous: a demo broker, not one for a store.

    python -m showroom.broker --port 18830
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

import click

log = logging.getLogger(__name__)


CONNACK_UNACCEPTABLE_PROTOCOL = bytes((0x20, 0x02, 0x00, 0x01))
"""MQTT 3.1.1 CONNACK, return code 1 "unacceptable protocol version" [MQTT-3.1.2-2]."""
MQTT_311_LEVEL = 4


def broker_config(port: int) -> dict[str, object]:
    """amqtt's configuration: one TCP listener on loopback, anonymous clients, no $SYS topics."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    """One whole MQTT control packet: fixed header, remaining length (variable byte integer), the rest."""
    head = await reader.readexactly(1)
    length, shift, raw = 0, 0, b""
    while True:
        byte = await reader.readexactly(1)
        raw += byte
        length |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80 or shift > 21:
            break
        shift += 7
    return head + raw + await reader.readexactly(length)


def protocol_level(connect: bytes) -> int | None:
    """The protocol level of a CONNECT packet (4: MQTT 3.1.1, 5: MQTT 5); None when it is not one."""
    if not connect or connect[0] >> 4 != 1:
        return None
    i = 1
    while connect[i] & 0x80:
        i += 1
    i += 1
    name_len = int.from_bytes(connect[i : i + 2], "big")
    level_at = i + 2 + name_len
    return connect[level_at] if level_at < len(connect) else None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _front(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, inner_port: int) -> None:
    """One client: an MQTT 5 CONNECT is refused at once with the 3.1.1 answer the specification asks for
    (amqtt would wait on it until the client's keep-alive ran out), so clients fall back to 3.1.1 without
    delay; anything else is passed to amqtt unchanged, both ways."""
    try:
        connect = await _read_packet(reader)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
        return
    if protocol_level(connect) not in (None, MQTT_311_LEVEL):
        writer.write(CONNACK_UNACCEPTABLE_PROTOCOL)
        await writer.drain()
        writer.close()
        return
    inner_reader, inner_writer = await asyncio.open_connection("127.0.0.1", inner_port)
    inner_writer.write(connect)
    await asyncio.gather(_pipe(reader, inner_writer), _pipe(inner_reader, writer))


async def serve(port: int) -> None:
    """Run the broker on 127.0.0.1:`port` until SIGTERM or SIGINT."""
    from amqtt.broker import Broker

    with socket.socket() as probe:  # amqtt's own listener: a free loopback port behind the front
        probe.bind(("127.0.0.1", 0))
        inner_port = int(probe.getsockname()[1])
    broker = Broker(broker_config(inner_port))
    await broker.start()
    front = await asyncio.start_server(lambda r, w: _front(r, w, inner_port), "127.0.0.1", port)
    log.info("embedded MQTT broker (amqtt) on 127.0.0.1:%d", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    front.close()
    await broker.shutdown()
    log.info("embedded MQTT broker stopped")


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="TCP port on 127.0.0.1.")
def main(port: int) -> None:
    """An embedded MQTT 3.1.1 broker on 127.0.0.1 (for the demo)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(port))


if __name__ == "__main__":
    main()
