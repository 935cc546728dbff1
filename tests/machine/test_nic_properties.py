"""`--nic virtio-net-pci,PROP=off`: QEMU's virtio-net-pci properties withdraw a feature from the
card's offer, so a learner (and bench/) can see what each offload buys."""

from __future__ import annotations

import subprocess
import sys

import pytest

from machine.board import Machine, parse_nic, parse_nic_spec
from machine.netdev import NoneBackend
from proto.virtio import Feature, feature_names


def test_properties_withdraw_features_from_the_offer() -> None:
    model, withdrawn = parse_nic_spec("virtio,csum=off,event_idx=off")
    assert model == "virtio-net-pci"
    assert withdrawn == Feature.NET_CSUM | Feature.EVENT_IDX
    machine = Machine("16M", nic=NoneBackend(), card="virtio-net-pci,csum=off,event_idx=off")
    offered = feature_names(machine.nic.offered)
    assert "CSUM" not in offered and "EVENT_IDX" not in offered
    assert {"GUEST_CSUM", "HOST_TSO4", "MRG_RXBUF", "VERSION_1"} <= set(offered)


def test_canonical_form_names_the_model_and_what_is_off() -> None:
    assert parse_nic("VIRTIO, host_tso4=off ,mrg_rxbuf=on") == "virtio-net-pci,host_tso4=off"
    assert parse_nic("rtl8139") == "rtl8139"
    # the last word about a property wins, as with QEMU's -global/-device repeats
    assert parse_nic("virtio,csum=off,csum=on") == "virtio-net-pci"


@pytest.mark.parametrize("text, message", [
    ("virtio,tso=off", "bad property 'tso=off'"),
    ("virtio,csum=maybe", "bad property 'csum=maybe'"),
    ("virtio,csum", "bad property 'csum'"),
    ("rtl8139,csum=off", "rtl8139 has no property 'csum'"),
])
def test_bad_properties_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_nic_spec(text)


def test_cli_refuses_a_bad_property_with_exit_2() -> None:
    r = subprocess.run([sys.executable, "-m", "euralios", "--headless", "--nic", "virtio,tso=off"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("euralios: --nic: bad property 'tso=off'") and r.stderr.count("\n") == 1
