"""H.274 neural-network post-filter SEI messages: characteristics (NNPFC, payloadType 210) and
activation (NNPFA, payloadType 211), written and read bit-exactly as VTM 23.13's SEI reader parses them.

genpost uses them to declare its post-processing chain in a standard way (docs/bitstream.md): each plugin
is one NNPFC (``nnpfc_mode_idc`` 1, the plugin named by URI), repeated at every random-access point, and
each picture a plugin should run on carries an NNPFA naming it. The per-frame data stays in genpost's
records. The reader accepts the whole syntax VTM 23.13 parses, so streams from other encoders are listed
too; a message that does not parse is reported as malformed, never raised.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .bits import BitReader, BitsError, BitWriter

NNPFC_PAYLOAD_TYPE = 210
NNPFA_PAYLOAD_TYPE = 211
MODE_PAYLOAD = 0  # the network is an ISO/IEC 15938-17 bitstream inside the SEI message
MODE_URI = 1  # the network is named by nnpfc_uri_tag / nnpfc_uri

# nnpfc_purpose bits (H.274 2023): those whose extra syntax genpost's writer does not produce
PURPOSE_VISUAL_QUALITY = 0x01
_CHROMA_UPSAMPLING, _RESOLUTION, _PICTURE_RATE, _COLOURIZATION = 0x02, 0x04, 0x08, 0x20
_TEMPORAL_EXTRAPOLATION, _SPATIAL_EXTRAPOLATION = 0x40, 0x80
_UNWRITTEN = _CHROMA_UPSAMPLING | _RESOLUTION | _PICTURE_RATE | _COLOURIZATION | _TEMPORAL_EXTRAPOLATION | _SPATIAL_EXTRAPOLATION


@dataclass
class NnpfcProperties:
    """The ``nnpfc_property_present_flag`` part genpost writes (one input picture, no resampling).

    Fields read from other streams that genpost does not write (resampling, prompts, ...) land in
    ``extra``."""

    component_last_flag: bool = False
    inp_format_idc: int = 0  # 0: floating point in [0, 1]; 1: unsigned integers of the tensor bit depth
    auxiliary_inp_idc: int = 0  # bit 0: a strength (QP-like) input plane
    inp_order_idc: int = 3  # 3: four luma (2x2 phases) + two chroma channels, 4:2:0 at half resolution
    inp_tensor_luma_bitdepth_minus8: int = 0
    inp_tensor_chroma_bitdepth_minus8: int = 0
    out_format_idc: int = 0
    out_order_idc: int = 3
    out_tensor_luma_bitdepth_minus8: int = 0
    out_tensor_chroma_bitdepth_minus8: int = 0
    sep_col_desc_flag: bool = False
    overlap: int = 0
    constant_patch_size_flag: bool = True
    patch_width_minus1: int = 0
    patch_height_minus1: int = 0
    padding_type: int = 0  # 0 zeros, 1 replication, 2 reflection, 3 wrap-around, 4 fixed
    complexity_info_present_flag: bool = False
    parameter_type_idc: int = 1  # 0 integer, 1 floating point, 2 binary
    log2_parameter_bit_length_minus3: int = 2  # 2: 32-bit parameters
    num_parameters_idc: int = 0  # 0: unknown; k: at most (2048 << k) - 1 parameters
    num_kmac_operations_idc: int = 0  # 0: unknown; k: at most k * 1000 multiply-accumulates per sample
    total_kilobyte_size: int = 0  # 0: unknown; k: parameters fit in k * 1024 bytes
    extra: dict = field(default_factory=dict)


@dataclass
class Nnpfc:
    id: int
    mode_idc: int = MODE_URI
    purpose: int = PURPOSE_VISUAL_QUALITY
    base_flag: bool = True
    uri_tag: str = ""
    uri: str = ""
    properties: NnpfcProperties | None = None
    payload_bytes: int = 0  # mode 0: length of the embedded ISO/IEC 15938-17 bitstream (read side)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("id", "mode_idc", "purpose", "base_flag", "uri_tag", "uri")}
        out["property_present_flag"] = self.properties is not None
        if self.properties is not None:
            props = dataclasses.asdict(self.properties)
            out["number_of_input_pictures_minus1"] = 0
            out.update(props.pop("extra"))
            out.update(props)
        if self.mode_idc == MODE_PAYLOAD:
            out["payload_bytes"] = self.payload_bytes
        return out


@dataclass
class Nnpfa:
    target_id: int
    cancel: bool = False
    persistence: bool = False
    target_base_flag: bool = True
    no_prev_clvs_flag: bool = False
    no_foll_clvs_flag: bool = False
    output_flags: tuple[bool, ...] = ()

    def to_dict(self) -> dict:
        return {
            "target_id": self.target_id,
            "cancel": self.cancel,
            "persistence": self.persistence,
            "target_base_flag": self.target_base_flag,
        }


# ---------------------------------------------------------------- NNPFC


def _write_bit_depths(w: BitWriter, format_idc: int, order_idc: int, luma: int, chroma: int) -> None:
    """Tensor bit depths, present for integer tensors (format 1) and the components the order carries."""
    if format_idc == 1:
        if order_idc != 1:
            w.ue(luma)
        if order_idc != 0:
            w.ue(chroma)


def write_nnpfc(c: Nnpfc) -> bytes:
    """The sei_payload() bytes of one NNPFC; ValueError for values genpost cannot (or must not) write."""
    if c.purpose & _UNWRITTEN or not 0 <= c.purpose < 128:
        raise ValueError(f"nnpfc_purpose {c.purpose:#x}: genpost writes quality-improvement filters only")
    if not (0 <= c.id <= 255 or 512 <= c.id < 1 << 31):
        raise ValueError(f"nnpfc_id {c.id} is reserved")
    if c.mode_idc not in (MODE_URI,):
        raise ValueError("genpost writes nnpfc_mode_idc 1 (URI) only")
    w = BitWriter()
    w.u(c.purpose, 16)
    w.ue(c.id)
    w.flag(c.base_flag)
    w.ue(c.mode_idc)
    w.align_zero()
    w.string(c.uri_tag)
    w.string(c.uri)
    p = c.properties
    w.flag(p is not None)
    if p is not None:
        w.ue(0)  # nnpfc_number_of_input_pictures_minus1
        w.flag(p.component_last_flag)
        w.ue(p.inp_format_idc)
        if p.auxiliary_inp_idc & ~1:
            raise ValueError("genpost writes nnpfc_auxiliary_inp_idc 0 or 1")
        w.ue(p.auxiliary_inp_idc)
        w.ue(p.inp_order_idc)
        _write_bit_depths(w, p.inp_format_idc, p.inp_order_idc, p.inp_tensor_luma_bitdepth_minus8, p.inp_tensor_chroma_bitdepth_minus8)
        w.ue(p.out_format_idc)
        w.ue(p.out_order_idc)
        _write_bit_depths(w, p.out_format_idc, p.out_order_idc, p.out_tensor_luma_bitdepth_minus8, p.out_tensor_chroma_bitdepth_minus8)
        if p.sep_col_desc_flag:
            raise ValueError("genpost does not write nnpfc_sep_col_desc_flag 1")
        w.flag(False)
        if p.out_order_idc != 0:
            w.flag(False)  # nnpfc_chroma_loc_info_present_flag
        w.ue(p.overlap)
        w.flag(p.constant_patch_size_flag)
        if not p.constant_patch_size_flag:
            raise ValueError("genpost writes nnpfc_constant_patch_size_flag 1")
        w.ue(p.patch_width_minus1)
        w.ue(p.patch_height_minus1)
        if p.padding_type == 4:
            raise ValueError("genpost does not write fixed padding")
        w.ue(p.padding_type)
        w.flag(p.complexity_info_present_flag)
        if p.complexity_info_present_flag:
            w.u(p.parameter_type_idc, 2)
            if p.parameter_type_idc != 2:
                w.u(p.log2_parameter_bit_length_minus3, 2)
            w.u(p.num_parameters_idc, 6)
            w.ue(p.num_kmac_operations_idc)
            w.ue(p.total_kilobyte_size)
        w.ue(0)  # nnpfc_metadata_extension_num_bits
    return w.payload()


def _read_bit_depths(r: BitReader, format_idc: int, order_idc: int) -> tuple[int, int]:
    luma = r.ue() if format_idc == 1 and order_idc != 1 else 0
    chroma = r.ue() if format_idc == 1 and order_idc != 0 else 0
    return luma, chroma


def _read_properties(r: BitReader, purpose: int) -> NnpfcProperties:
    p = NnpfcProperties()
    extra = p.extra
    n_inputs = r.ue() + 1
    if n_inputs > 64:
        raise BitsError("implausible number of input pictures")
    if n_inputs > 1:
        extra["number_of_input_pictures_minus1"] = n_inputs - 1
        extra["input_pic_filtering_flags"] = [r.flag() for _ in range(n_inputs)]
        extra["absent_input_pic_zero_flag"] = r.flag()
    if purpose & _CHROMA_UPSAMPLING:
        extra["out_sub_c_flag"] = r.flag()
    if purpose & _COLOURIZATION:
        extra["out_colour_format_idc"] = r.u(2)
    if purpose & _RESOLUTION:
        extra["pic_scale"] = [r.ue() for _ in range(4)]  # width num/denom, height num/denom (minus1)
    if purpose & _PICTURE_RATE:
        extra["interpolated_pics"] = [r.ue() for _ in range(n_inputs - 1)]
    if purpose & _TEMPORAL_EXTRAPOLATION:
        extra["extrapolated_pics_minus1"] = r.ue()
    if purpose & _SPATIAL_EXTRAPOLATION:
        extra["spatial_extrapolation_offsets"] = [r.se() for _ in range(4)]
    p.component_last_flag = r.flag()
    p.inp_format_idc = r.ue()
    p.auxiliary_inp_idc = r.ue()
    if p.auxiliary_inp_idc & 2 and r.flag():
        r.align_zero()
        extra["prompt"] = r.string()
    if p.auxiliary_inp_idc & 4 and r.flag():
        extra["seed"] = r.u(16)
    p.inp_order_idc = r.ue()
    p.inp_tensor_luma_bitdepth_minus8, p.inp_tensor_chroma_bitdepth_minus8 = _read_bit_depths(r, p.inp_format_idc, p.inp_order_idc)
    p.out_format_idc = r.ue()
    p.out_order_idc = r.ue()
    p.out_tensor_luma_bitdepth_minus8, p.out_tensor_chroma_bitdepth_minus8 = _read_bit_depths(r, p.out_format_idc, p.out_order_idc)
    p.sep_col_desc_flag = r.flag()
    if p.sep_col_desc_flag:
        extra["col_primaries"] = r.u(8)
        extra["trans_characteristics"] = r.u(8)
        if p.out_format_idc == 1:
            extra["matrix_coeffs"] = r.u(8)
            extra["full_range_flag"] = r.flag()
    if p.out_order_idc != 0 and r.flag():
        extra["chroma_sample_loc_type_frame"] = r.ue()
    if purpose & _SPATIAL_EXTRAPOLATION:
        p.overlap, p.constant_patch_size_flag = 0, True
    else:
        p.overlap = r.ue()
        p.constant_patch_size_flag = r.flag()
    if p.constant_patch_size_flag:
        p.patch_width_minus1, p.patch_height_minus1 = r.ue(), r.ue()
    else:
        extra["extended_patch_cd_delta_minus1"] = [r.ue(), r.ue()]
    p.padding_type = r.ue()
    if 5 <= p.padding_type <= 15:
        return p  # reserved: VTM ignores the rest of the message
    if p.padding_type == 4:
        if p.inp_order_idc != 1:
            extra["luma_padding_val"] = r.ue()
        if p.inp_order_idc != 0:
            extra["cb_padding_val"], extra["cr_padding_val"] = r.ue(), r.ue()
    p.complexity_info_present_flag = r.flag()
    if p.complexity_info_present_flag:
        p.parameter_type_idc = r.u(2)
        if p.parameter_type_idc != 2:
            p.log2_parameter_bit_length_minus3 = r.u(2)
        p.num_parameters_idc = r.u(6)
        p.num_kmac_operations_idc = r.ue()
        p.total_kilobyte_size = r.ue()
    ext_bits = r.ue()
    if ext_bits > 4096:
        raise BitsError("nnpfc_metadata_extension_num_bits > 4096")
    if ext_bits:
        start = r.pos
        if purpose == 0 and r.flag():
            r.align_zero()
            extra["application_purpose_tag_uri"] = r.string()
        if purpose & (_SPATIAL_EXTRAPOLATION | _RESOLUTION):
            extra["scan_type_idc"] = r.u(2)
        extra["for_human_viewing_idc"] = r.u(2)
        extra["for_machine_analysis_idc"] = r.u(2)
        r.u(max(0, ext_bits - (r.pos - start)))  # nnpfc_reserved_metadata_extension
    return p


def read_nnpfc(payload: bytes) -> Nnpfc:
    """Parse one NNPFC sei_payload(); BitsError (a ValueError) when it is truncated or invalid."""
    r = BitReader(payload)
    purpose = r.u(16)
    c = Nnpfc(id=r.ue(), purpose=purpose)
    c.base_flag = r.flag()
    c.mode_idc = r.ue()
    if c.mode_idc == MODE_URI:
        r.align_zero()
        c.uri_tag = r.string()
        c.uri = r.string()
    if r.flag():
        c.properties = _read_properties(r, purpose)
    if c.mode_idc == MODE_PAYLOAD:
        r.align_zero()
        c.payload_bytes = r.bits_left // 8
    elif r.more_data() and r.bits_left >= 8:
        raise BitsError("NNPFC has unparsed bytes")
    return c


# ---------------------------------------------------------------- NNPFA


def write_nnpfa(a: Nnpfa) -> bytes:
    """The sei_payload() bytes of one NNPFA, with the prompt, seed and input-shift update flags written as
    0 as VTM 23.13's writer does (its reader takes them whenever bits remain, so a payload that ended
    earlier would have its trailing 1 bit read as nnpfa_prompt_update_flag)."""
    w = BitWriter()
    w.ue(a.target_id)
    w.flag(a.cancel)
    if not a.cancel:
        w.flag(a.persistence)
        w.flag(a.target_base_flag)
        w.flag(a.no_prev_clvs_flag)
        if a.persistence:
            w.flag(a.no_foll_clvs_flag)
        w.ue(len(a.output_flags))
        for f in a.output_flags:
            w.flag(f)
        w.flag(False)  # nnpfa_prompt_update_flag
        w.flag(False)  # nnpfa_seed_update_flag
        w.flag(False)  # nnpfa_selected_input_flag
    return w.payload()


def read_nnpfa(payload: bytes) -> Nnpfa:
    r = BitReader(payload)
    a = Nnpfa(target_id=r.ue())
    a.cancel = r.flag()
    if not a.cancel:
        a.persistence = r.flag()
        a.target_base_flag = r.flag()
        a.no_prev_clvs_flag = r.flag()
        if a.persistence:
            a.no_foll_clvs_flag = r.flag()
        n = r.ue()
        if n > 1024:
            raise BitsError("implausible nnpfa_num_output_entries")
        a.output_flags = tuple(r.flag() for _ in range(n))
        # VTM 23.13 then reads prompt / seed / input-shift updates when whole bytes remain: not used here
    return a


# ---------------------------------------------------------------- packets


@dataclass
class NnpfMessages:
    """The NNPFC / NNPFA messages of one access unit, and how many did not parse."""

    nnpfc: list[Nnpfc] = field(default_factory=list)
    nnpfa: list[Nnpfa] = field(default_factory=list)
    malformed: int = 0


def nnpf_messages(messages) -> NnpfMessages:
    """Parse the 210/211 messages among ``(payloadType, payload, truncated)``; others are ignored."""
    out = NnpfMessages()
    for ptype, payload, truncated in messages:
        if ptype not in (NNPFC_PAYLOAD_TYPE, NNPFA_PAYLOAD_TYPE):
            continue
        try:
            if truncated:
                raise BitsError("SEI message truncated")
            if ptype == NNPFC_PAYLOAD_TYPE:
                out.nnpfc.append(read_nnpfc(payload))
            else:
                out.nnpfa.append(read_nnpfa(payload))
        except (BitsError, UnicodeError):
            out.malformed += 1
    return out
