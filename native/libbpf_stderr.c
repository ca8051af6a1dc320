/* Debian's libbpf.a is compiled as PIE, not PIC: its one reference to libc's
 * `stderr` is a PC-relative relocation that a shared object cannot carry. The
 * build links a copy of libbpf.a whose reference is renamed (objcopy
 * --redefine-sym) to this hidden variable, which points at the real stderr.
 * libbpf only uses it in its default logger, which the addon replaces. */
#include <stdio.h>

FILE *jitterscope_libbpf_stderr;

__attribute__((constructor)) static void jitterscope_set_libbpf_stderr(void)
{
	jitterscope_libbpf_stderr = stderr;
}
