// What to do about a culprit: the advice a verdict gives, and what `doctor`
// says about IPVS. Text only; kept in one place so both say the same.
import { IPVS_ESTIMATION_SYMBOL, isIpvsEstimation } from '../base/host-facts';
import type { CulpritId } from './attribute';

const IPVS_WHY = `IPVS's ${IPVS_ESTIMATION_SYMBOL} (kernels before 6.2) walks every IPVS service and destination every 2 s in TIMER softirq; with tens of thousands of rules one run takes tens to hundreds of ms, and packets that RPS steers to that CPU wait.`;
const IPVS_SWITCH = [
  'Fix now: sysctl -w net.ipv4.vs.run_estimation=0 in every network namespace that has IPVS rules (it is per namespace). Cost: the rate and byte counters of `ipvsadm -Ln --stats` stop changing.',
  'Keep it: set it again whenever ip_vs is reloaded (a sysctl.d file plus an install hook in /etc/modprobe.d/ip_vs.conf, or the node agent that loads ip_vs).',
];
const IPVS_NO_SWITCH =
  'This kernel has no net.ipv4.vs.run_estimation switch (Debian 11 and mainline 5.10 lack it; some vendor 5.10 kernels, such as Alibaba Cloud Linux 3, backported it): the run shortens only with fewer IPVS services and destinations (kube-proxy in iptables or nftables mode, or fewer Services), or on a kernel that has the switch.';
const IPVS_LASTING = [
  'Lasting fix: a kernel >= 6.2, whose estimator runs in kthreads (ipvs-e:*) that can be kept off the busy CPUs (net.ipv4.vs.est_cpulist, est_nice); or a live patch where kernel upgrades are slow.',
  'Also: RPS masks (/sys/class/net/DEV/queues/rx-N/rps_cpus) that keep packets off the CPU where the estimator runs shorten the wait.',
];

/** What to do about estimation_timer; `hasSwitch`: the kernel has net.ipv4.vs.run_estimation. */
export function ipvsAdvice(hasSwitch: boolean, withWhy = true): string[] {
  return [...(withWhy ? [IPVS_WHY] : []), ...(hasSwitch ? IPVS_SWITCH : [IPVS_NO_SWITCH]), ...IPVS_LASTING];
}

/** What the advice needs to know of the host it was traced on. */
export interface AdviceContext {
  /** The kernel has net.ipv4.vs.run_estimation (false on Debian 11's 5.10). */
  ipvsSwitch: boolean;
  /** What the culprit held up: receive processing (default), or tasks woken by it (their packets were on time). */
  heldUp?: 'packets' | 'wakeups';
}

/** Advice about a culprit that held its CPU for up to `maxMs` at a time. */
export function adviceForCulprit(c: CulpritId, maxMs: number, ctx: AdviceContext = { ipvsSwitch: true }): string[] {
  const { culprit, cpu } = c;
  if (c.kind === 'pause') return pauseAdvice([cpu], maxMs);
  if (isIpvsEstimation(culprit)) return ipvsAdvice(ctx.ipvsSwitch);
  if (culprit === 'bpf_timer_cb')
    return [
      `bpf_timer_cb is a BPF timer callback; if \`jitterscope lab\` is running, this is its deliberate stall. Otherwise find the BPF program that arms the timer (bpftool prog show) and its owner.`,
    ];
  const task = c.kind === 'task' || c.kind === 'self';
  if (task && ctx.heldUp === 'wakeups')
    return [
      `${culprit} held CPU ${cpu} for up to ${maxMs.toFixed(1)} ms while tasks woken by receive processing waited to run there: the requests they serve waited with them.`,
      `Keep the service and ${culprit} on different CPUs (taskset, cpusets, a Kubernetes CPU manager policy), or give the service the higher priority (nice, chrt).`,
    ];
  if (task)
    return [
      `${culprit} held CPU ${cpu} for up to ${maxMs.toFixed(1)} ms while NET_RX waited there for ksoftirqd (or a NAPI thread): once a softirq run goes over its budget the kernel hands softirqs to ksoftirqd, which then waits behind this task.`,
      `If it is a real-time (SCHED_FIFO/RR) task, keep it off CPU ${cpu} or let it sleep (chrt -p, taskset); move the NIC queue's interrupt (/proc/irq/N/smp_affinity) and RPS away from CPU ${cpu}; or run threaded NAPI (echo 1 > /sys/class/net/DEV/threaded) with a priority above the task's.`,
    ];
  if (c.kind === 'softirq')
    return [
      `${culprit} ran up to ${maxMs.toFixed(1)} ms at a time on CPU ${cpu}; record with a lower --stall-ms to see which timer callbacks or packets it was busy with.`,
    ];
  return [
    ctx.heldUp === 'wakeups'
      ? `${culprit} ran up to ${maxMs.toFixed(1)} ms in softirq context on CPU ${cpu}; every task on that CPU is frozen meanwhile, whatever CPU processes its packets. Find what arms it (its module or subsystem), and keep latency-sensitive services off CPU ${cpu} meanwhile.`
      : `${culprit} ran up to ${maxMs.toFixed(1)} ms in softirq context on CPU ${cpu}; packets processed on that CPU wait for it. Find what arms it (its module or subsystem), and keep RPS from steering packets to CPU ${cpu} meanwhile.`,
  ];
}

/** "CPU 1" or "CPUs 0,1". */
export const cpusText = (cpus: number[]) => (cpus.length === 1 ? `CPU ${cpus[0]}` : `CPUs ${cpus.join(',')}`);

/** Advice about host pauses on `cpus`, the longest `maxMs`. */
export function pauseAdvice(cpus: number[], maxMs: number): string[] {
  return [
    `${cpusText(cpus)} took no timer interrupt for up to ${maxMs.toFixed(1)} ms at a time (a hard hrtimer fired that late), so nothing in the kernel ran there, packets included.`,
    'In a VM: the host did not run the vCPU (CPU overcommit, a CPU quota on the VM, a noisy neighbour); steal in /proc/stat often misses it. Ask for dedicated or pinned vCPUs, or move the workload to an instance type without overcommit.',
    'On bare metal: something held interrupts off that long (a driver, SMIs, a long spin_lock_irqsave); the ftrace irqsoff tracer names the code path.',
  ];
}
