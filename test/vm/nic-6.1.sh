# Runs inside the Debian 6.1 guest (test/25-vm-nic.test.ts): packets that wait
# in a real NIC's ring (virtio-net, fed by the host through a tap) while
# estimation_timer holds the CPU, the default node's layout: multi-queue NIC,
# RPS off, the queue's interrupt on one CPU. Results go to /jsvm.
. test/vm/common.sh
# this script's own processes (the shell, host_ping's polling sleeps) stay on
# CPU 0, off CPU 1 where the culprits under test run: a `sleep` holding CPU 1
# 5-10 ms was seen behind requests there. Steps that belong on CPU 1 say so.
taskset -p 1 $$ > /dev/null

step NIC up
nic_up
step 40000 services, estimation_timer on CPU 1
load_ipvs
rules 20000 | ipvsadm -R
rules 20000 81 | ipvsadm -R

# (a) and (f) ping for 60 s: at 30 s, one CI run's pauses left them 4 and 3 clean samples
step "(a) interrupt on the estimator's CPU, RPS off; the host pings every 10 ms"
nic_irq 1
nic_rps 0
record_host_ping irq-on-estimator 6000 10 5101

step "(b) control: the interrupt on the other CPU"
nic_irq 0
record_host_ping irq-elsewhere 1000 10 5102

step "(e) the article's topology: the interrupt on CPU 0, RPS steering to CPU 1"
nic_rps 2
record_host_ping rps-to-estimator 6000 10 5103
nic_rps 0

step "(f) jitterscope ping from this guest to the host: the replies come through the NIC ring"
nic_irq 1
taskset -c 0 $JS ping $NIC_HOST -c 6000 -i 10 --slow-ms 3 -o $J/ping-nic.json > $J/ping-nic.txt 2> $J/ping-nic.err

step "(d) a TCP server pinned to the estimator's CPU, the interrupt on CPU 0, RPS off: its packets are processed on CPU 0, it waits for CPU 1"
nic_irq 0
nic_rps 0
taskset -c 1 node test/fixtures/echo.js server $NIC_GUEST 7799 0 $J/wakeup.server.json > $J/wakeup.server.out &
srv=$!
waitfor listening $J/wakeup.server.out
echo $srv > $J/wakeup.server.pid
record_host_ping wakeup 9000 3 tcp:7799
kill -TERM $srv 2>/dev/null || true
wait $srv || true

# 150 s: 7-12 clean ICMP probes held in this guest, fewer than the false-failure budget needs to judge a miss at the
# noise this TCG guest shows (2 of 30 unexplained; docs/testing.md): a miss there reads "too few to judge" and skips.
# 450 s would give enough, but over 450 s this guest's serve stopped answering (570 of 2,636 slow probes unanswered,
# state no-answer at the end, 2026-12-08): not yet understood.
step "(m) the mesh: serve --mesh here and on the host, each the other's peer, 150 s at 100 probes a second; the interrupt on the estimator's CPU, RPS off"
nic_irq 1
nic_rps 0
taskset -c 0 $JS serve --listen $NIC_GUEST:9477 --node-name guest --mesh --peers host=$NIC_HOST --mesh-slow-ms 10 --mesh-rate 100 2> $J/mesh.guest.err &
msrv=$!
waitfor 'serving http' $J/mesh.guest.err
host_ping mesh 150 0 mesh:9477 &
hp=$!
# this guest's view while the host's serve still answers (its last seconds would read "no answer")
sleep 140
taskset -c 0 node -e "fetch('http://$NIC_GUEST:9477/mesh').then((r) => r.text()).then((t) => require('fs').writeFileSync('$J/mesh.guest.json', t), (e) => require('fs').writeFileSync('$J/mesh.guest.json', String(e)))"
wait $hp
kill -TERM $msrv 2>/dev/null || true
wait $msrv || true

step "(c) NET_RX left to ksoftirqd while a SCHED_FIFO task holds CPU 1"
# no rules: the estimator's runs take microseconds again
ipvsadm -C
nic_irq 1
# busy 30 ms, asleep 270 ms, at real-time priority on CPU 1 (KERNEL-LAB: "A starved ksoftirqd")
chrt -f 50 taskset -c 1 node -e "
const s = new Int32Array(new SharedArrayBuffer(4));
require('fs').writeFileSync('$J/spinner.pid', String(process.pid));
for (;;) { const t = Date.now(); while (Date.now() - t < 30) {} Atomics.wait(s, 0, 0, 270); }" &
spin=$!
waitfor . $J/spinner.pid
record_host_ping ksoftirqd 1500 10 5104 flood

step "(g) threaded NAPI: eth0 polls in napi/eth0-* threads on CPU 1, behind the same task"
echo 1 > /sys/class/net/eth0/threaded
for p in /proc/[0-9]*; do
  case "$(cat $p/comm 2>/dev/null)" in napi/eth0-*) taskset -p 2 ${p#/proc/} > /dev/null ;; esac
done
record_host_ping napi-thread 3000 10 5105
echo 0 > /sys/class/net/eth0/threaded
kill $spin

step done
