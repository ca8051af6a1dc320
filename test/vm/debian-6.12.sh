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
echo "== done"
