# Runs inside the Debian 5.10 guest (test/22-vm-debian-5.10.test.ts): BTF for
# vmlinux but none for modules, so estimation_timer [ip_vs] is reached by
# kprobe while net_rx_action and icmp_rcv still use fentry; and the NIC path
# (a virtio-net NIC fed by the host through a tap) on this older kernel.
. test/vm/common.sh

step record with a 64 KiB locked-memory limit and no CAP_SYS_RESOURCE
# 5.10 charges BPF maps to RLIMIT_MEMLOCK (5.11+ to the memory cgroup): what a
# container without --ulimit memlock or CAP_SYS_RESOURCE meets
sh -c 'ulimit -l 64; exec setpriv --bounding-set -sys_resource node dist/src/cli.js record -d 1s -o /jsvm/memlock.json' 2> $J/memlock.err || echo "exit $?" >> $J/memlock.err

step 20000 services
load_ipvs
rules 20000 | ipvsadm -R
$JS doctor --json > $J/doctor-ipvs.json
$JS doctor > $J/doctor-ipvs.txt
$JS record -d 8s -o $J/ipvs-20000.json 2> $J/ipvs-20000.err

step ping with RPS steering to the estimator CPU
# 20,000 services more: each estimator run (~9 ms at 20,000 here) then spans
# a request even when this guest sends one every ~13 ms
rules 20000 81 | ipvsadm -R
ping_estimator $J/ipvs-20000.json

step "the NIC path: the NIC's interrupt on the estimator's CPU 1, RPS off, the host pinging"
nic_up
nic_irq 1
record_host_ping irq-on-estimator 4500 10 5201

step done
