/*
 * usdt_notes.c - SystemTap SDT notes of an ELF file; see usdt_notes.h.
 *
 * Addresses become file offsets through the PT_LOAD segment that holds
 * them (the kernel's uprobes, and their reference counters, are placed by
 * file offset). A note whose pc lies in no loaded segment is skipped.
 */
#include "usdt_notes.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NT_STAPSDT 3

static uint64_t get_addr(const unsigned char *p, int addr_size)
{
	uint32_t v32;
	uint64_t v64;

	if (addr_size == 4) {
		memcpy(&v32, p, 4);
		return v32;
	}
	memcpy(&v64, p, 8);
	return v64;
}

/* Copy the NUL-terminated string at *pos, cut to len; advance past it. */
static int take_str(const char *d, size_t n, size_t *pos, char *out,
		    size_t len)
{
	const char *s = d + *pos;
	const char *end = memchr(s, '\0', n - *pos);

	if (!end)
		return -EINVAL;
	snprintf(out, len, "%.*s", (int)(end - s), s);
	*pos += (size_t)(end - s) + 1;
	return 0;
}

int usdt_note_decode(const void *desc, size_t len, int addr_size,
		     uint64_t base_addr, struct usdt_note *out)
{
	const char *d = desc;
	uint64_t note_base;
	size_t pos = 3 * (size_t)addr_size;

	if ((addr_size != 4 && addr_size != 8) || len < pos)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->pc = get_addr(desc, addr_size);
	note_base = get_addr((const unsigned char *)desc + addr_size,
			     addr_size);
	out->semaphore = get_addr((const unsigned char *)desc + 2 * addr_size,
				  addr_size);
	if (take_str(d, len, &pos, out->provider, sizeof(out->provider)) ||
	    take_str(d, len, &pos, out->name, sizeof(out->name)))
		return -EINVAL;
	/* Old (v2) notes may end without argument specs. */
	if (pos < len && take_str(d, len, &pos, out->args, sizeof(out->args)))
		return -EINVAL;
	if (base_addr && note_base) {
		out->pc += base_addr - note_base;
		if (out->semaphore)
			out->semaphore += base_addr - note_base;
	}
	return 0;
}

/* File offset of a virtual address, through the PT_LOAD that maps it. */
static int file_offset(Elf *e, uint64_t addr, uint64_t *off)
{
	GElf_Phdr ph;
	size_t i, n;

	if (elf_getphdrnum(e, &n))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (addr >= ph.p_vaddr && addr < ph.p_vaddr + ph.p_filesz) {
			*off = addr - ph.p_vaddr + ph.p_offset;
			return 0;
		}
	}
	return -ENOENT;
}

/* sh_addr of .stapsdt.base, 0 if absent; the notes' section. */
static void find_sections(Elf *e, uint64_t *base, Elf_Scn **notes)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	size_t shstrndx;
	const char *name;

	*base = 0;
	*notes = NULL;
	if (elf_getshdrstrndx(e, &shstrndx))
		return;
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		if (!gelf_getshdr(scn, &sh))
			continue;
		name = elf_strptr(e, shstrndx, sh.sh_name);
		if (!name)
			continue;
		if (!strcmp(name, ".stapsdt.base"))
			*base = sh.sh_addr;
		else if (sh.sh_type == SHT_NOTE &&
			 !strcmp(name, ".note.stapsdt"))
			*notes = scn;
	}
}

static int scan(Elf *e, const char *provider, const char *name,
		struct usdt_note *out, int max)
{
	GElf_Ehdr eh;
	GElf_Nhdr nh;
	Elf_Scn *scn;
	Elf_Data *data;
	struct usdt_note n;
	uint64_t base;
	size_t off = 0, name_off, desc_off, next;
	int addr_size, found = 0;

	if (elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh))
		return -ENOEXEC;
	addr_size = eh.e_ident[EI_CLASS] == ELFCLASS32 ? 4 : 8;
	find_sections(e, &base, &scn);
	if (!scn)
		return 0;
	data = elf_getdata(scn, NULL);
	if (!data || !data->d_buf)
		return 0;
	while ((next = gelf_getnote(data, off, &nh, &name_off, &desc_off)) >
	       0) {
		off = next;
		if (nh.n_type != NT_STAPSDT || nh.n_namesz != 8 ||
		    memcmp((char *)data->d_buf + name_off, "stapsdt", 8))
			continue;
		if (usdt_note_decode((char *)data->d_buf + desc_off,
				     nh.n_descsz, addr_size, base, &n))
			continue;
		if (strcmp(n.provider, provider) || strcmp(n.name, name))
			continue;
		if (file_offset(e, n.pc, &n.pc_offset))
			continue;
		if (n.semaphore && file_offset(e, n.semaphore, &n.sema_offset))
			continue;
		if (found < max)
			out[found] = n;
		found++;
	}
	return found;
}

int usdt_notes_find(const char *path, const char *provider, const char *name,
		    struct usdt_note *out, int max)
{
	Elf *e;
	int fd, ret;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e) {
		close(fd);
		return -ENOEXEC;
	}
	ret = scan(e, provider, name, out, max);
	elf_end(e);
	close(fd);
	return ret;
}
