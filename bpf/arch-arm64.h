/* arm64's register layout, for BPF objects built for the arm64 target on an
 * x86 machine (scripts/build-arm64.sh appends this to the host's vmlinux.h).
 * With -D__TARGET_ARCH_arm64, libbpf's bpf_tracing.h reads kprobe arguments
 * as ((struct user_pt_regs *)ctx)->regs[N] (x0..x7): x86's BTF has no such
 * type. It is declared here as arm64's uapi defines it
 * (arch/arm64/include/uapi/asm/ptrace.h), relocatable like every vmlinux.h
 * type, so the field offsets come from the arm64 kernel's own BTF at load. */
#ifndef JITTERSCOPE_ARCH_ARM64_H
#define JITTERSCOPE_ARCH_ARM64_H

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
#endif

struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif
