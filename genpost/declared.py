"""The declared chain between plugins and the wire: what ``--carriage nnpfc`` writes for a chain of
post-processors, and what ``enhance`` runs when the stream declares its chain (docs/bitstream.md).

NNPFC declares each plugin (repeated at every random-access point), NNPFA activates it per picture, the
records carry the data. Bytes are ``genpost.sideinfo``'s business; this module maps plugins to declarations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import media, sideinfo
from .plugins import by_side_info_format, postprocessors
from .postprocessor import PostProcessor


def _idc_parameters(count: int | None) -> int:
    """Smallest nnpfc_num_parameters_idc k with count <= (2048 << k) - 1 (0: unknown)."""
    if not count:
        return 0
    return next(k for k in range(1, 64) if count <= (2048 << k) - 1)


def properties(proc: PostProcessor, width: int, height: int) -> sideinfo.NnpfcProperties:
    """The NNPFC property fields of a plugin: 4:2:0 packed float tensors (genpost.modeling.pack), its
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
    """Encoder side: the NNPFC/NNPFA messages each access unit gets. A plugin with a default mode
    (``PostProcessor.default_mode``) is activated once per random-access point with a persistent NNPFA
    (no per-frame cost); any other plugin by a picture-only NNPFA on each frame a record of it covers, so a
    frame left without one is the encoder saying "off" for it."""

    def __init__(self, chain: list[PostProcessor], records, options: dict[str, str], width: int, height: int):
        self.declared = [(i + 1, declare(p, options, width, height)) for i, p in enumerate(chain)]
        self._always = [i + 1 for i, p in enumerate(chain) if p.default_mode or not p.side_info]
        ids = {p.side_info: i + 1 for i, p in enumerate(chain) if p.side_info}
        self._covered: dict[int, set[int]] = {}
        for r in records:
            if r.format_id in ids:
                for f in r.frames:
                    self._covered.setdefault(f, set()).add(ids[r.format_id])

    def messages(self, frame: int | None, key: bool) -> list[tuple[int, bytes]]:
        covered = self._covered.get(frame, set()) if frame is not None else set()
        active = [i for i, _ in self.declared if i in covered]
        return sideinfo.declaration_messages(self.declared, active, key, self._always)


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
    is activated on, the options the stream gives each, and what could not be run."""

    names: list[str] = field(default_factory=list)  # activated on at least one frame
    declared: list[str] = field(default_factory=list)  # every installed plugin the stream declares
    frames: dict[str, set[int]] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def active(self, name: str, frame: int) -> bool:
        return frame in self.frames.get(name, ())


def plan(chain: sideinfo.DeclaredChain) -> DeclaredPlan:
    """Map each declared NNPFC to an installed plugin (by name; by side-info format as a fallback); an
    unknown URI, or a version or weights mismatch, is reported, and an unknown one is skipped."""
    out = DeclaredPlan()
    installed = postprocessors()
    formats = by_side_info_format()
    activated = chain.active()
    for nnpfc_id, c in chain.filters.items():
        decl = sideinfo.parse_declaration(c)
        reg = None
        if decl is not None:
            reg = installed.get(decl.name) or formats.get(decl.side_info)
        if reg is None:
            label = decl.name if decl is not None else (c.uri or c.uri_tag or f"mode {c.mode_idc}")
            out.unknown.append(label)
            out.warnings.append(f"the stream declares post-filter {nnpfc_id} ({label}) but no installed plugin provides it: skipped")
            continue
        cls = reg.cls
        if decl.version and decl.version != cls.version:
            out.warnings.append(f"the stream declares {decl.name} {decl.version}; installed is {cls.version}")
        if decl.sha256 and tuple(w.sha256.lower() for w in cls.weights) != decl.sha256:
            out.warnings.append(f"the stream's {decl.name} weights (sha256) differ from the installed plugin's")
        if cls.name in out.frames:
            continue
        out.declared.append(cls.name)
        out.frames[cls.name] = activated.get(nnpfc_id, set())
        if out.frames[cls.name]:
            out.names.append(cls.name)
        else:
            out.warnings.append(f"the stream declares {cls.name} but activates it on no frame (the encoder chose off)")
        out.options.update({f"{cls.name}.{k}": v for k, v in decl.options.items()})
    return out
