/* jitterscope event ABI: the one definition of what crosses the ring buffer.
 *
 * Included by every BPF program in bpf/ (after vmlinux.h) and by the addon in native/.
 * The TypeScript side (src/kernel/abi.ts, src/stream/decode.ts) is checked against the offsetof table the
 * addon exports, so a change here that is not mirrored there fails the tests.
 */
#ifndef JITTERSCOPE_ABI_H
#define JITTERSCOPE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define JS_ABI_VERSION 7
#define JS_MAX_CPUS 1024
#define JS_CPU_MASK_WORDS (JS_MAX_CPUS / 64)

enum js_event_kind {
	JS_EV_SOFTIRQ = 1,  /* one softirq handler run: key = vector */
	JS_EV_TIMER = 2,    /* one timer_list callback run: key = callback address */
	JS_EV_HRTIMER = 3,  /* one hrtimer callback run: key = callback address */
	JS_EV_PACKET = 4,   /* one received packet (slow, or ICMP echo): key = ifindex */
	JS_EV_FUNC = 5,     /* one run of a traced kernel function: key = enum js_func */
	JS_EV_PAUSE = 6,    /* a hard hrtimer fired late: from start (its expiry) for duration the
	                     * CPU took no timer interrupt (the host did not run this vCPU, or
	                     * interrupts were off): key = the late timer's callback address */
	JS_EV_TASK = 7,     /* a task held the CPU while NET_RX was pending on it (raised, not yet
	                     * run), or a task woken by receive processing waited for it: from
	                     * start for duration, until it switched out; key = pid */
	JS_EV_WAKEUP = 8,   /* a task woken inside a NET_RX run (softirq, ksoftirqd or a NAPI thread):
	                     * a slow wake-up, from sched_waking (start) for duration until it ran on
	                     * cpu; or (JS_F_STOLEN) a stolen run, from its switch-in for duration
	                     * (capped) while softirqs took wake.stolen_ns of it; or (JS_F_READY)
	                     * a task already awake whose data became ready: from the data-ready
	                     * (start) for duration until it ran on cpu; key = pid */
	JS_EV_WAKE_FLOW = 9, /* the socket a WAKEUP was for, streamed just before it (same key,
	                      * start_ns, cpu and JS_F_STOLEN): its data became ready in that NET_RX
	                      * run. pkt holds it: saddr/sport the peer (zero: not connected, a
	                      * listener or an unconnected UDP socket), daddr/dport the socket's own,
	                      * proto; JS_F_IPV6 as for packets */
};

/* Functions traced by fentry/fexit or kprobe/kretprobe. */
enum js_func {
	JS_FN_ESTIMATION_TIMER = 1, /* ip_vs estimation_timer */
	JS_FN_NET_RX_ACTION = 2,
};

enum js_event_flags {
	JS_F_WAIT_UNKNOWN = 1,  /* softirq: the raise was not seen; packet: the arrival was not seen */
	JS_F_IPV6 = 2,          /* packet: addresses are IPv6 (else IPv4 in their first 4 bytes) */
	JS_F_SLOW = 4,          /* packet: waited at least the slow-packet threshold */
	JS_F_NAPI = 8,          /* packet: first seen in a NAPI poll; its wait starts at the NET_RX
	                         * raise that scheduled the poll (it sat in the NIC's ring) */
	JS_F_WAIT_BOUND = 16,   /* packet: not the poll's first packet, so that wait is an upper
	                         * bound (it may have reached the ring after the raise) */
	JS_F_DEFERRED = 32,     /* softirq: NET_RX ran in ksoftirqd, not at an interrupt's exit */
	JS_F_LATE_RUN = 64,     /* packet (serve): processed in a NET_RX run that started late, timed
	                         * from that run's raise (an upper bound); no arrival hook ran */
	JS_F_THREADED = 128,    /* softirq NET_RX: the run of a NAPI thread (threaded=1), from its
	                         * switch-in; wait_ns is wakeup (or preemption) -> switch-in;
	                         * streamed only when late. packet: first seen in such a run, timed
	                         * from that thread's wakeup */
	JS_F_STOLEN = 256,      /* wakeup: a stolen run (softirqs took at least the threshold of the
	                         * run that followed a network wake-up), not a slow wake-up */
	JS_F_READY = 512,       /* wakeup (and its WAKE_FLOW): no wake-up; its data became ready in a
	                         * NET_RX run on waker_cpu while the task was already awake (runnable,
	                         * not running), and waited from then (start) until it ran */
};

/* A packet's flow and headers (kinds PACKET and WAKE_FLOW). */
struct js_pkt {
	__u8 saddr[16];    /* network byte order; IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;       /* host byte order; ICMP: echo id */
	__u16 dport;       /* host byte order; ICMP: echo sequence */
	__u16 arrival_cpu; /* CPU where the packet arrived (== cpu when unseen) */
	__u8 proto;        /* IPPROTO_TCP, _UDP, _ICMP, _ICMPV6, or another */
	__u8 type;         /* ICMP type; TCP flags */
	__u8 code;         /* ICMP code */
	__u8 pad[7];
};

/* Every record has the same size, so a batch is a flat array of them. */
struct js_event {
	__u64 start_ns;    /* CLOCK_MONOTONIC: handler entry, or packet arrival for ICMP */
	__u64 duration_ns; /* handler run time; for ICMP the wait from arrival to processing */
	__u64 key;         /* see enum js_event_kind */
	__u32 cpu;         /* CPU that ran the handler / processed the packet */
	__u16 kind;        /* enum js_event_kind */
	__u16 flags;       /* enum js_event_flags */
	union {
		struct {
			__u64 wait_ns;     /* raise -> entry on this CPU */
			__u32 thread_pid;  /* JS_F_THREADED: the NAPI thread */
			__u32 reserved;
		} softirq;
		struct js_pkt pkt;
		struct {
			char comm[16];     /* the task that held the CPU */
			__u32 pid;         /* its thread id */
			__u32 tgid;        /* its process id */
		} task;
		struct {
			char comm[16];     /* the task woken by receive processing */
			__u32 pid;         /* its thread id */
			__u32 tgid;        /* its process id */
			union {
				__u64 stolen_ns; /* JS_F_STOLEN: softirq time on its CPU while it ran */
				__u64 queued_ns; /* JS_F_READY: how long it had been runnable when it ran
				                  * (its run-queue wait, as the scheduler's sched_info
				                  * keeps it; runqslower's figure); 0: not known */
			};
			__u32 waker_cpu;   /* the CPU whose NET_RX run woke it */
			__u32 pad;
		} wake;
	};
};

#define JS_EVENT_SIZE 80

/* An in-kernel histogram (per CPU): log2 buckets with 4 linear sub-buckets,
 * the same bounds src/stream/kernel-histogram.ts reads. Every packet's wait
 * (map packet_wait), and in serve mode the short softirq and net_rx_action
 * runs that are not streamed (map run_hists, indexed by enum js_kernel_hist). */
#define JS_HIST_SUB_BITS 2
#define JS_HIST_BUCKETS 160
struct js_hist {
	__u64 count;
	__u64 sum_ns;
	__u64 max_ns;
	__u64 unknown; /* values not known: a packet's arrival or a softirq's raise unseen */
	__u64 buckets[JS_HIST_BUCKETS];
};

/* Softirq vectors as the kernel numbers them (include/linux/interrupt.h). */
#define JS_NR_SOFTIRQS 10
#define JS_NET_RX_SOFTIRQ 3

/* Where each run histogram sits in run_hists. */
enum js_kernel_hist {
	JS_KH_SOFTIRQ_RUN = 0,                /* + vector: handler run time */
	JS_KH_SOFTIRQ_WAIT = JS_NR_SOFTIRQS,  /* + vector: raise -> entry */
	JS_KH_NET_RX_ACTION = 2 * JS_NR_SOFTIRQS, /* net_rx_action by fentry/kprobe */
	JS_KH_WAKEUP_WAIT,                    /* every network wake-up: sched_waking -> switch-in */
	JS_KH_COUNT,
};

#endif
