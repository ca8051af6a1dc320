# Runs inside the Debian 6.1 guest (test/20-vm-6.1.test.ts): the real
# estimation_timer at two IPVS sizes, each attach mode, ip_vs loaded and
# unloaded while tracing, and ping attribution. Results go to /jsvm.
. test/vm/common.sh

step doctor without ip_vs
$JS doctor --json > $J/doctor-noipvs.json

step ip_vs loaded, then unloaded, while tracing with kprobes
# stopped by SIGINT once ip_vs is gone and two polls (2 s each) have passed,
# not by a fixed duration: under emulation on a busy host each step can take long
$JS record --attach kprobe -d 10m -o $J/hotplug.json 2> $J/hotplug.err &
rec=$!
waitfor 'tracing for' $J/hotplug.err
taskset -c 1 modprobe ip_vs
ipvsadm -A -t 10.0.0.1:80 -s rr
# the probe attaches at the next 2 s poll, slower in a busy emulated guest;
# then at least two estimator runs (every 2 s)
sleep 12
ipvsadm -C
rmmod ip_vs_rr ip_vs
sleep 5
kill -INT $rec
wait $rec

step 1000 services
load_ipvs
rules 1000 | ipvsadm -R
$JS record -d 7s -o $J/ipvs-1000.json

step 20000 services
ipvsadm -C
rules 20000 | ipvsadm -R
$JS record -d 7s -o $J/ipvs-20000-auto.json
# fentry and tracepoint side by side, so both time the very same runs
$JS record --attach fentry -d 10s -o $J/ipvs-20000-fentry.json &
a=$!
$JS record --attach tracepoint -d 10s -o $J/ipvs-20000-tracepoint.json
wait $a
$JS record --attach kprobe -d 7s -o $J/ipvs-20000-kprobe.json
$JS doctor --json > $J/doctor-ipvs.json

step ping with RPS steering to the estimator CPU
# 20,000 services more (40,000 in all): each estimator run (~15 ms here) then
# spans at least one request even when this guest sends one every ~13 ms
# instead of every 2 ms, as it does when its host is busy
rules 20000 81 | ipvsadm -R
ping_estimator $J/ipvs-20000-auto.json

step kprobe on net_rx_action and icmp_rcv during a ping
$JS record --attach kprobe -d 8s -o $J/kprobe-ping.json 2> $J/kprobe-ping.err &
rec=$!
waitfor 'tracing for' $J/kprobe-ping.err
ping -c 10 -i 0.2 -e 4242 127.0.0.1 > /dev/null
wait $rec
step "serve: short net_rx_action runs counted in the kernel, fentry; estimation_timer by kprobe, which lets ip_vs go"
$JS serve --listen 127.0.0.1:9477 2> $J/serve.err &
srv=$!
waitfor 'serving http' $J/serve.err
# scraped every 0.5 s throughout: the module going and coming and a CPU going
# offline must never cost an answer
(
  n=0; ok=0
  while [ ! -e $J/serve-scrapes.stop ]; do
    n=$((n + 1))
    # bounded like Prometheus's default scrape_timeout, 10 s, twice over for the
    # emulator (one CI run had 4 of 19 scrapes over 5 s while ipvsadm loaded
    # rules); coreutils' timeout, since busybox wget's own -T segfaults here
    timeout 20 busybox wget -q -O /dev/null http://127.0.0.1:9477/metrics && ok=$((ok + 1))
    sleep 0.5
  done
  echo "$ok of $n" > $J/serve-scrapes.txt
) &
scrapes=$!
ping -c 20 -i 0.1 127.0.0.1 > /dev/null
sleep 5
busybox wget -q -O - http://127.0.0.1:9477/metrics > $J/serve-metrics.txt
# an administrator (or kube-proxy leaving IPVS mode) unloads ip_vs while serve traces
ipvsadm -C
# (the script runs under set -e: the exit status is kept, not fatal, so the test can say it)
rc=0
rmmod ip_vs_rr ip_vs > $J/serve-rmmod.txt 2>&1 || rc=$?
echo "rmmod exit $rc" >> $J/serve-rmmod.txt
# with ip_vs held, the rest cannot run: load_ipvs needs it gone
[ $rc = 0 ] || { ipvsadm -C; rmmod ip_vs_rr ip_vs || true; }
# two polls (2 s each) notice it
sleep 5
busybox wget -q -O - http://127.0.0.1:9477/metrics > $J/serve-metrics-unloaded.txt
# a CPU goes offline and comes back
echo 0 > /sys/devices/system/cpu/cpu1/online
sleep 2
echo 1 > /sys/devices/system/cpu/cpu1/online
# ip_vs back, with services: traced again by itself
load_ipvs
rules 5000 | ipvsadm -R
sleep 12
busybox wget -q -O - http://127.0.0.1:9477/metrics > $J/serve-metrics-reloaded.txt
touch $J/serve-scrapes.stop
wait $scrapes
kill -TERM $srv
wait $srv
echo "serve exit $?" >> $J/serve.err

step done
