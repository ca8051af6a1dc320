/* The tracer's load-time settings, per-CPU state and maps, and the few helpers
 * every hook uses (tracer.bpf.c includes it first). */
/* Bytes one event takes in the ring: the record and its 8-byte header. */
#define JS_RECORD_BYTES (JS_EVENT_SIZE + 8)

/* Load-time settings, written through .rodata by user space. */
const volatile bool filter_cpus = false;
const volatile __u64 cpu_mask[JS_CPU_MASK_WORDS] = {};
/* Packets that waited at least this long are streamed with their flow. */
const volatile __u64 slow_packet_ns = 1000000;
/* Stream every ICMP and ICMPv6 packet too (ping matches replies by them). */
const volatile bool stream_icmp = true;
/* ICMP packets are reported from icmp_rcv (fentry/kprobe) instead of the
 * netif_receive_skb tracepoint. */
const volatile bool icmp_from_icmp_rcv = false;
/* 0: libbpf's adaptive wakeup on every submit. Otherwise wake the reader only
 * once this much data waits; user space also drains on a timer. Saves an
 * irq_work and a process wakeup per event. */
const volatile __u64 wakeup_bytes = 0;
/* Serve mode: softirq and net_rx_action runs shorter than stream_min_ns (and,
 * for softirqs, whose wait is shorter too) are counted in run_hists instead of
 * streamed; the longer ones still stream, so user space sees every stall. */
const volatile bool kernel_hists = false;
const volatile __u64 stream_min_ns = 0;
/* A hard CLOCK_MONOTONIC hrtimer that fires at least this late is a pause. */
const volatile __u64 pause_min_ns = 1000000;
/* A task that held a CPU this long while NET_RX waited there is streamed. */
const volatile __u64 task_min_ns = 300000;
/* Some devices poll in NAPI threads (threaded=1): time those threads' waits
 * from their wakeup (sched_wakeup is attached only then). */
const volatile bool napi_threads = false;
/* Tasks woken inside a NET_RX run: a wake-up that waited this long to run, or
 * a run that lost this much to softirqs (counted for at most stolen_cap_ns
 * after its switch-in), is streamed. */
const volatile __u64 wake_min_ns = 1000000;
const volatile __u64 stolen_cap_ns = 100000000;

#define JS_PF_KTHREAD 0x00200000 /* include/linux/sched.h */

struct hrtimer_slot {
	__u64 timer;
	__u64 start_ns;
	__u64 fn;
};

/* Per-CPU state: softirqs do not nest per vector, timer_list callbacks do not
 * nest, and a hard hrtimer can interrupt a soft one: two hrtimer slots. */
struct cpu_state {
	/* what every context switch reads comes first, so it reads one cache
	 * line (with raise_ns[NET_RX], bytes 40-47): the watched task, the NAPI
	 * thread and the count of network wake-ups that may run on this CPU (their
	 * waker's CPU and the one they last ran on; written by the waker's CPU,
	 * 5.19+, wake_pending below before) */
	__u32 watch_pid;
	__u32 thread_pid;
	__s64 wake_count;
	__u64 raise_ns[JS_NR_SOFTIRQS];
	__u64 entry_ns[JS_NR_SOFTIRQS];
	__u64 wait_ns[JS_NR_SOFTIRQS];
	__u64 timer;
	__u64 timer_start_ns;
	__u64 timer_fn;
	struct hrtimer_slot hrt[2];
	__u64 net_rx_action_ns;
	__u64 pause_end_ns; /* end of the last pause streamed */
	__u64 task_since_ns; /* while NET_RX is pending: when the current task's stretch began */
	__u64 late_raise_ns; /* the raise of the current NET_RX run, if it started late; else 0 */
	__u32 napi_packets;  /* packets first seen in NAPI polls of the current NET_RX run */
	bool net_rx_deferred; /* the current NET_RX run is ksoftirqd's */
	/* the NAPI thread running on this CPU (thread_pid, above), if any, and when it was woken */
	__u64 thread_entry_ns;
	__u64 thread_wake_ns;
	__u64 thread_late_ns; /* its wake, if this run started late; else 0 */
	/* a task woken by receive processing, running here since watch_since_ns: softirq time
	 * taken from it meanwhile (watch_pid, above) */
	__u64 watch_since_ns;
	__u64 watch_stolen_ns;
	struct js_pkt watch_flow; /* its socket (proto 0: not known) */
	__u16 watch_flow_flags;
	/* the socket whose data became ready last in this CPU's current NET_RX run (0: none yet) */
	__u64 ready_sk;
	/* with wake_count: when it last rose from none, and its newest add */
	__u64 wake_since;
	__u64 wake_last;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} state SEC(".maps");

/* Tasks woken inside a NET_RX run and not yet running: pid -> when, and what
 * says it has not run since (its context-switch count). LRU: a task that
 * runs where no look is made is let go, not kept. */
struct net_wake {
	__u64 ts;
	__u64 switches;
	__u32 waker_cpu;
	__u32 guess_cpu; /* where it last ran: most wake-ups run there again */
	struct js_pkt flow; /* the socket made ready just before it was woken (proto 0: none seen) */
	__u16 flow_flags;   /* JS_F_IPV6 */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct net_wake);
} net_wakes SEC(".maps");

/* The task a socket's data last woke inside a NET_RX run (its address and pid,
 * to tell a reused task_struct): where a data-ready that wakes nobody looks
 * for a task already awake. LRU: sockets that go quiet are let go. */
struct sock_task {
	__u64 task;
	__u32 pid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sock_task);
} sock_tasks SEC(".maps");

/* Before 5.19 (no bpf_map_lookup_percpu_elem): the pending wake-ups by CPU
 * in an array, a cache line each, so a waker on one CPU does not evict the
 * line that every switch on the other reads. */
struct wake_count {
	__s64 count;
	__u64 since;
	__u64 last;
	__u64 pad[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JS_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct wake_count);
} wake_pending SEC(".maps");

/* Where and when a packet was first seen, by skb address: a direct-mapped
 * table, not a hash map. An insert is one array slot write (a hash map
 * insert costs ~10x more); a collision overwrites an older packet, whose wait
 * then reads as unknown, which is counted. A packet handed on (RPS enqueue
 * after GRO) keeps its first arrival. */
struct arrival {
	__u64 skb;
	__u64 ts_ns;   /* when its wait began: first sighting, or its NAPI poll's NET_RX raise */
	__u64 seen_ns; /* first sighting, for telling a hand-off from a reused skb */
	__u32 cpu;
	__u16 flags;   /* JS_F_NAPI, JS_F_WAIT_BOUND */
	__u16 pad;
};

#define ARRIVAL_SLOTS 8192
#define HANDOFF_NS 1000000ULL

/* NAPI threads woken (or preempted) and not yet running: pid -> since when, and for which CPU. */
struct napi_wake {
	__u64 ts;
	__u32 cpu;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct napi_wake);
} napi_wakes SEC(".maps");

/* By CPU: since when a NAPI thread woken for it has waited (0: none). A
 * wakeup can run on another CPU than its target, so not a per-CPU map. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JS_MAX_CPUS);
	__type(key, __u32);
	__type(value, __u64);
} napi_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ARRIVAL_SLOTS);
	__type(key, __u32);
	__type(value, struct arrival);
} arrivals SEC(".maps");

/* Every packet's wait, per CPU that processed it (see struct js_hist). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct js_hist);
} packet_wait SEC(".maps");

/* Serve mode's run histograms per CPU, by enum js_kernel_hist. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JS_KH_COUNT);
	__type(key, __u32);
	__type(value, struct js_hist);
} run_hists SEC(".maps");

static __always_inline bool cpu_wanted(__u32 cpu)
{
	if (!filter_cpus)
		return true;
	if (cpu >= JS_MAX_CPUS)
		return false;
	return (cpu_mask[cpu / 64] >> (cpu % 64)) & 1;
}

static __always_inline struct cpu_state *my_state(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&state, &zero);
}

static __always_inline void submit(struct js_event *e)
{
	__u64 flags = 0, avail;
	if (wakeup_bytes) {
		/* Wake only as the waiting data crosses each multiple of
		 * wakeup_bytes: a reader that lags must not turn every later event
		 * into a forced wakeup (an IPI, microseconds in a VM). The reader's
		 * drain timer picks up anything a race lets slip past. */
		avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		flags = avail >= wakeup_bytes && avail % wakeup_bytes < JS_RECORD_BYTES ? BPF_RB_FORCE_WAKEUP
											   : BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}


static __always_inline void count_run(__u32 idx, __u64 v, bool known)
{
	struct js_hist *h = bpf_map_lookup_elem(&run_hists, &idx);
	if (h)
		hist_add(h, v, known);
}

