# Shared by the guest scripts (sourced): results go to /jsvm, the job share.
J=/jsvm
JS="node dist/src/cli.js"
# waitfor TEXT FILE: until FILE holds TEXT (2 min at most)
waitfor() { for _ in $(seq 1 240); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.5; done; echo "timed out waiting for '$1' in $2"; return 1; }
# rules N [PORT]: N IPVS services in ipvsadm -R form (awk: a node start costs
# 15-40 s in the emulated guest)
rules() { seq 0 $(($1 - 1)) | awk -v port="${2:-80}" '{ printf "-A -t 10.%d.%d.%d:%s -s rr\n", int($1 / 65536) % 256, int($1 / 256) % 256, $1 % 256, port }'; }
# step TEXT: says a step begins, and when (for the watchdog below: replaced
# whole, never read half-written; in the job share, which no other run uses)
step() {
  echo "== $(date +%T) $*"
  date +%s > $J/.step-start.new && mv $J/.step-start.new $J/.step-start
}

# A step that runs STEP_LIMIT s has hung (the longest, NIC (m), takes ~170 s).
# Rather than wait for the host's timeout with nothing said, the guest puts
# what it can see of the hang on the console (the host prints it: "WARNING:"
# starts the excerpt): its processes with where they sleep, jitterscope's
# kernel stacks, the blocked tasks and every CPU's backtrace (sysrq w, l), the
# kernel's log; then it ends the run with exit 124.
STEP_LIMIT=${STEP_LIMIT:-600}
(
  while sleep 10; do
    start=$(cat $J/.step-start 2>/dev/null) || continue
    [ -n "$start" ] || continue
    [ $(($(date +%s) - start)) -ge $STEP_LIMIT ] || continue
    {
      echo "WARNING: jsvm: a step ran ${STEP_LIMIT} s: $(tail -n 1 $J/output.log 2>/dev/null)"
      ps -eo pid,stat,wchan:30,etime,args | grep -v ' \[' | tail -n 40
      for p in $(pgrep -f 'dist/src/cli.js'); do
        echo "-- pid $p: $(tr '\0' ' ' < /proc/$p/cmdline)"
        cat /proc/$p/stack 2>/dev/null
        for t in /proc/$p/task/*; do echo "   $(cat $t/comm 2>/dev/null) $(cat $t/wchan 2>/dev/null) $(cut -d' ' -f3 $t/stat 2>/dev/null)"; done
      done
      dmesg | tail -n 40
    } > /dev/console 2>&1
    echo w > /proc/sysrq-trigger
    echo l > /proc/sysrq-trigger
    sleep 2
    echo "jsvm-exit:124" > /dev/console
    sync
    echo o > /proc/sysrq-trigger
  done
) &

# load_ipvs: ip_vs loaded on CPU 1 with timer migration off. Each timer then
# stays on the CPU that arms it: with migration on, estimation_timer re-arms
# itself onto whichever CPU is busy (during the ping, the sender's), and RPS
# would steer the ping to a CPU the estimator has left.
load_ipvs() {
  echo 0 > /proc/sys/kernel/timer_migration
  taskset -c 1 modprobe ip_vs
}

# ping_estimator RECORD.json: RPS on lo steered to the CPU where RECORD saw
# most estimation_timer runs, `jitterscope ping` from the other CPU, every 2 ms
# (or as fast as the guest manages, ~7.5 ms under TCG, ~13 ms under a busy host)
# so each run holds up requests. 9,000 of them: 3,000 spanned 4 runs and the
# estimator was named for 1, 4, 5 and 5 replies, and one CI run failed the
# test's floor of 2; at about one a run, a dozen runs keep that floor's chance
# of failing a correct build near 1 in 5,000. Writes ping-cpus.txt,
# ping-ipvs.json and ping-ipvs.txt.
ping_estimator() {
  cpu=$(node -e "
const r = JSON.parse(require('fs').readFileSync('$1', 'utf8'));
const rows = r.histograms.filter((h) => h.probe === 'ipvs_estimation' && h.cpu !== null);
console.log(rows.sort((a, b) => b.count - a.count)[0].cpu);")
  other=$((1 - cpu))
  printf '%x' $((1 << cpu)) > /sys/class/net/lo/queues/rx-0/rps_cpus
  echo "estimator on CPU $cpu, ping from CPU $other" > $J/ping-cpus.txt
  taskset -c $other $JS ping 127.0.0.1 -c 9000 -i 2 --slow-ms 3 -o $J/ping-ipvs.json > $J/ping-ipvs.txt
  echo 0 > /sys/class/net/lo/queues/rx-0/rps_cpus
}

# ---- a NIC into the guest (test/vm/vm.ts: NicOptions sets NIC_HOST, NIC_GUEST) ----

# nic_up: virtio-net up with NIC_GUEST; sets NIC (its name) and IRQ (its receive
# queue's interrupt) and waits until the host end answers
nic_up() {
  modprobe virtio_net
  NIC=
  for _ in $(seq 1 40); do NIC=$(ls /sys/class/net | grep -v '^lo$' | head -1); [ -n "$NIC" ] && break; sleep 0.25; done
  ip addr add $NIC_GUEST/24 dev $NIC
  ip link set $NIC up
  IRQ=$(awk -F: '/virtio[0-9]+-input\.0/ { gsub(/ /, "", $1); print $1; exit }' /proc/interrupts)
  echo "nic $NIC irq $IRQ" > $J/nic.txt
  for _ in $(seq 1 120); do ping -c 1 -W 1 $NIC_HOST > /dev/null 2>&1 && return 0; sleep 0.5; done
  echo "the host end $NIC_HOST never answered"
  return 1
}
# nic_irq CPU: the receive queue's interrupt on CPU only. x86 moves an interrupt
# when it next fires (one CI run had a scenario's first request on the old CPU):
# two replies from the host move it before anything is measured
nic_irq() {
  printf '%x' $((1 << $1)) > /proc/irq/$IRQ/smp_affinity
  ping -c 2 -W 1 $NIC_HOST > /dev/null 2>&1 || true
}
# nic_rps MASK: RPS for the NIC's receive queue (0: off)
nic_rps() { echo $1 > /sys/class/net/$NIC/queues/rx-0/rps_cpus; }
# interrupts_on CPU: how many of the NIC's receive interrupts CPU has taken
interrupts_on() { awk -v irq="$IRQ:" -v col=$(($1 + 2)) '$1 == irq { print $col }' /proc/interrupts; }
# host_ping NAME COUNT INTERVAL_MS ID [flood]: the host pings this guest (test/vm/vm.ts:
# servePings); returns once its output is in $J/NAME.host-ping.txt, or says the
# host never did after 560 s of the clock (a count of sleeps ran slow under TCG,
# and the longest job, NIC (m), takes 450 s; the step limit is 600 s). The request
# is written whole, then renamed (and retried: 9p once failed a create).
host_ping() {
  for i in 1 2 3 4 5; do
    (echo "$1 $2 $3 $4 ${5:-}" > $J/host-ping-request.new && mv $J/host-ping-request.new $J/host-ping-request) 2>> $J/host-ping-request.log && break
    sleep 0.5
  done
  deadline=$(($(date +%s) + 560))
  until [ -e $J/$1.host-ping.txt ] || [ $(date +%s) -ge $deadline ]; do sleep 0.25; done
  [ -e $J/$1.host-ping.txt ] || { echo "the host never pinged for $1"; return 1; }
}
# record_host_ping NAME COUNT INTERVAL_MS ID [flood]: `record` in this guest while the
# host pings it: $J/NAME.json, $J/NAME.host-ping.txt, and the interrupt counts
record_host_ping() {
  before0=$(interrupts_on 0); before1=$(interrupts_on 1)
  # on CPU 0: the tracer's own node threads stay off CPU 1, where the estimator (or the
  # spinner) and the NIC's interrupt are (a 5-8 ms node[PID] stretch there was seen)
  taskset -c 0 $JS record -d 10m -o $J/$1.json 2> $J/$1.err &
  rec=$!
  waitfor 'tracing for' $J/$1.err
  host_ping $1 $2 $3 $4 ${5:-}
  kill -INT $rec
  wait $rec
  echo "cpu0 $(($(interrupts_on 0) - before0)) cpu1 $(($(interrupts_on 1) - before1))" > $J/$1.irqs.txt
}
