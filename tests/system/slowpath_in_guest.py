#!/usr/bin/env python3
"""Runs inside a guest on Debian's stock kernel (the tiny image's "host"
check), where net_tap's rte_flow has TC flower: the same OVS policy holds
for a flow before and after it is offloaded.

viopool-appliance owns a NIC port (net_tap) switched by an OVS-DPDK bridge:
the port's uplink and a pooled vNIC are vhost-user ports of the bridge.
viopool-host leases the vNIC over the fabric (loopback UDP) and serves it
to a VM (dpdk-testpmd answering ARP and ping as the vNIC's MAC). The
guest's kernel pings the VM through the tap from two addresses, and an
operator's OVS rule drops IPv4 from one of them.

Phase 1, the appliance without offload: OVS drops the flow (the rule's
OpenFlow counter moves), the other source gets its replies.
Phase 2, the appliance restarted with offload: its agent has made the rule
a TC flower filter on the tap; the flow is still dropped, now by the NIC
(the filter's counter moves, OVS's does not), and the other source still
gets its replies through OVS.

Prints one line: VIOPOOL-RESULT {"check": "slowpath", ...}.

usage: slowpath_in_guest.py BUILD_DIR
"""
import json
import os
import re
import subprocess
import sys
import time

from guest_ovs import Ovs, attach_logs, report, sh, stop_all, wait, TC_MODULES

BUILD = sys.argv[1]
D = "/tmp/viopool-slowpath"
TAP = "vpg0"
APPLIANCE = os.path.join(BUILD, "pool-manager/appliance/viopool-appliance")
HOST = os.path.join(BUILD, "vhost-backend/app/viopool-host")
CTL = os.path.join(BUILD, "integration/viopoolctl/viopoolctl")
API = "127.0.0.1:7480"
VNIC_MAC = "02:00:00:09:00:02"
VM_IP = "10.9.0.2"
ALLOWED, BLOCKED = "10.9.0.1", "10.9.0.66"
RULE = f"priority=100,ip,nw_src={BLOCKED},actions=drop"
out = {"check": "slowpath", "ok": False}
procs = []


def ctl(*args):
    r = subprocess.run([CTL, "--json", "-a", API, *args], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"viopoolctl {' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout) if r.stdout.strip() else {}


def start_appliance(offload):
    cfg = {"listen": "127.0.0.1:7400", "api": API, "state": f"{D}/appliance.db",
           "lease_ttl_ms": 10000,
           "inventory": [{"name": "uplink", "kind": "nic", "devargs": f"net_tap0,iface={TAP}",
                          "vnics": 4, "link_mbps": 1000,
                          "ovs": {"bridge": "br0", "db": f"unix:{D}/db.sock",
                                  "socket_dir": f"{D}/socks", "offload": offload,
                                  "rundir": D}}]}
    with open(f"{D}/appliance.json", "w") as f:
        json.dump(cfg, f)
    log = f"{D}/appliance.log"
    mark = os.path.getsize(log) if os.path.exists(log) else 0
    p = subprocess.Popen([APPLIANCE, "--config", f"{D}/appliance.json", "--no-huge"],
                         stdout=open(log, "a"), stderr=subprocess.STDOUT)
    procs.append(p)

    def up():
        if p.poll() is not None:
            raise RuntimeError(f"viopool-appliance exited with {p.returncode}")
        with open(log) as f:
            f.seek(mark)
            return "control API listening" in f.read()
    wait(up, 90, "viopool-appliance")
    # The tap is the PMD's, made anew at each start: the "wire" side of it
    # is the guest kernel's, with the two source addresses.
    sh(f"ip addr add {ALLOWED}/24 dev {TAP} && ip addr add {BLOCKED}/24 dev {TAP} && "
       f"ip link set {TAP} up")
    return p


def replies(src, count):
    r = subprocess.run(["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", "-I", src,
                        VM_IP], capture_output=True, text=True, timeout=30)
    m = re.search(r"(\d+) received", r.stdout)
    return int(m.group(1)) if m else 0


def ovs_hits(ovs):
    for line in ovs.ofctl("dump-flows").splitlines():
        if f"nw_src={BLOCKED}" in line and "priority=100" in line:
            m = re.search(r"n_packets=(\d+)", line)
            return int(m.group(1)) if m else 0
    raise RuntimeError("the drop rule is not in the bridge")


def tc_filters():
    # net_tap puts rules for what the PMD receives (what the kernel sends
    # into the tap) on the root qdisc, and its own on ingress.
    return sh(f"tc -s filter show dev {TAP}") + sh(f"tc -s filter show dev {TAP} ingress")


def tc_drops():
    text = tc_filters()
    total = 0
    for chunk in re.split(r"\n(?=filter )", text):
        if "action drop" in chunk:
            total += sum(int(n) for n in re.findall(r"Sent \d+ bytes (\d+) pkt", chunk))
    return total


def rule_state():
    try:
        show = ctl("offload", "--nic", "uplink", "show")
    except RuntimeError:
        return {}
    for r in show.get("rules", []):
        if f"nw_src={BLOCKED}" in r.get("rule", ""):
            return r
    return {}


def measure(ovs, with_tc):
    """Five pings from each source; what answered and which counters moved."""
    hits, drops = ovs_hits(ovs), tc_drops() if with_tc else 0
    got = {"blocked": replies(BLOCKED, 5), "allowed": replies(ALLOWED, 5)}
    time.sleep(0.5)
    got["ovs_hits"] = ovs_hits(ovs) - hits
    if with_tc:
        got["tc_drops"] = tc_drops() - drops
    return got


try:
    sh(f"modprobe -a {TC_MODULES} && ip link set lo up")
    os.makedirs(f"{D}/socks", exist_ok=True)
    # OVS-DPDK's vhost-user ports need hugepages; the other DPDK processes run without.
    sh("echo 300 > /proc/sys/vm/nr_hugepages && mkdir -p /dev/hugepages && "
       "mount -t hugetlbfs nodev /dev/hugepages")
    ovs = Ovs(D, procs, dpdk=True)
    appliance = start_appliance(False)
    carved = ctl("pool", "carve-vnic", "va", "--device", "uplink", "--mac", VNIC_MAC)
    host_cfg = {"host_id": "guest-host", "control_socket": f"{D}/host.sock",
                "devices": [{"name": "na", "type": "net", "socket": f"{D}/na.vhost",
                             "backend": {"kind": "pool", "appliance": API, "vnic": "va"}}]}
    with open(f"{D}/host.json", "w") as f:
        json.dump(host_cfg, f)
    procs.append(subprocess.Popen([HOST, "--config", f"{D}/host.json", "--no-huge", "--memory",
                                   "256"], stdout=open(f"{D}/host.log", "w"),
                                  stderr=subprocess.STDOUT))
    wait(lambda: os.path.exists(f"{D}/na.vhost"), 60, "viopool-host's vNIC socket")
    procs.append(subprocess.Popen(
        ["dpdk-testpmd", "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--file-prefix=vm",
         "--lcores=0@(0-1),1@(0-1)",
         f"--vdev=net_virtio_user0,path={D}/na.vhost,queues=1,queue_size=1024,mac={VNIC_MAC}",
         "--", "--nb-cores=1", "--total-num-mbufs=8192", "--forward-mode=icmpecho",
         "--stats-period=1", "--no-flush-rx"],
        stdin=subprocess.DEVNULL, stdout=open(f"{D}/vm.log", "w"), stderr=subprocess.STDOUT))
    wait(lambda: replies(ALLOWED, 1) == 1, 60, "a reply from the VM")
    out["ports"] = ovs.vsctl("list-ports br0").split()
    # Both sources reach the VM before the operator's rule.
    out["no_rule"] = {"blocked": replies(BLOCKED, 3), "allowed": replies(ALLOWED, 3)}

    ovs.ofctl("add-flow", RULE)
    # (OVS revalidates the flows its datapath cached a moment later.)
    wait(lambda: replies(BLOCKED, 1) == 0, 20, "OVS to drop the flow")
    out["slow_path"] = measure(ovs, with_tc=False)

    # Phase 2: the same appliance, its carving and lease kept, now with offload.
    appliance.terminate()
    appliance.wait(timeout=20)
    procs.remove(appliance)
    appliance = start_appliance(True)
    wait(lambda: rule_state().get("state") == "offloaded", 60, "the rule to be offloaded")
    t0 = time.time()
    wait(lambda: replies(ALLOWED, 1) == 1, 60, "the VM behind the restarted appliance")
    out["reconnect_s"] = round(time.time() - t0, 1)
    shown = rule_state()
    out["offloaded_rule"] = {"state": shown.get("state"), "note": shown.get("note", ""),
                             "flows": [f.get("flow") for f in shown.get("rte_flow", [])]}
    out["tc"] = tc_filters()[:3000]
    out["offloaded"] = measure(ovs, with_tc=True)
    out["vnic"] = carved.get("mac")
    out["ok"] = True
except Exception as e:  # noqa: BLE001 - everything goes into the result line
    out["error"] = str(e)
    attach_logs(out, D, ("appliance.log", "host.log"), 12000)
    attach_logs(out, D, ("vm.log", "vswitchd.log"))
finally:
    stop_all(procs)
    report(out)
