"""Wire codec for events: msgspec (MessagePack or JSON), zstd above a size threshold.

Frame layout: the encoded envelope as is, or, when it is at least
``compress_threshold_bytes`` long, the same bytes as one zstd frame. Decoding tells the
two apart by the zstd magic number (``28 B5 2F FD``, RFC 8878 §3.1.1), which neither a
MessagePack map nor a JSON object can start with.

Payloads are encoded with their fields only; the envelope's ``type`` names the payload
class to decode them into (see :func:`corec.core.events.payload_types`). Decimals are
written as text, so no precision is lost on the wire.

The in-process ``memory`` bus passes objects and never calls the codec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec
import zstandard

from corec.core.errors import InvalidEvent
from corec.core.events import Event, Payload, payload_types

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _WireEvent(msgspec.Struct, frozen=True, array_like=True):
    id: str
    channel: str
    type: str
    ts_ns: int
    source: str
    key: str | None
    payload: msgspec.Raw


class Codec:
    """Encode and decode :class:`Event` envelopes.

    Args:
        format: ``"msgpack"`` (default, compact) or ``"json"`` (readable).
        compress_threshold_bytes: frames this long or longer are zstd-compressed.
        zstd_level: zstd compression level (1 fast … 19 small); 3 is zstd's default.
        registry: payload classes by ``TYPE``; defaults to every registered payload.
    """

    def __init__(
        self,
        format: Literal["msgpack", "json"] = "msgpack",
        *,
        compress_threshold_bytes: int = 1024,
        zstd_level: int = 3,
        registry: Mapping[str, type[Payload]] | None = None,
    ) -> None:
        if compress_threshold_bytes < 0:
            raise ValueError("compress_threshold_bytes must be >= 0")
        self.format = format
        self.compress_threshold_bytes = compress_threshold_bytes
        self._registry = registry if registry is not None else payload_types()
        if format == "msgpack":
            self._encoder: msgspec.msgpack.Encoder | msgspec.json.Encoder = msgspec.msgpack.Encoder(
                decimal_format="string"
            )
            self._raw_decoder = msgspec.msgpack.Decoder(_WireEvent)
            self._decode_payload = msgspec.msgpack.decode
        elif format == "json":
            self._encoder = msgspec.json.Encoder(decimal_format="string")
            self._raw_decoder = msgspec.json.Decoder(_WireEvent)  # type: ignore[assignment]
            self._decode_payload = msgspec.json.decode  # type: ignore[assignment]
        else:
            raise ValueError(f"format must be 'msgpack' or 'json', got {format!r}")
        self._compressor = zstandard.ZstdCompressor(level=zstd_level)
        self._decompressor = zstandard.ZstdDecompressor()

    def encode(self, event: Event) -> bytes:
        """Bytes of ``event`` on the wire (zstd frame above the threshold)."""
        raw_payload = msgspec.Raw(self._encoder.encode(event.payload))
        data = self._encoder.encode(
            _WireEvent(
                event.id,
                event.channel,
                event.type,
                event.ts_ns,
                event.source,
                event.key,
                raw_payload,
            )
        )
        if len(data) >= self.compress_threshold_bytes:
            return self._compressor.compress(data)
        return data

    def decode(self, data: bytes) -> Event:
        """The event in ``data``.

        Raises:
            InvalidEvent: the bytes are not a valid frame, the payload type is unknown,
                or the payload does not match its type (the message says which field).
        """
        try:
            if data[:4] == ZSTD_MAGIC:
                data = self._decompressor.decompress(data)
            wire = self._raw_decoder.decode(data)
        except (msgspec.DecodeError, zstandard.ZstdError) as exc:
            raise InvalidEvent(f"undecodable event frame: {exc}") from exc
        payload_type = self._registry.get(wire.type)
        if payload_type is None:
            raise InvalidEvent(f"event {wire.id}: unknown payload type {wire.type!r}")
        try:
            payload = self._decode_payload(wire.payload, type=payload_type)
        except msgspec.DecodeError as exc:
            raise InvalidEvent(f"event {wire.id} ({wire.type}): {exc}") from exc
        return Event(wire.id, wire.channel, wire.type, wire.ts_ns, wire.source, wire.key, payload)


def event_to_json(event: Event) -> str:
    """Readable JSON text of an event (for dead letters and logs); never raises."""
    try:
        return msgspec.json.encode(event).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(event)
