# Runs inside the Debian 6.12 guest (test/21-vm-6.12.test.ts): IPVS with the
# kthread estimator (6.2+), where estimation_timer does not exist.
J=/jsvm
JS="node dist/src/cli.js"
modprobe ip_vs
ipvsadm -A -t 10.0.0.1:80 -s rr
ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m
sleep 3 # the estimator kthread starts once a service exists
echo "== doctor with ip_vs"
$JS doctor --json > $J/doctor-ipvs.json
$JS doctor > $J/doctor-ipvs.txt
echo "== record"
$JS record -d 5s -o $J/record.json 2> $J/record.err &
rec=$!
sleep 1
ping -c 5 -i 0.5 127.0.0.1 > /dev/null || true
wait $rec
echo "== host pause"
# a timer due every 10 ms on each CPU, so each has one to fire late
taskset -c 0 sh -c 'while :; do sleep 0.01; done' & s0=$!
taskset -c 1 sh -c 'while :; do sleep 0.01; done' & s1=$!
$JS record -d 6s -o $J/pause.json 2> $J/pause.err &
rec=$!
until grep -q "tracing for" $J/pause.err || ! kill -0 $rec 2>/dev/null; do sleep 0.5; done
sleep 1
echo 1500 > $J/pause-request # the host stops this VM for 1.5 s (test/vm.ts)
n=0
until [ -e $J/pause-done ] || [ $n -ge 100 ]; do sleep 0.2; n=$((n + 1)); done
wait $rec
kill $s0 $s1
echo "== done"
