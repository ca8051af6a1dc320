/* Replacement for libelf's elf_error.o when libelf is linked statically into
 * the addon.
 *
 * Debian's libelf.a keeps its error code in a local-exec TLS variable, which
 * cannot be linked into a shared object (R_X86_64_TPOFF32). Defining the three
 * functions of that one archive member here keeps the linker from pulling it
 * in; the rest of libelf calls these instead. Messages are coarser than
 * libelf's, which only matters if an embedded BPF object is corrupt. */
#include <stdio.h>

static __thread int last_error;

void __libelf_seterrno(int value) { last_error = value; }

int elf_errno(void)
{
	int e = last_error;
	last_error = 0;
	return e;
}

const char *elf_errmsg(int error)
{
	static __thread char buf[48];
	int e = error;
	if (error == 0 || error == -1) {
		if (!last_error)
			return error == 0 ? NULL : "no error";
		e = last_error;
	}
	snprintf(buf, sizeof(buf), "libelf error %d", e);
	return buf;
}
