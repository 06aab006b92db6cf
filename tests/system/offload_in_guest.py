#!/usr/bin/env python3
"""Runs inside a guest on Debian's stock kernel (the tiny image's "host"
check: the host's root over virtio-9p), where net_tap's rte_flow has TC
flower: Open vSwitch (ovsdb-server + the DPDK build of ovs-vswitchd, netdev
bridge) and viopool-offload on a net_tap port. Adds OpenFlow rules with
ovs-ofctl, waits for the agent to offload them, shows the TC filters the PMD
made, sends frames into the tap from the kernel and counts where they land.
Prints one line: VIOPOOL-RESULT {"check": "offload", ...}.

usage: offload_in_guest.py BUILD_DIR
"""
import json
import os
import socket
import struct
import subprocess
import sys
import time

from guest_ovs import Ovs, attach_logs, report, sh, stop_all, wait, TC_MODULES

BUILD = sys.argv[1]
D = "/tmp/viopool-ovs"
TAP = "vpg0"
OFFLOAD = os.path.join(BUILD, "offload/viopool-offload")
CTL = os.path.join(BUILD, "integration/viopoolctl/viopoolctl")
out = {"check": "offload", "ok": False}
procs = []


def api(op):
    r = subprocess.run([CTL, "--json", "offload", "--socket", f"{D}/offload.sock", op],
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout else {}


def frame(src_ip, dst_ip, proto, dport):
    # Ethernet (to the tap's own MAC is not needed: the PMD receives all),
    # IPv4 with a valid header checksum, UDP.
    payload = b"viopool" * 4
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, proto, 0,
                      socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    csum = 0
    for i in range(0, 20, 2):
        csum += (hdr[i] << 8) + hdr[i + 1]
    csum = (csum & 0xFFFF) + (csum >> 16)
    csum = ~(csum + (csum >> 16)) & 0xFFFF
    hdr = hdr[:10] + struct.pack("!H", csum) + hdr[12:]
    eth = bytes.fromhex("525400000009") + bytes.fromhex("02000000aa01") + struct.pack("!H", 0x0800)
    return eth + hdr + udp


def rx_counts():
    s = api("stats")
    return s.get("uplinks", [{}])[0].get("rx_packets", [])


try:
    sh(f"modprobe -a {TC_MODULES}")
    ovs = Ovs(D, procs)
    ovs.ofctl("del-flows")

    cfg = {"bridge": f"unix:{D}/br0.mgmt", "ovs_rundir": D, "control_socket": f"{D}/offload.sock",
           "resync_ms": 3000, "drain_rx": True,
           "uplinks": [{"name": "up0", "ofport": 1, "devargs": f"net_tap0,iface={TAP}",
                        "rx_queues": 4}],
           "vnics": [{"name": "vm1", "ofport": 10, "uplink": "up0", "queue": 1, "mark": 101,
                      "mac": "52:54:00:00:00:01"},
                     {"name": "vm2", "ofport": 11, "uplink": "up0", "queue": 2,
                      "mac": "52:54:00:00:00:02"}]}
    with open(f"{D}/offload.json", "w") as f:
        json.dump(cfg, f)
    olog = open(f"{D}/offload.log", "w")
    procs.append(subprocess.Popen([OFFLOAD, "--config", f"{D}/offload.json", "--no-huge"],
                                  stdout=olog, stderr=olog))
    wait(lambda: "following" in open(f"{D}/offload.log").read(), 90, "viopool-offload")

    rules = {
        "vxlan": "priority=300,in_port=1,udp,tp_dst=4789,actions=output:10",
        "blocked": "priority=200,in_port=1,ip,nw_src=10.9.0.66,actions=drop",
        "metered": "priority=150,in_port=1,ip,nw_src=10.9.0.77,actions=meter:1,output:10",
        "rest": "priority=100,in_port=1,udp,nw_src=10.9.0.8,actions=output:11",
        # Overlaps the metered rule, which stays on OVS: must stay there too.
        "below": "priority=50,in_port=1,ip,actions=output:11",
    }
    ovs.ofctl("add-meter", "meter=1,kbps,band=type=drop,rate=1000")
    for r in rules.values():
        ovs.ofctl("add-flow", r)

    def settled():
        s = api("show").get("rules", [])
        return len(s) == len(rules) and all(x["state"] != "pending" for x in s)
    wait(settled, 60, "the agent to settle")
    shown = api("show")["rules"]
    out["rules"] = {x["rule"].split(",")[1]: {"state": x["state"], "reasons": x["reasons"],
                                               "flows": [f["flow"] for f in x["rte_flow"]],
                                               "note": x.get("note", "")} for x in shown}
    tc = ""
    for parent in ("", " ingress"):
        r = subprocess.run(f"tc filter show dev {TAP}{parent}", shell=True, capture_output=True,
                           text=True, timeout=10)
        tc += r.stdout
    out["tc_filters"] = tc.count("flower")
    out["tc"] = tc[:3000]

    # Frames from the kernel into the tap: where do they land?
    sh(f"ip link set {TAP} up")
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((TAP, 0))
    sends = {"vxlan": ("10.9.0.5", "10.9.0.9", 17, 4789), "blocked": ("10.9.0.66", "10.9.0.9", 17, 53),
             "rest": ("10.9.0.8", "10.9.0.9", 17, 53)}
    landed = {}
    for name, (src, dst, proto, dport) in sends.items():
        before = rx_counts()
        for _ in range(20):
            s.send(frame(src, dst, proto, dport))
        time.sleep(1.0)
        after = rx_counts()
        landed[name] = [a - b for a, b in zip(after, before)]
    out["landed"] = landed
    out["stats"] = api("stats")
    out["ok"] = True
except Exception as e:  # noqa: BLE001 - everything goes into the result line
    out["error"] = str(e)
    attach_logs(out, D, ("offload.log", "daemons.log", "ovsdb.log", "vswitchd.log"))
finally:
    stop_all(procs)
    report(out)
