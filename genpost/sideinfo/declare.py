"""The stream's declared post-processing chain, on the wire as H.274 NNPFC / NNPFA SEI (docs/bitstream.md).

NNPFC declares (one per plugin: name, version, side-info format, weights sha256, default-mode options in a
URI), NNPFA activates (one per picture and plugin that should run on it), genpost's records carry the data.
``DeclaredChain`` collects what a stream says, from every access unit, tolerating damage: a message that
does not parse is counted and its picture falls back to what the rest of the stream says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode

from .nnpf import (
    MODE_URI,
    NNPFA_PAYLOAD_TYPE,
    NNPFC_PAYLOAD_TYPE,
    Nnpfa,
    Nnpfc,
    NnpfcProperties,
    NnpfMessages,
    write_nnpfa,
    write_nnpfc,
)

URI_TAG = "tag:genpost.example,2026:postprocessor/1"
"""nnpfc_uri_tag of a genpost plugin (RFC 4151 tag URI; ``genpost.example`` is a placeholder authority)."""
URI_PREFIX = "genpost:postprocessor/"

TAG_BYTES = 4


def weights_tag(sha256: Sequence[str]) -> bytes:
    """The first 4 bytes of the first weights sha256 (hex), or zeros for a plugin without weights."""
    try:
        tag = bytes.fromhex(sha256[0][: 2 * TAG_BYTES]) if sha256 else b""
    except ValueError:
        tag = b""
    return tag if len(tag) == TAG_BYTES else bytes(TAG_BYTES)


@dataclass
class PluginDeclaration:
    """What an NNPFC says about one genpost plugin."""

    name: str
    version: str = ""
    side_info: str = ""
    sha256: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    properties: NnpfcProperties | None = None
    weights_tag: bytes = b""  # a chain record's: the first 4 bytes of the first weights sha256 (zeros: none)

    def weights_differ(self, installed: Sequence[str]) -> bool:
        """Whether the installed plugin's weights (sha256 hex digests) differ from the declared ones: every
        digest when the declaration has them (NNPFC), else the 4-byte tag (a chain record)."""
        mine = tuple(s.lower() for s in installed)
        if self.sha256:
            return mine != self.sha256
        if self.weights_tag:
            return weights_tag(mine) != self.weights_tag
        return False

    @property
    def uri(self) -> str:
        query = [("version", self.version), ("format", self.side_info)]
        query += [("sha256", s) for s in self.sha256]
        query += [(f"option.{k}", v) for k, v in sorted(self.options.items())]
        return URI_PREFIX + quote(self.name, safe="-_.~") + "?" + urlencode([(k, v) for k, v in query if v])


def declaration_nnpfc(decl: PluginDeclaration, nnpfc_id: int) -> Nnpfc:
    return Nnpfc(id=nnpfc_id, uri_tag=URI_TAG, uri=decl.uri, properties=decl.properties)


def parse_declaration(c: Nnpfc) -> PluginDeclaration | None:
    """The genpost plugin an NNPFC names, or None when it is not a genpost URI."""
    if c.mode_idc != MODE_URI or c.uri_tag != URI_TAG or not c.uri.startswith(URI_PREFIX):
        return None
    path, _, query = c.uri[len(URI_PREFIX) :].partition("?")
    fields = parse_qsl(query, keep_blank_values=True)
    get = dict(fields)
    options = {k[len("option.") :]: v for k, v in fields if k.startswith("option.")}
    sha = tuple(v for k, v in fields if k == "sha256")
    return PluginDeclaration(path, get.get("version", ""), get.get("format", ""), sha, options, c.properties)


def declaration_messages(
    declared: list[tuple[int, PluginDeclaration]], active: list[int], key: bool, persistent: Sequence[int] = ()
) -> list[tuple[int, bytes]]:
    """SEI messages for one access unit: when ``key`` (a random-access point) every NNPFC and, for each
    ``persistent`` nnpfc_id, an NNPFA with persistence (in force until the stream ends or cancels it); then
    one picture-only NNPFA per other ``active`` nnpfc_id."""
    messages = [(NNPFC_PAYLOAD_TYPE, write_nnpfc(declaration_nnpfc(d, i))) for i, d in declared] if key else []
    if key:
        messages += [(NNPFA_PAYLOAD_TYPE, write_nnpfa(Nnpfa(target_id=i, persistence=True))) for i in persistent]
    return messages + [(NNPFA_PAYLOAD_TYPE, write_nnpfa(Nnpfa(target_id=i))) for i in active if i not in persistent]


class DeclaredChain:
    """NNPFC / NNPFA messages of a stream, keyed by presentation-order frame index.

    ``filters`` keeps the first NNPFC seen for each nnpfc_id, in order of first appearance (the chain's
    order); a later one with other content is counted in ``conflicts``. Activation follows H.274: an NNPFA
    activates its target for its picture, or, with persistence, until cancelled.
    """

    def __init__(self) -> None:
        self.filters: dict[int, Nnpfc] = {}
        self._events: dict[int, list[Nnpfa]] = {}
        self.malformed = 0
        self.conflicts = 0
        self.messages = {"nnpfc": 0, "nnpfa": 0}
        self.listing: list[dict] = []  # every NNPFA, for inspect
        self.frames = 0  # 1 + the highest frame index seen
        self.record_offset: int | None = None  # frame index of an AU minus that of its records (random access)

    def add(self, frame: int | None, found: NnpfMessages) -> None:
        """The messages of the access unit of ``frame`` (None: a picture that was not output)."""
        self.malformed += found.malformed
        if frame is not None:
            self.frames = max(self.frames, frame + 1)
        for c in found.nnpfc:
            self.messages["nnpfc"] += 1
            old = self.filters.setdefault(c.id, c)
            self.conflicts += old is not c and old != c
        for a in found.nnpfa:
            self.messages["nnpfa"] += 1
            self.listing.append({"frame": frame, **a.to_dict()})
            if frame is not None:
                self._events.setdefault(frame, []).append(a)

    def __bool__(self) -> bool:
        return bool(self.filters)

    def active(self) -> dict[int, set[int]]:
        """nnpfc_id -> the frame indices it is activated on."""
        out: dict[int, set[int]] = {i: set() for i in self.filters}
        persistent: set[int] = set()
        for f in range(self.frames):
            for a in self._events.get(f, ()):
                if a.cancel:
                    persistent.discard(a.target_id)
                elif a.persistence:
                    persistent.add(a.target_id)
                if not a.cancel and a.target_id in out:
                    out[a.target_id].add(f)
            for i in persistent:
                if i in out:
                    out[i].add(f)
        return out

    def stats(self) -> dict:
        return {"messages": dict(self.messages), "filters": len(self.filters), "malformed": self.malformed, "conflicts": self.conflicts}
