"""proto/wire/vnet.py: the virtio-net header codec, byte for byte, with its cache of decoded headers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proto.wire import DecodeError, vnet
from proto.wire.vnet import HDR_LEN, HDR_LEN_LEGACY, GsoType, HdrFlags, VnetHdr

HEADERS = st.builds(VnetHdr, st.sampled_from(list(HdrFlags)), st.sampled_from(list(GsoType)),
                    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
                    st.integers(0, 0xFFFF), st.integers(1, 0xFFFF), st.booleans())


@given(HEADERS)
def test_pack_and_unpack_agree_and_a_second_unpack_is_the_same_header(hdr: VnetHdr) -> None:
    raw = hdr.pack()
    assert len(raw) == HDR_LEN
    assert VnetHdr.unpack(raw) == hdr
    assert VnetHdr.unpack(bytearray(raw) + b"frame") == hdr  # served from the cache, still equal
    legacy = VnetHdr.unpack(hdr.pack(HDR_LEN_LEGACY), HDR_LEN_LEGACY)
    assert legacy == VnetHdr(hdr.flags, hdr.gso_type, hdr.hdr_len, hdr.gso_size, hdr.csum_start,
                             hdr.csum_offset, 1, hdr.ecn)


def test_the_field_layout_is_the_specs() -> None:
    hdr = VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, 54, 1448, 34, 16, 3, ecn=True)
    assert hdr.pack() == struct.pack("<BBHHHHH", 1, 0x81, 54, 1448, 34, 16, 3)
    assert hdr.pack(num_buffers=9) == struct.pack("<BBHHHHH", 1, 0x81, 54, 1448, 34, 16, 9)
    assert hdr.num_buffers == 3  # the header itself is unchanged


def test_decoded_headers_are_remembered_within_a_bound() -> None:
    for n in range(3 * vnet._DECODED_MAX):
        VnetHdr.unpack(VnetHdr(gso_size=n).pack())
        assert len(vnet._DECODED) <= vnet._DECODED_MAX
    raw = VnetHdr(gso_size=7).pack()
    assert VnetHdr.unpack(raw) is VnetHdr.unpack(raw)  # one object for a repeated header


@pytest.mark.parametrize("raw", [b"\x08" + bytes(11), b"\x00\x02" + bytes(10), bytes(11)])
def test_a_bad_header_is_a_decode_error_before_and_after_good_ones(raw: bytes) -> None:
    for _ in range(2):
        with pytest.raises(DecodeError):
            VnetHdr.unpack(raw)
        VnetHdr.unpack(bytes(12))
