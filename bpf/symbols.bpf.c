// SPDX-License-Identifier: GPL-2.0
/* Kernel addresses to symbol names, by the kernel itself: bpf_snprintf's %pS
 * looks each one up in kallsyms' sorted table, instead of the process reading
 * all of /proc/kallsyms (5 MB of text the kernel makes on every read, ~40 ms)
 * to name a handful of timer callbacks. Loaded with the addresses as globals,
 * run once with BPF_PROG_TEST_RUN, and the names read back from .bss. Needs
 * syscall programs (5.14+) and bpf_snprintf in them; host/kallsyms.ts reads the
 * file where this cannot load. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define JS_NAME_BATCH 64
#define JS_NAME_LEN 128

const volatile __u64 name_addrs[JS_NAME_BATCH];
const volatile __u32 name_count = 0;

/* "name+0xoff/0xsize [module]", or the bare address where no symbol covers it */
char names[JS_NAME_BATCH][JS_NAME_LEN];

SEC("syscall")
int name_symbols(void *ctx)
{
	static const char fmt[] = "%pS";

	for (__u32 i = 0; i < JS_NAME_BATCH; i++) {
		__u64 addr;

		if (i >= name_count)
			break;
		addr = name_addrs[i];
		bpf_snprintf(names[i], JS_NAME_LEN, fmt, &addr, sizeof(addr));
	}
	return 0;
}
