# Runs inside the arm64 guest (test/vm/26-vm-arm64.test.ts): Debian's arm64
# 6.1 kernel, an arm64 userland and jitterscope installed from its package
# (the prebuilt arm64 addon; no compiler). Results go to /jsvm.
. /jsvm/common.sh
JS=jitterscope
step "doctor: the rungs on arm64"
node -p process.arch > $J/arch.txt
$JS doctor --json > $J/doctor.json
$JS doctor > $J/doctor.txt

step "the lab stall on CPU 1, named"
echo 0 > /proc/sys/kernel/timer_migration # 6.1 cannot pin a BPF timer to its CPU (6.7+): it stays where armed
$JS lab --cpu 1 --stall-ms 15 --period-ms 200 2> $J/lab.err &
lab=$!
waitfor 'lab: stalling' $J/lab.err
$JS record -d 5s -o $J/lab.json 2> $J/lab-record.err
kill -INT $lab
wait $lab

step "IPVS at 20,000 services: estimation_timer"
modprobe crc32c_generic # busybox modprobe misses ip_vs's softdep
load_ipvs
rules 20000 | ipvsadm -R
$JS doctor --json > $J/doctor-ipvs.json
$JS record -d 8s -o $J/ipvs.json 2> $J/ipvs.err

step "the NIC ring: virtio-net's interrupt on the estimator's CPU, RPS off; the host pings every 10 ms"
rules 20000 81 | ipvsadm -R # 40,000 services: runs long enough to stand out
nic_up
nic_irq 1
nic_rps 0
record_host_ping irq-on-estimator 3000 10 5101
step done
