/*
 * test_usdt_notes.c - SDT notes: the descriptor decoder (prelink rule,
 * 32/64-bit, malformed notes), then a real program built here whose probe
 * notes are written in assembly the way <sys/sdt.h> writes them: the file
 * offsets found must point at the probe's nop and at the semaphore's
 * initial value. Debian's postgres binary, when installed, is read too.
 */
#include "check.h"
#include "usdt_notes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t put_desc(unsigned char *buf, int addr_size, uint64_t pc,
		       uint64_t base, uint64_t sema, const char *strs,
		       size_t strs_len)
{
	uint64_t v[3] = { pc, base, sema };
	size_t pos = 0;
	int i;

	for (i = 0; i < 3; i++) {
		if (addr_size == 4) {
			uint32_t w = (uint32_t)v[i];

			memcpy(buf + pos, &w, 4);
		} else {
			memcpy(buf + pos, &v[i], 8);
		}
		pos += (size_t)addr_size;
	}
	memcpy(buf + pos, strs, strs_len);
	return pos + strs_len;
}

static void test_decode(void)
{
	static const char strs[] = "postgresql\0checkpoint__done\0-4@%eax";
	unsigned char buf[256];
	struct usdt_note n;
	size_t len;

	len = put_desc(buf, 8, 0x1000, 0x2000, 0x3000, strs, sizeof(strs));
	CHECK_INT(usdt_note_decode(buf, len, 8, 0x2000, &n), 0);
	CHECK_STR(n.provider, "postgresql");
	CHECK_STR(n.name, "checkpoint__done");
	CHECK_STR(n.args, "-4@%eax");
	CHECK_INT(n.pc, 0x1000);
	CHECK_INT(n.semaphore, 0x3000);

	/* Prelinked: .stapsdt.base moved by 0x100, pc and semaphore too. */
	CHECK_INT(usdt_note_decode(buf, len, 8, 0x2100, &n), 0);
	CHECK_INT(n.pc, 0x1100);
	CHECK_INT(n.semaphore, 0x3100);
	/* ... and moved down. */
	CHECK_INT(usdt_note_decode(buf, len, 8, 0x1f00, &n), 0);
	CHECK_INT(n.pc, 0xf00);
	CHECK_INT(n.semaphore, 0x2f00);
	/* No .stapsdt.base section: addresses as written. */
	CHECK_INT(usdt_note_decode(buf, len, 8, 0, &n), 0);
	CHECK_INT(n.pc, 0x1000);

	/* No semaphore: stays 0 whatever the shift. */
	len = put_desc(buf, 8, 0x1000, 0x2000, 0, strs, sizeof(strs));
	CHECK_INT(usdt_note_decode(buf, len, 8, 0x2100, &n), 0);
	CHECK_INT(n.semaphore, 0);
	CHECK_INT(n.pc, 0x1100);

	/* 32-bit file: 4-byte addresses. */
	len = put_desc(buf, 4, 0x8048000, 0x8049000, 0x804a000, strs,
		       sizeof(strs));
	CHECK_INT(usdt_note_decode(buf, len, 4, 0x8049000, &n), 0);
	CHECK_INT(n.pc, 0x8048000);
	CHECK_INT(n.semaphore, 0x804a000);
	CHECK_STR(n.name, "checkpoint__done");

	/* A note without argument specs (v2 style) still decodes. */
	len = put_desc(buf, 8, 0x10, 0, 0, "p\0n", 4);
	CHECK_INT(usdt_note_decode(buf, len, 8, 0, &n), 0);
	CHECK_STR(n.name, "n");
	CHECK_STR(n.args, "");

	/* Malformed: too short, unterminated name, bad address size. */
	CHECK_INT(usdt_note_decode(buf, 20, 8, 0, &n), -EINVAL);
	len = put_desc(buf, 8, 0x10, 0, 0, "prov\0name", 9);
	CHECK_INT(usdt_note_decode(buf, len, 8, 0, &n), -EINVAL);
	CHECK_INT(usdt_note_decode(buf, len, 2, 0, &n), -EINVAL);
}

/*
 * Two probes: ksprov:one (a semaphore holding 0x4b53, one site, argument
 * -4@%eax) and ksprov:two (no semaphore, no arguments, two sites). Each
 * site is a nop followed by movl $0x4b534b53, %eax.
 */
static const char prog_src[] =
	"unsigned short ks_one_semaphore\n"
	"    __attribute__((section(\".probes\"), used)) = 0x4b53;\n"
	"#define NOTE(prov, name, sema, args)                              \\\n"
	"    \"990: nop\\n movl $0x4b534b53, %%eax\\n\"                     \\\n"
	"    \".pushsection .note.stapsdt,\\\"\\\",\\\"note\\\"\\n\"         \\\n"
	"    \".balign 4\\n .4byte 992f-991f, 994f-993f, 3\\n\"             \\\n"
	"    \"991: .asciz \\\"stapsdt\\\"\\n 992: .balign 4\\n\"           \\\n"
	"    \"993: .8byte 990b\\n .8byte _.stapsdt.base\\n\"               \\\n"
	"    \".8byte \" sema \"\\n\"                                        \\\n"
	"    \".asciz \\\"\" prov \"\\\"\\n .asciz \\\"\" name \"\\\"\\n\"  \\\n"
	"    \".asciz \\\"\" args \"\\\"\\n 994: .balign 4\\n .popsection\\n\"\n"
	"__asm__(\".pushsection .stapsdt.base,\\\"aG\\\",\\\"progbits\\\","
	".stapsdt.base,comdat\\n .weak _.stapsdt.base\\n"
	" .hidden _.stapsdt.base\\n _.stapsdt.base: .space 1\\n"
	" .size _.stapsdt.base, 1\\n .popsection\\n\");\n"
	"int main(int argc, char **argv)\n"
	"{\n"
	"    __asm__ volatile(NOTE(\"ksprov\", \"one\", \"ks_one_semaphore\",\n"
	"                          \"-4@%%eax\") ::: \"eax\");\n"
	"    if (argc > 5)\n"
	"        __asm__ volatile(NOTE(\"ksprov\", \"two\", \"0\", \"\") ::: \"eax\");\n"
	"    __asm__ volatile(NOTE(\"ksprov\", \"two\", \"0\", \"\") ::: \"eax\");\n"
	"    return 0;\n"
	"}\n";

static int read_at(const char *path, uint64_t off, unsigned char *buf,
		   size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n = 0;

	if (!f)
		return -1;
	if (!fseek(f, (long)off, SEEK_SET))
		n = fread(buf, 1, len, f);
	fclose(f);
	return n == len ? 0 : -1;
}

static void check_site(const char *path, const struct usdt_note *n)
{
	static const unsigned char site[] = { 0x90, 0xb8, 0x53, 0x4b, 0x53,
					      0x4b };
	unsigned char got[sizeof(site)];

	CHECK(read_at(path, n->pc_offset, got, sizeof(got)) == 0 &&
	      !memcmp(got, site, sizeof(site)));
}

static void test_built(const char *kind, const char *flags)
{
	char dir[] = "/tmp/ks-usdt-XXXXXX", src[64], bin[64], cmd[512];
	struct usdt_note n[4];
	unsigned char sema[2];
	FILE *f;

	if (!mkdtemp(dir))
		return;
	snprintf(src, sizeof(src), "%s/p.c", dir);
	snprintf(bin, sizeof(bin), "%s/p", dir);
	f = fopen(src, "w");
	if (!f)
		return;
	fputs(prog_src, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cc -O1 %s -o %s %s", flags, bin, src);
	CHECK_INT(system(cmd), 0);

	CHECK_INT(usdt_notes_find(bin, "ksprov", "one", n, 4), 1);
	CHECK_STR(n[0].args, "-4@%eax");
	CHECK(n[0].semaphore != 0 && n[0].sema_offset != 0);
	check_site(bin, &n[0]);
	CHECK(read_at(bin, n[0].sema_offset, sema, 2) == 0 &&
	      sema[0] == 0x53 && sema[1] == 0x4b);

	CHECK_INT(usdt_notes_find(bin, "ksprov", "two", n, 4), 2);
	CHECK_INT(n[0].semaphore, 0);
	CHECK_INT(n[0].sema_offset, 0);
	CHECK_STR(n[1].args, "");
	CHECK(n[0].pc_offset != n[1].pc_offset);
	check_site(bin, &n[0]);
	check_site(bin, &n[1]);
	/* At most max stored, all counted. */
	CHECK_INT(usdt_notes_find(bin, "ksprov", "two", n, 1), 2);

	CHECK_INT(usdt_notes_find(bin, "ksprov", "three", n, 4), 0);
	CHECK_INT(usdt_notes_find(bin, "other", "one", n, 4), 0);
	CHECK_INT(usdt_notes_find(src, "ksprov", "one", n, 4), -ENOEXEC);
	printf("built %s: ok\n", kind);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* Debian's postgresql-15: checkpoint__done has RIP-relative arguments. */
static void test_postgres(void)
{
	const char *pg = "/usr/lib/postgresql/15/bin/postgres";
	struct usdt_note n;

	if (access(pg, R_OK)) {
		printf("no %s: skipped\n", pg);
		return;
	}
	CHECK_INT(usdt_notes_find(pg, "postgresql", "checkpoint__done", &n, 1),
		  1);
	CHECK(strstr(n.args, "(%rip)") != NULL);
	CHECK(n.semaphore != 0 && n.sema_offset != 0);
	CHECK_INT(usdt_notes_find(pg, "postgresql", "checkpoint__start", &n, 1),
		  1);
	CHECK_STR(n.args, "-4@%ebx");
}

int main(void)
{
	test_decode();
	if (system("cc --version >/dev/null 2>&1") == 0) {
		test_built("pie", "-pie -fPIE");
		test_built("no-pie", "-no-pie -fno-pie");
	} else {
		printf("no C compiler: built-program tests skipped\n");
	}
	CHECK_INT(usdt_notes_find("/nonexistent/x", "a", "b", NULL, 0),
		  -ENOENT);
	test_postgres();
	return check_summary();
}
