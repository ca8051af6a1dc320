// SPDX-License-Identifier: GPL-2.0
/* Trial programs: `doctor` and the attach ladder load (and attach) one of
 * these to learn whether this kernel really offers fentry, kprobes, tp_btf and
 * raw_tp, instead of guessing from config files. They do nothing. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("fentry/net_rx_action") int BPF_PROG(try_fentry) { return 0; }
SEC("kprobe/net_rx_action") int BPF_KPROBE(try_kprobe) { return 0; }
SEC("tp_btf/softirq_entry") int BPF_PROG(try_tp_btf, unsigned int vec) { return 0; }
SEC("raw_tp/softirq_entry") int BPF_PROG(try_raw_tp, unsigned int vec) { return 0; }
