"""The /dev/nic header batches (euralios.std.protocols.nic) and what net/ makes of a driver's
features (net/offloads.offloads_from_features)."""

from __future__ import annotations

from collections import deque

from euralios.std.protocols.nic import (
    BATCH_BYTES,
    HDR_FRAME_MAX,
    VNET_HDR_BYTES,
    pack_hdr_frames,
    packed_hdr_size,
    split_hdr_frames,
    take_hdr_batch,
)
from net.offloads import NO_OFFLOADS, TSO_VIA_NIC, offloads_from_features
from proto.virtio import Feature
from proto.wire.vnet import HDR_LEN, GsoType, HdrFlags, VnetHdr


def test_the_protocol_header_is_the_codec_header() -> None:
    assert VNET_HDR_BYTES == HDR_LEN  # std cannot import proto: the one number, checked here


def test_header_batches_round_trip_and_a_bad_one_is_seen() -> None:
    hdr = VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, 66, 1448, 34, 16).pack()
    entries = [hdr + bytes(range(200)), VnetHdr().pack() + b"\x01" * 60, hdr + b"x" * HDR_FRAME_MAX]
    batches = pack_hdr_frames(entries, BATCH_BYTES)
    assert [count for _, count in batches] == [2, 1]  # the largest frame fills a batch alone
    assert all(len(batch) <= BATCH_BYTES for batch, _ in batches)
    back = [e for batch, _ in batches for e in split_hdr_frames(batch)]
    assert back == entries
    data = batches[0][0]
    assert packed_hdr_size(split_hdr_frames(data)) == len(data)
    cut = data[:-1]  # the last frame runs past the end: not a well-formed batch
    assert packed_hdr_size(split_hdr_frames(cut)) != len(cut)
    queue = deque(entries[:2])
    batch, n = take_hdr_batch(queue, 10)  # room for neither: the first goes anyway (progress)
    assert n == 1 and list(queue) == entries[1:2] and split_hdr_frames(batch) == entries[:1]


def test_features_map_to_offloads() -> None:
    assert offloads_from_features(0) == NO_OFFLOADS  # the RTL8139
    basic = Feature.VERSION_1 | Feature.NET_MAC | Feature.NET_MRG_RXBUF | Feature.EVENT_IDX
    assert offloads_from_features(basic) == NO_OFFLOADS
    full = offloads_from_features(basic | Feature.NET_CSUM | Feature.NET_HOST_TSO4 | Feature.NET_GUEST_CSUM
                                  | Feature.NET_GUEST_TSO4)
    assert (full.tx_csum, full.tso_max, full.rx_csum, full.large_receive) == (True, TSO_VIA_NIC, True, True)
    assert 14 + 20 + 60 + full.tso_payload == HDR_FRAME_MAX  # the largest segment fits one batch
    assert offloads_from_features(Feature.NET_HOST_TSO4).tso_max == 0  # TSO without CSUM is none
    assert offloads_from_features(Feature.NET_GUEST_CSUM).rx_csum
