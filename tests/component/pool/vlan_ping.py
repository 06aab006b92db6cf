#!/usr/bin/env python3
"""Pings a station's MAC on a VLAN from a raw packet socket (the kernel here
has no 8021q module): sends ICMP echo requests tagged with VLAN ID, and
succeeds when the echo replies come back from that MAC on the same VLAN.

usage: vlan_ping.py IFACE DST_MAC VLAN SRC_IP DST_IP [COUNT]
Exit 0 if every request got its reply within 2 s, 1 otherwise."""
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def main():
    iface, dst_mac, vlan, src_ip, dst_ip = sys.argv[1:6]
    count = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    vlan = int(vlan)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    src_mac = s.getsockname()[4]
    dst = mac_bytes(dst_mac)
    ok = 0
    for seq in range(1, count + 1):
        icmp = struct.pack("!BBHHH", 8, 0, 0, 0x7670, seq) + b"viopool-vlan-ping" * 3
        icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0,
                         socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frame = dst + src_mac + struct.pack("!HH", 0x8100, vlan) + struct.pack("!H", 0x0800) + ip + icmp
        s.send(frame)
        deadline = time.time() + 2
        while time.time() < deadline:
            s.settimeout(max(0.01, deadline - time.time()))
            try:
                data, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(20))
            except socket.timeout:
                break
            if addr[2] == socket.PACKET_OUTGOING or data[6:12] != dst:
                continue
            tci = None
            for level, kind, cdata in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, _, _, _, _, vtci = struct.unpack("IIIHHH", cdata[:18])
                    if status & TP_STATUS_VLAN_VALID:
                        tci = vtci
            body = data[12:]
            if struct.unpack("!H", body[:2])[0] == 0x8100:
                tci = struct.unpack("!H", body[2:4])[0]
                body = body[4:]
            if tci is None or (tci & 0xFFF) != vlan or struct.unpack("!H", body[:2])[0] != 0x0800:
                continue
            l3 = body[2:]
            ihl = (l3[0] & 0xF) * 4
            if l3[9] == 1 and l3[ihl] == 0 and struct.unpack("!H", l3[ihl + 6:ihl + 8])[0] == seq:
                ok += 1
                break
    print("vlan_ping: %d/%d replies on VLAN %d from %s" % (ok, count, vlan, dst_mac))
    return 0 if ok == count else 1


if __name__ == "__main__":
    sys.exit(main())
