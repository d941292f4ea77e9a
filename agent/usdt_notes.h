/*
 * usdt_notes.h - the SystemTap SDT probe notes of an ELF file, read with
 * libelf.
 *
 * libbpf attaches USDT probes only when it can parse every argument spec
 * of the probe (libbpf 1.1 refuses RIP-relative operands such as
 * PostgreSQL's checkpoint__done). A probe whose arguments are not needed
 * can instead be attached as a plain uprobe at its address, with the
 * kernel's uprobe reference counter setting its semaphore; this file finds
 * both file offsets from the notes.
 *
 * Note layout (type 3, owner "stapsdt", in section .note.stapsdt): three
 * addresses of the file's address size (probe pc, link-time address of
 * the .stapsdt.base section, semaphore or 0), then the provider, probe
 * name and argument specs as NUL-terminated strings. Prelink moves
 * sections without rewriting the notes: pc and semaphore are shifted by
 * the difference between .stapsdt.base's real address and the note's.
 */
#ifndef KS_USDT_NOTES_H
#define KS_USDT_NOTES_H

#include <stddef.h>
#include <stdint.h>

#define USDT_NAME_LEN 64
#define USDT_ARGS_LEN 256

struct usdt_note {
	char provider[USDT_NAME_LEN];
	char name[USDT_NAME_LEN];
	char args[USDT_ARGS_LEN]; /* e.g. "-4@%ebx -8@8(%rbp)"; "" none */
	uint64_t pc; /* virtual address, prelink-adjusted */
	uint64_t semaphore; /* virtual address; 0: the probe has none */
	uint64_t pc_offset; /* file offset of pc: where a uprobe goes */
	uint64_t sema_offset; /* file offset of the semaphore (the uprobe's
			       * ref_ctr_offset); 0 when none */
};

/*
 * Decode one note's descriptor. base_addr is the sh_addr of the file's
 * .stapsdt.base section, or 0 when it has none (no adjustment). Fills
 * everything but the file offsets. 0 or -EINVAL (short or unterminated).
 */
int usdt_note_decode(const void *desc, size_t len, int addr_size,
		     uint64_t base_addr, struct usdt_note *out);

/*
 * The notes of provider:name in the ELF file at path (a probe may have
 * several sites). Returns how many were found (at most max are stored),
 * 0 when the file has no such probe, or -errno (unreadable, not ELF).
 */
int usdt_notes_find(const char *path, const char *provider, const char *name,
		    struct usdt_note *out, int max);

#endif
