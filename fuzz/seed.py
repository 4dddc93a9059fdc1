#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the shared captures.

    python3 fuzz/seed.py [FIXTURES_DIR]

FIXTURES_DIR defaults to ../shared/fixtures beside the repository (as the wire crate's tests
use it). Output, replacing what was there:

  fuzz/corpus/decapsulate/  one file per captured frame: a port-set selector byte (0: {4789},
                            1: {4789, 8472}) then the frame; and GENEVE frames built around the
                            tcpdump capture's inner frames (inner Ethernet, bare IPv4 with the
                            AWS options, Traffic Mirroring's VXLAN inside, and three tunnels deep)
  fuzz/corpus/decapsulate_link/
                            one file per frame of the link-type captures in tests/fixtures
                            (Linux cooked, raw IP, NULL/LOOP, pcapng with mixed interfaces):
                            a selector byte (link type << 2, port set {4789}) then the frame
  fuzz/corpus/reassembly/   inputs in the layout described in fuzz_targets/reassembly.rs:
                            captured fragments and fragments of captured frames as raw ops,
                            and carved-template sequences (in order, reversed, duplicated,
                            overlapping, colliding under IP ID 0, timed out)

Standard library only; reads classic pcap (either byte order, micro- or nanosecond) and pcapng.
"""

import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURES = os.path.join(HERE, "..", "..", "shared", "fixtures")
LOCAL_FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
# LINKTYPE_ values in the order of fuzz_targets/decapsulate_link.rs's LINKS.
LINKS = {1: 0, 113: 1, 276: 2, 101: 3, 12: 3, 14: 3, 228: 4, 229: 5, 0: 6, 108: 7}


def read_frames(path):
    """Every packet of a pcap or pcapng file, as bytes."""
    return [frame for frame, _ in read_linked_frames(path)]


def read_linked_frames(path):
    """Every packet of a pcap or pcapng file, with its LINKTYPE_ value."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        return read_pcapng(data)
    for endian in "<>":
        (m,) = struct.unpack(endian + "I", magic)
        if m in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise ValueError(f"{path}: not a pcap or pcapng file")
    (linktype,) = struct.unpack(endian + "I", data[20:24])
    frames, at = [], 24
    while at + 16 <= len(data):
        incl_len = struct.unpack(endian + "I", data[at + 8 : at + 12])[0]
        if incl_len > 262144:
            break  # a damaged record (as libpcap stops there)
        frames.append((data[at + 16 : at + 16 + incl_len], linktype & 0x03FFFFFF))
        at += 16 + incl_len
    return frames


def read_pcapng(data):
    frames, at, endian, links = [], 0, "<", []
    while at + 12 <= len(data):
        block_type = struct.unpack(endian + "I", data[at : at + 4])[0]
        if block_type == 0x0A0D0D0A:  # section header: its byte-order magic sets the order
            endian = "<" if data[at + 8 : at + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        (length,) = struct.unpack(endian + "I", data[at + 4 : at + 8])
        if length < 12:
            break
        if block_type == 1:  # interface description: its link type
            links.append(struct.unpack(endian + "H", data[at + 8 : at + 10])[0])
        elif block_type in (6, 2):  # enhanced, or obsolete, packet block
            if block_type == 6:
                (interface,) = struct.unpack(endian + "I", data[at + 8 : at + 12])
            else:
                (interface,) = struct.unpack(endian + "H", data[at + 8 : at + 10])
            (cap_len,) = struct.unpack(endian + "I", data[at + 20 : at + 24])
            link = links[interface] if interface < len(links) else None
            frames.append((data[at + 28 : at + 28 + cap_len], link))
        elif block_type == 3:  # simple packet block (no captured length: up to the block end)
            frames.append((data[at + 12 : at + length - 4], links[0] if links else None))
        at += length
    return frames


def checksum(header):
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def l3_offset(frame):
    """Offset of the IPv4 header after Ethernet and up to two VLAN tags, or None."""
    at, ethertype = 14, frame[12:14]
    for _ in range(2):
        if ethertype not in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
            break
        ethertype, at = frame[at + 2 : at + 4], at + 4
    return at if ethertype == b"\x08\x00" else None


def fragment(frame, mtu):
    """Splits an Ethernet/IPv4 frame into fragments (options repeated as they are)."""
    l3 = l3_offset(frame)
    ihl = (frame[l3] & 0x0F) * 4
    (total,) = struct.unpack("!H", frame[l3 + 2 : l3 + 4])
    header, payload = frame[l3 : l3 + ihl], frame[l3 + ihl : l3 + total]
    room = (mtu - ihl) // 8 * 8
    pieces = []
    for start in range(0, len(payload), room):
        piece = payload[start : start + room]
        more = start + len(piece) < len(payload)
        h = bytearray(header)
        h[2:4] = struct.pack("!H", ihl + len(piece))
        h[6:8] = struct.pack("!H", (0x2000 if more else 0) | (start // 8))
        h[10:12] = b"\0\0"
        h[10:12] = struct.pack("!H", checksum(bytes(h)))
        pieces.append(frame[:l3] + bytes(h) + piece)
    return pieces


# ---- reassembly input encoding (see fuzz_targets/reassembly.rs) ----

# Two datagrams pending, 9292-byte datagrams, 4 spare blocks, 64 fragments, 256 us timeout.
CONFIG = bytes([1, 1, 4, 62, 255])
TEMPLATE_B, MF, AUTO_MF, IDENT_1 = 0x04, 0x08, 0x10, 0x20
A_PAYLOAD, B_PAYLOAD = 1530, 1498  # IPv4 payload lengths of the harness's templates


def raw(frame):
    return bytes([0]) + struct.pack("<H", len(frame)) + frame


def carve(start, end, flags=AUTO_MF):
    return bytes([1 | flags]) + struct.pack("<HH", start // 8, end - start)


def step(ns):
    return bytes([2]) + struct.pack("<I", ns)


def jump(ns):
    return bytes([3]) + struct.pack("<Q", ns)


def reassembly_seeds(fixtures):
    seeds = {}
    frag_pcap = read_frames(os.path.join(fixtures, "synthetic/vxlan-outer-ipv4-frag-inorder.pcap"))
    seeds["capture-frag-inorder"] = CONFIG + b"".join(raw(f) for f in frag_pcap)
    seeds["capture-frag-reversed"] = CONFIG + raw(frag_pcap[2]) + raw(frag_pcap[1])
    aws = read_frames(os.path.join(fixtures, "suricata-verify/aws-traffic-mirroring-vxlan.pcap"))
    largest = max(aws, key=len)
    pieces = fragment(largest, 576)
    seeds["aws-largest-mtu576"] = CONFIG + b"".join(raw(p) for p in pieces)
    seeds["aws-largest-mtu576-shuffled"] = CONFIG + b"".join(
        raw(p) for p in pieces[1::2] + pieces[0::2]
    )
    azure = read_frames(os.path.join(fixtures, "azure/azure-vtap-frame1-reconstructed.pcap"))[0]
    seeds["azure-frame-mtu68"] = CONFIG + b"".join(raw(p) for p in reversed(fragment(azure, 68)))
    seeds["aws-unfragmented"] = CONFIG + raw(aws[0])

    a1, a2 = carve(0, 1480), carve(1480, A_PAYLOAD)
    b1, b2 = carve(0, 1480, AUTO_MF | TEMPLATE_B), carve(1480, B_PAYLOAD, AUTO_MF | TEMPLATE_B)
    seeds["carved-a-in-order"] = CONFIG + a1 + a2
    seeds["carved-a-reversed"] = CONFIG + a2 + a1
    seeds["carved-a-three-pieces"] = CONFIG + carve(512, 1024) + carve(1024, A_PAYLOAD) + carve(0, 512)
    seeds["carved-a-b-back-to-back"] = CONFIG + a1 + a2 + b1 + b2
    seeds["carved-collision-a1-b1-a2-b2"] = CONFIG + a1 + b1 + a2 + b2
    seeds["carved-collision-a1-b2"] = CONFIG + a1 + b2 + b1 + a2
    seeds["carved-duplicates"] = CONFIG + a1 + a1 + a2 + a2
    seeds["carved-overlap"] = CONFIG + carve(0, 800) + carve(792, 1600) + a2
    seeds["carved-two-ids"] = CONFIG + a1 + carve(0, 1480, AUTO_MF | IDENT_1) + a2 + carve(
        1480, A_PAYLOAD, AUTO_MF | IDENT_1
    )
    seeds["carved-timeout"] = CONFIG + a1 + step(300_000) + a2 + a1
    seeds["carved-clock-backwards"] = CONFIG + jump(1 << 40) + a1 + jump(5) + a2 + step(1000)
    seeds["carved-bad-mf"] = CONFIG + carve(0, 1480, MF) + carve(1480, A_PAYLOAD, MF)
    # One slot, no spare memory: every new datagram evicts the last.
    seeds["carved-evictions"] = bytes([0, 0, 0, 62, 255]) + a1 + carve(0, 1480, AUTO_MF | IDENT_1) + a2
    return seeds


def ipv4_udp(src, dst, sport, dport, payload, ident=0):
    """An IPv4 header (checksum filled) and a UDP header (checksum 0) before `payload`."""
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0x4000, 64, 17, 0,
                                   bytes(src), bytes(dst)))
    header[10:12] = struct.pack(">H", checksum(bytes(header)))
    return bytes(header) + udp


def geneve(protocol, vni, payload, options=b"", flags=0):
    return struct.pack(">BBH", len(options) // 4, flags, protocol) + struct.pack(">I", vni << 8) + options + payload


AWS_OPTIONS = (struct.pack(">HBB", 0x0108, 1, 2) + struct.pack(">Q", 0x0A1B2C3D4E5F6071)
               + struct.pack(">HBB", 0x0108, 2, 2) + struct.pack(">Q", 0x77)
               + struct.pack(">HBB", 0x0108, 3, 1) + struct.pack(">I", 0xC00C1E))


def geneve_seeds(frames):
    """GENEVE around the first captured frames: inner Ethernet, bare IPv4 (inline GWLB), and
    AWS Traffic Mirroring's VXLAN inside GWLB GENEVE (nesting), each as an outer Ethernet frame;
    selector 0 (GENEVE on 6081, depth 2) and 6 (depth 4) for a three-deep one."""
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    seeds = {}
    for i, inner in enumerate(frames[:4], 1):
        ip = inner[14:]
        vxlan = ipv4_udp((10, 0, 1, 50), (10, 0, 9, 9), 30000 + i, 4789,
                         b"\x08\x00\x00\x00" + struct.pack(">I", 4242 << 8) + inner)
        shapes = {
            "ethernet": geneve(0x6558, 7, inner, b"\x01\x03\x85\x01\x00\x00\x00\x2a", 0x40),
            "bare-ipv4": geneve(0x0800, 0, ip, AWS_OPTIONS),
            "gwlb-vxlan": geneve(0x0800, 0, vxlan, AWS_OPTIONS),
        }
        shapes["geneve-geneve-vxlan"] = geneve(
            0x0800, 5, ipv4_udp((10, 0, 60, 1), (10, 0, 60, 2), 61000 + i, 6081, shapes["gwlb-vxlan"]))
        for name, udp_payload in shapes.items():
            frame = eth + ipv4_udp((10, 0, 60, 1), (10, 0, 60, 2), 61000 + i, 6081, udp_payload)
            selector = 6 if name == "geneve-geneve-vxlan" else 0
            seeds[f"geneve-{name}-{i:03}"] = bytes([selector]) + frame
    return seeds


def write(directory, seeds):
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    print(f"{directory}: {len(seeds)} inputs, {sum(map(len, seeds.values()))} bytes")


def main():
    fixtures = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_FIXTURES)
    captures = []
    for root, _, files in sorted(os.walk(fixtures)):
        captures += [os.path.join(root, f) for f in sorted(files) if f.endswith((".pcap", ".pcapng"))]
    if not captures:
        sys.exit(f"no captures under {fixtures}: pass the fixtures directory as the argument")

    decap = {}
    inner_frames = []
    for path in captures:
        stem = os.path.splitext(os.path.relpath(path, fixtures))[0].replace(os.sep, "-")
        selector = 1 if "8472" in stem else 0
        for i, frame in enumerate(read_frames(path), 1):
            decap[f"{stem}-{i:03}"] = bytes([selector]) + frame
            if stem.startswith("tcpdump-vxlan") and "8472" not in stem:
                inner_frames.append(frame[14 + 20 + 8 + 8:])
    decap.update(geneve_seeds(inner_frames))
    write(os.path.join(HERE, "corpus", "decapsulate"), decap)

    linked = {}
    local = os.path.abspath(LOCAL_FIXTURES)
    for name in sorted(os.listdir(local)):
        if not name.endswith((".pcap", ".pcapng")):
            continue
        for i, (frame, link) in enumerate(read_linked_frames(os.path.join(local, name)), 1):
            if link in LINKS:
                linked[f"{os.path.splitext(name)[0]}-{i:03}"] = bytes([LINKS[link] << 2]) + frame
    write(os.path.join(HERE, "corpus", "decapsulate_link"), linked)
    write(os.path.join(HERE, "corpus", "reassembly"), reassembly_seeds(fixtures))


if __name__ == "__main__":
    main()
