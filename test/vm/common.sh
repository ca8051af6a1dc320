# Shared by the guest scripts (sourced): results go to /jsvm, the job share.
J=/jsvm
JS="node dist/src/cli.js"
# waitfor TEXT FILE: until FILE holds TEXT (2 min at most)
waitfor() { for _ in $(seq 1 240); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.5; done; echo "timed out waiting for '$1' in $2"; return 1; }
# rules N [PORT]: N IPVS services in ipvsadm -R form (awk: a node start costs
# 15-40 s in the emulated guest)
rules() { seq 0 $(($1 - 1)) | awk -v port="${2:-80}" '{ printf "-A -t 10.%d.%d.%d:%s -s rr\n", int($1 / 65536) % 256, int($1 / 256) % 256, $1 % 256, port }'; }
step() { echo "== $(date +%T) $*"; }

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
# (or as fast as the guest manages, ~13 ms under a busy host) so each run holds
# up requests. Writes ping-cpus.txt, ping-ipvs.json and ping-ipvs.txt.
ping_estimator() {
  cpu=$(node -e "
const r = JSON.parse(require('fs').readFileSync('$1', 'utf8'));
const rows = r.histograms.filter((h) => h.probe === 'ipvs_estimation' && h.cpu !== null);
console.log(rows.sort((a, b) => b.count - a.count)[0].cpu);")
  other=$((1 - cpu))
  printf '%x' $((1 << cpu)) > /sys/class/net/lo/queues/rx-0/rps_cpus
  echo "estimator on CPU $cpu, ping from CPU $other" > $J/ping-cpus.txt
  taskset -c $other $JS ping 127.0.0.1 -c 3000 -i 2 --slow-ms 3 -o $J/ping-ipvs.json > $J/ping-ipvs.txt
  echo 0 > /sys/class/net/lo/queues/rx-0/rps_cpus
}
