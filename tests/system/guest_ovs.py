"""What the scripts that run inside the tiny guest (the "host" check: the
host's root over virtio-9p, Debian's stock kernel) share: running commands
with a bound, waiting with a bound, Open vSwitch started by hand (no
systemd), and the one result line the test reads off the console.
"""
import json
import os
import subprocess
import time

VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
# TC flower and the actions net_tap's rte_flow uses, and multiq for its queues.
TC_MODULES = "tun sch_ingress cls_flower act_gact sch_multiq act_skbedit act_mirred"


def sh(cmd, timeout=60):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def wait(pred, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


class Ovs:
    """ovsdb-server and ovs-vswitchd (the DPDK build) with a netdev bridge
    br0, everything under directory `d`. With dpdk=True, DPDK is initialised
    (vhost-user ports need it) on hugepages the caller has mounted."""

    def __init__(self, d, procs, dpdk=False):
        self.d = d
        os.makedirs(d, exist_ok=True)
        sh(f"ovsdb-tool create {d}/conf.db /usr/share/openvswitch/vswitch.ovsschema")
        log = open(f"{d}/daemons.log", "a")
        procs.append(subprocess.Popen(["ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock",
                                       f"--unixctl={d}/ovsdb.ctl", f"--pidfile={d}/ovsdb.pid",
                                       f"--log-file={d}/ovsdb.log"], stdout=log, stderr=log))
        wait(lambda: os.path.exists(f"{d}/db.sock"), 30, "ovsdb-server")
        self.vsctl("--no-wait init")
        if dpdk:
            self.vsctl("--no-wait set Open_vSwitch . other_config:dpdk-init=true "
                       "'other_config:dpdk-extra=--no-pci --file-prefix=vpovs' "
                       "other_config:dpdk-socket-mem=256 other_config:dpdk-socket-limit=300 "
                       "other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2 "
                       "other_config:pmd-maxsleep=1000")
        procs.append(subprocess.Popen([VSWITCHD, f"unix:{d}/db.sock", f"--unixctl={d}/vswitchd.ctl",
                                       f"--pidfile={d}/vswitchd.pid", f"--log-file={d}/vswitchd.log"],
                                      env=dict(os.environ, OVS_RUNDIR=d), stdout=log, stderr=log))
        self.vsctl("add-br br0 -- set bridge br0 datapath_type=netdev", timeout=90)
        wait(lambda: os.path.exists(f"{d}/br0.mgmt"), 60, "the bridge")

    @property
    def db(self):
        return f"unix:{self.d}/db.sock"

    def vsctl(self, args, timeout=30):
        return sh(f"ovs-vsctl --db={self.db} --timeout={timeout} {args}", timeout=timeout + 5)

    def ofctl(self, cmd, arg=""):
        env = dict(os.environ, OVS_RUNDIR=self.d)
        argv = ["ovs-ofctl", "-O", "OpenFlow13", cmd, f"unix:{self.d}/br0.mgmt"]
        if arg:
            argv.append(arg)
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"ovs-ofctl {cmd} {arg}: {r.stderr.strip()}")
        return r.stdout


def stop_all(procs):
    """SIGTERM in reverse start order, SIGKILL after a bound."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def attach_logs(out, d, names, size=1500):
    for name in names:
        try:
            with open(os.path.join(d, name)) as f:
                out[name] = f.read()[-size:]
        except OSError:
            pass


def report(out):
    print("VIOPOOL-RESULT " + json.dumps(out), flush=True)
