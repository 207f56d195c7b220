"""The declared chain between plugins and the wire: what ``--carriage nnpfc`` writes for a chain of
post-processors, and what ``enhance`` runs when the stream declares its chain (docs/bitstream.md).

NNPFC declares each plugin (repeated at every random-access point), NNPFA activates it per picture, the
records carry the data. Bytes are ``genpost.sideinfo``'s business; this module maps plugins to declarations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import media, sideinfo
from ..errors import PipelineError
from ..plugins import by_side_info_format, postprocessors
from ..postprocessor import PostProcessor


def _idc_parameters(count: int | None) -> int:
    """Smallest nnpfc_num_parameters_idc k with count <= (2048 << k) - 1 (0: unknown)."""
    if not count:
        return 0
    return next(k for k in range(1, 64) if count <= (2048 << k) - 1)


def properties(proc: PostProcessor, width: int, height: int) -> sideinfo.NnpfcProperties:
    """The NNPFC property fields of a plugin: 4:2:0 packed float tensors (genpost.learned.modeling.pack), its
    patch and complexity as the plugin class declares them (unknown fields stay 0 = unspecified)."""
    tile_w, tile_h = proc.patch_size or ((width + 1) // 2, (height + 1) // 2)
    p = sideinfo.NnpfcProperties(
        auxiliary_inp_idc=1 if proc.strength_input else 0,
        overlap=proc.patch_overlap,
        patch_width_minus1=max(0, tile_w - 1),
        patch_height_minus1=max(0, tile_h - 1),
        padding_type=1,  # replication (modeling.pack edge-pads)
    )
    if proc.parameter_count or proc.kmac_per_pixel:
        p.complexity_info_present_flag = True
        p.num_parameters_idc = _idc_parameters(proc.parameter_count)
        p.num_kmac_operations_idc = math.ceil(proc.kmac_per_pixel or 0)
        p.total_kilobyte_size = math.ceil((proc.parameter_count or 0) * 4 / 1024)
    return p


def declare(proc: PostProcessor, options: dict[str, str], width: int, height: int) -> sideinfo.PluginDeclaration:
    """A plugin as its NNPFC names it: name, version, side-info format, weights sha256 and the options given
    for it (``--option NAME.KEY=VALUE``), i.e. its default mode as the encoder ran it."""
    mine = {k.split(".", 1)[1]: str(v) for k, v in options.items() if k.startswith(proc.name + ".")}
    sha = tuple(w.sha256.lower() for w in proc.weights)
    return sideinfo.PluginDeclaration(proc.name, proc.version, proc.side_info or "", sha, mine, properties(proc, width, height))


class ChainSignalling:
    """Encoder side: what declares the chain. With ``--carriage nnpfc``, the NNPFC/NNPFA messages each
    access unit gets: a plugin with a default mode (``PostProcessor.default_mode``) is activated once per
    random-access point with a persistent NNPFA (no per-frame cost); any other plugin by a picture-only
    NNPFA on each frame a record of it covers, so a frame left without one is the encoder saying "off" for
    it. With the record carriages, a chain declaration record (``genpost/chain``) at every random-access
    point when records alone would lose the encoder's choice (``declares_chain``): several plugins that
    change frames (their order), or a default mode that changes a frame the encoder left without a record."""

    def __init__(
        self, chain: list[PostProcessor], records, options: dict[str, str], width: int, height: int,
        frames: int | None = None, default_acts: set[str] | None = None,
    ):  # fmt: skip
        """``default_acts``: the plugins whose default mode changed a frame left without a record (the
        encoder's analysis says; None: unknown, any default mode counts)."""
        self.declared = [(i + 1, declare(p, options, width, height)) for i, p in enumerate(chain)]
        self._always = [i + 1 for i, p in enumerate(chain) if p.default_mode or not p.side_info]
        acting = [
            i + 1 for i, p in enumerate(chain)
            if not p.side_info or (p.default_mode and (default_acts is None or p.name in default_acts))
        ]  # fmt: skip
        ids = {p.side_info: i + 1 for i, p in enumerate(chain) if p.side_info}
        self._covered: dict[int, set[int]] = {}
        for r in records:
            if r.format_id in ids:
                for f in r.frames:
                    self._covered.setdefault(f, set()).add(ids[r.format_id])
        # the order matters only where two plugins change frames (records, or a default mode that acts): a
        # chain whose encoder left all but one idle says everything with that one's records
        changing = set(acting) | {i for ids_ in self._covered.values() for i in ids_}
        self.declares_chain = len(changing) > 1 or any(
            frames is None or any(i not in self._covered.get(f, ()) for f in range(frames)) for i in acting
        )
        self.chain_payload = b""
        if self.declares_chain:
            try:
                self.chain_payload = sideinfo.encode_chain([d for _, d in self.declared])
            except ValueError as exc:
                raise PipelineError(f"cannot declare the chain in the stream: {exc}") from None
        self.chain_written: list[sideinfo.Record] = []  # the chain records chain_records handed out
        self._due = False

    def messages(self, frame: int | None, key: bool) -> list[tuple[int, bytes]]:
        covered = self._covered.get(frame, set()) if frame is not None else set()
        active = [i for i, _ in self.declared if i in covered]
        return sideinfo.declaration_messages(self.declared, active, key, self._always)

    def chain_records(self, frame: int | None, key: bool) -> list[sideinfo.Record]:
        """The chain declaration record for the access unit of ``frame`` (record carriages): one at each
        random-access point (``key``; the first access unit is one), none when records alone say it all.
        A random-access point whose picture has no frame index passes it on to the next one that has."""
        self._due = (self._due or key) and bool(self.chain_payload)
        if not self._due or frame is None:
            return []
        self._due = False
        record = sideinfo.Record(sideinfo.CHAIN_FORMAT, frame, self.chain_payload)
        self.chain_written.append(record)
        return [record]


def with_declaration(data: bytes, codec: str, signalling: ChainSignalling, frame: int | None, key: bool, records) -> bytes:
    """One access unit with its NNPFC/NNPFA messages and its records in one prefix SEI NAL unit."""
    messages = signalling.messages(frame, key)
    if records:
        messages.append(sideinfo.records_message(records))
    if not messages:
        return data
    return sideinfo.insert_nal(data, sideinfo.sei_nal_messages(codec, messages), codec)


def read_declared(inp: media.InputFile) -> sideinfo.DeclaredChain:
    """Every NNPFC / NNPFA the input carries, NNPFAs keyed by the frame index of their picture."""
    chain = sideinfo.DeclaredChain()
    codec = inp.sei_codec
    if codec:
        carry: list = []  # prefix SEI after a packet's last picture: the next access unit's
        for data, frame, _key in inp.packet_frames():
            messages = carry + list(sideinfo.prefix_sei_messages(data, codec, part="head"))
            chain.add(frame, sideinfo.nnpf_messages(messages))
            carry = list(sideinfo.prefix_sei_messages(data, codec, part="tail"))
            if chain.record_offset is None and frame is not None:
                firsts = [r.frame_index for t, p, _ in messages if t == 5 for r in sideinfo.records_from_sei_unregistered(p)[0]]
                chain.record_offset = frame - min(firsts) if firsts else None
        chain.add(None, sideinfo.nnpf_messages(carry))
    return chain


def shift_records(index: sideinfo.RecordIndex, offset: int) -> sideinfo.RecordIndex:
    """``index`` with every record moved by ``offset`` frames: a stream entered at a random-access point
    numbers its frames from 0, while the records name the frames of the whole stream they were cut from
    (genpost writes each record into the access unit of its first frame, so one offset fits all)."""
    if not offset:
        return index
    out = sideinfo.RecordIndex(index.max_stream_bytes)
    moved = []
    for r in index.records():
        first = r.frame_index + offset
        if first + r.count > 0:
            start = max(first, 0)
            moved.append(sideinfo.Record(r.format_id, start, r.payload, r.count - (start - first)))
    out.add(moved, index.malformed)
    return out


@dataclass
class DeclaredPlan:
    """What ``enhance`` runs for a declared chain: installed plugin names in chain order, the frames each
    is activated on, the options the stream gives each, and what could not be run. ``by``: what declared
    it, ``nnpfc`` (activation per picture) or ``chain`` (a chain record: every plugin on every frame, in
    its default mode where a frame has no record of it)."""

    names: list[str] = field(default_factory=list)  # activated on at least one frame
    declared: list[str] = field(default_factory=list)  # every installed plugin the stream declares
    frames: dict[str, set[int]] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    by: str = "nnpfc"

    def active(self, name: str, frame: int) -> bool:
        return (self.by == "chain" and name in self.declared) or frame in self.frames.get(name, ())

    def summary(self) -> dict:
        """What ``EnhanceReport.side_info["declared"]`` shows."""
        return {"chain": self.declared, "activated": self.names, "unknown": self.unknown, "by": self.by}


def _admit(out: DeclaredPlan, decl: sideinfo.PluginDeclaration | None, label: str, what: str, installed, formats):
    """The installed plugin class a declaration names (by name; by side-info format as a fallback), added
    to ``out`` with its options, or None: an unknown plugin (reported and skipped) or one declared twice. A
    version or weights mismatch is reported and the plugin still runs."""
    reg = (installed.get(decl.name) or formats.get(decl.side_info)) if decl is not None else None
    if decl is None or reg is None:
        out.unknown.append(label)
        out.warnings.append(f"the stream declares {what} ({label}) but no installed plugin provides it: skipped")
        return None
    cls = reg.cls
    if decl.version and decl.version != cls.version:
        out.warnings.append(f"the stream declares {decl.name} {decl.version}; installed is {cls.version}")
    if decl.weights_differ([w.sha256 for w in cls.weights]):
        out.warnings.append(f"the stream's {decl.name} weights (sha256) differ from the installed plugin's")
    if cls.name in out.declared:
        return None
    out.declared.append(cls.name)
    out.options.update({f"{cls.name}.{k}": v for k, v in decl.options.items()})
    return cls


def plan(chain: sideinfo.DeclaredChain) -> DeclaredPlan:
    """Map each declared NNPFC to an installed plugin (by name; by side-info format as a fallback); an
    unknown URI, or a version or weights mismatch, is reported, and an unknown one is skipped."""
    out = DeclaredPlan()
    installed, formats = postprocessors(), by_side_info_format()
    activated = chain.active()
    for nnpfc_id, c in chain.filters.items():
        decl = sideinfo.parse_declaration(c)
        label = decl.name if decl is not None else (c.uri or c.uri_tag or f"mode {c.mode_idc}")
        cls = _admit(out, decl, label, f"post-filter {nnpfc_id}", installed, formats)
        if cls is None:
            continue
        out.frames[cls.name] = activated.get(nnpfc_id, set())
        if out.frames[cls.name]:
            out.names.append(cls.name)
        else:
            out.warnings.append(f"the stream declares {cls.name} but activates it on no frame (the encoder chose off)")
    return out


def read_chain(index: sideinfo.RecordIndex) -> sideinfo.StreamChain:
    """The chain declaration records among a stream's records (every carriage and the sidecar)."""
    return sideinfo.stream_chain(index.records(sideinfo.CHAIN_FORMAT))


def chain_plan(found: sideinfo.StreamChain) -> DeclaredPlan:
    """What a chain declaration record (``genpost/chain``) runs: every declared plugin that is installed, in
    the declared order, on every frame (a frame without its record gets the plugin's default mode), with the
    declared options; unknown plugins and mismatches are reported as for NNPFC (``plan``). Empty when the
    stream holds no valid declaration (then the records name the plugins)."""
    out = DeclaredPlan(by="chain")
    installed, formats = postprocessors(), by_side_info_format()
    for decl in found.plugins or ():
        cls = _admit(out, decl, decl.name, "plugin", installed, formats)
        if cls is not None:
            out.names.append(cls.name)
    return out
