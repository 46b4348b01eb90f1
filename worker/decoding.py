"""Turning a response's bytes into text, safely: bounded inflation of gzip/deflate,
charset detection (header, BOM, meta/XML declaration), and sniffing binary bodies.

Pure (no I/O): the fetcher streams bytes through :class:`BoundedDecoder` so a
gzip bomb stops at the size cap, and the pipeline decodes the body it kept with
:func:`decode_body`. Unit-tested without a server.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Iterator

from .errors import PermanentError

DECODE_STEP_BYTES = 64 * 1024


# Magic numbers of things that are never a feed or an article, whatever the
# Content-Type says (servers label anything application/octet-stream).
_BINARY_MAGIC = (
    b"%PDF-",
    b"\x89PNG",
    b"GIF87a",
    b"GIF89a",
    b"\xff\xd8\xff",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"BZh",
    b"\x7fELF",
    b"OggS",
    b"ID3",
)


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)


def charset_from_content_type(value: str) -> str | None:
    for part in value.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            return val.strip().strip("\"'").lower()
    return None


def _known_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_body(body: bytes, *, header_charset: str | None) -> tuple[str, str]:
    """Decode an HTML body, returning ``(text, encoding_used)``.

    Sources in order: the HTTP header's charset, then the document's own
    declaration (``<meta charset>`` or the XML declaration), then a
    statistical guess. One exception, as in the WHATWG encoding standard and
    RFC 7303: a byte-order mark is unambiguous bytes and beats the header (a
    UTF-8 BOM decoded as Latin-1 is garbage). A declared charset that cannot
    decode the bytes is skipped rather than trusted, and UTF-8 with
    replacement is the last resort so one bad byte never loses a page.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, "replace"), name
    candidates: list[str | None] = [_known_codec(header_charset)]
    head = body[:4096]
    meta = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    if meta:
        candidates.append(_known_codec(meta.group(1).decode("ascii", "ignore")))
    for candidate in candidates:
        # UTF-16/32 declared without a BOM is a known publisher mistake (the
        # HTML standard maps such declarations to UTF-8); don't trust it.
        if candidate and not candidate.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
            try:
                return body.decode(candidate), candidate
            except UnicodeDecodeError:
                continue
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    if best is not None and best.encoding:
        return body.decode(best.encoding, "replace"), best.encoding
    return body.decode("utf-8", "replace"), "utf-8"


def looks_binary(body: bytes) -> bool:
    """True for bodies whose first bytes are a well-known binary format."""
    return body.lstrip(b"\r\n\t ")[:8].startswith(_BINARY_MAGIC)


class BoundedDecoder:
    """Undo Content-Encoding in steps of at most :data:`DECODE_STEP_BYTES`.

    ``zlib.decompressobj(...).decompress(data, max_length)`` leaves what it did
    not inflate in ``unconsumed_tail``, so one 64 KiB network chunk of a gzip
    bomb (which would inflate to ~64 MiB in one call) is inflated a step at a
    time and the caller can stop at its byte cap. httpx's own decoders inflate
    whole chunks, which is why the fetcher reads ``iter_raw`` and uses this.
    """

    def __init__(self, content_encoding: str, *, url: str) -> None:
        codings = [
            c.strip().lower()
            for c in content_encoding.split(",")
            if c.strip() and c.strip().lower() != "identity"
        ]
        self.url = url
        self.coding = codings[0] if codings else None
        if len(codings) > 1 or self.coding not in (None, "gzip", "x-gzip", "deflate"):
            raise PermanentError(
                f"unsupported Content-Encoding {content_encoding!r}",
                url=url,
                error_class="bad_encoding",
            )
        self._raw_deflate = False
        self._obj = self._new()

    def _new(self) -> zlib._Decompress | None:
        if self.coding is None:
            return None
        if self.coding in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" is meant to be zlib-wrapped, but some servers send raw
        # deflate; retry raw once if the zlib header is wrong.
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._obj is None:
            yield data
            return
        try:
            yield from self._inflate(data)
        except zlib.error as exc:
            raise PermanentError(
                f"bad {self.coding} data: {exc}", url=self.url, error_class="bad_encoding"
            ) from exc

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        pending = data
        while pending:
            assert self._obj is not None
            try:
                out = self._obj.decompress(pending, DECODE_STEP_BYTES)
            except zlib.error:
                if self.coding == "deflate" and not self._raw_deflate:
                    self._raw_deflate = True
                    self._obj = self._new()
                    continue
                raise
            if out:
                yield out
            pending = self._obj.unconsumed_tail
            if self._obj.eof and self._obj.unused_data:
                # Concatenated gzip members (legal, and what some CDNs send).
                pending = self._obj.unused_data
                self._obj = self._new()

    def flush(self) -> bytes:
        if self._obj is None:
            return b""
        try:
            return self._obj.flush()
        except zlib.error as exc:
            raise PermanentError(
                f"bad {self.coding} data: {exc}", url=self.url, error_class="bad_encoding"
            ) from exc
