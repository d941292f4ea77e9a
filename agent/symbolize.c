/*
 * symbolize.c - user and kernel addresses to function names; see symbolize.h.
 *
 * User frames. A snapshot of a pid is its executable mappings from
 * /proc/PID/maps, sorted by start address. A mapping of a file points at a
 * parsed ELF file: its PT_LOAD segments and its function symbols. An address
 * becomes a file offset (addr - start + the mapping's offset), the file
 * offset becomes an ELF virtual address through the PT_LOAD segment that
 * holds it (the same for PIE and non-PIE executables and shared libraries,
 * whatever the load bias), and the symbol is the last one starting at or
 * below that address, if the address is inside it. Symbols come from
 * .symtab and .dynsym (stripped files have only the latter), functions and
 * untyped labels in code sections; a symbol of size 0 ends where the next
 * one starts or its section ends. Where several names share an address one
 * is kept: sized before unsized, global before weak before local, then the
 * one with fewer leading underscores, then the shorter (memcpy, not
 * __memcpy_chk's alias soup). An address past its symbol's end is
 * "[unknown]" in that module, never its neighbour's name.
 *
 * Files are parsed when a snapshot first sees them, because samples are
 * symbolized after the fact and the process - and with it /proc/PID/root -
 * may be gone by then. Parsed files live in a cache keyed by the device and
 * inode that /proc/PID/maps shows, so every process mapping libc (or every
 * replica of a service) shares one parse. A file is opened through
 * /proc/PID/root/<path>, which reaches into the process's mount namespace;
 * when the file there is not the mapped one (it was replaced, or is marked
 * "(deleted)") /proc/PID/map_files/<range> is tried, which opens the mapped
 * file itself but needs CAP_SYS_ADMIN. Only regular files are opened. A file
 * that opens but is not usable ELF is remembered as such for a while so a
 * thousand processes do not each parse it again; a file that does not open
 * is not, because the cause may be one exiting process. Each cached file keeps
 * only its sorted symbols (16 bytes each) and their names; libelf reads the
 * symbol and string sections with pread, so nothing stays mapped and no fd
 * stays open. The cache is an LRU bounded by file count and bytes; files a
 * snapshot points at are pinned by a reference count and evicted once
 * forgotten.
 *
 * JIT frames. Anonymous executable memory is JIT code. node
 * --perf-basic-prof (and other JITs) describe theirs in /tmp/perf-PID.map,
 * "START SIZE name" lines in hex, appended as code is compiled. The file is
 * read under the process's root with the pid as the process sees it in its
 * own namespace (NSpid). It is read when a snapshot finds anonymous
 * executable mappings, and again, from where the last read stopped, when a
 * lookup misses and the file has grown. A later line for the same address
 * wins (the JIT reused the memory), so entries are sorted by start and
 * write order and a lookup takes the newest entry that covers the address
 * among the few starting at or below it. An address in anonymous memory
 * that no line covers is "[jit]": a wrong name would be worse than none.
 *
 * Kernel frames. <proc_root>/kallsyms is read once: text symbols (t T w W)
 * become a sorted table. kallsyms has no sizes, so a symbol ends where the
 * next symbol of any kind starts; the module column ("\t[ext4]", "[bpf]")
 * names the module, the core kernel is "[kernel]". Without root the
 * addresses read as zero and every kernel frame is "[unknown]".
 *
 * The vDSO has no file; its image is the same in every process of one
 * kernel and ABI, so the agent's own copy is parsed and used when the
 * process's [vdso] mapping has the same size.
 *
 * Names that look like Itanium C++ mangling (_Z...) are demangled with
 * libstdc++'s __cxa_demangle at lookup time (node's V8 frames are C++), so
 * the cache holds the shorter mangled form and a name that does not
 * demangle is shown mangled, the same way every time.
 *
 * Bounds: snapshots (LRU of SYM_MAX_PIDS pids), mappings per pid, symbols
 * per file, cache files and bytes, perf-map entries and name bytes per pid,
 * line lengths. Everything is untrusted input: maps lines are parsed
 * strictly and a bad line is skipped, ELF files go through libelf's checks,
 * garbage perf-map lines are skipped.
 */
#include "symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define SYM_DEFAULT_MAX_FILES 512
#define SYM_DEFAULT_MAX_BYTES ((size_t)512 << 20)
#define SYM_MAX_PIDS 4096
#define SYM_PID_BUCKETS 1024
#define SYM_ELF_BUCKETS 1024
#define SYM_MAX_MAPPINGS 8192	    /* executable mappings per pid */
#define SYM_MAX_ELF_SYMS (4u << 20) /* symbols kept per file */
#define SYM_MAX_SECTIONS (1u << 16)
#define SYM_MAX_LOADS 64
#define SYM_LOOKBACK 8		      /* enclosing symbols tried */
#define SYM_FRESH_NS 1000000000ULL    /* snapshot reuse window */
#define SYM_RETRY_NS 30000000000ULL   /* unreadable file retry */
#define SYM_PM_MAX_ENTRIES (1u << 20) /* perf-map entries per pid */
#define SYM_PM_MAX_NAMES ((size_t)64 << 20)
#define SYM_PM_LINE_MAX 4096
#define SYM_PM_LOOKBACK 64
#define SYM_KSYM_MAX (4u << 20)
#define SYM_KSYM_LAST_SPAN 4096 /* last kallsyms symbol's assumed size */
#define SYM_DEMANGLE_MAX 4096	/* longer names are not demangled */
#define SYM_UNKNOWN "[unknown]"
#define SYM_JIT "[jit]"
#define DELETED_SUFFIX " (deleted)"

/* libstdc++; C++ ABI, declared here so this file stays C. */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len,
			    int *status);

/* ---- small helpers ------------------------------------------------------ */

struct list {
	struct list *prev, *next;
};

#define container_of(ptr, type, member)                                        \
	((type *)((char *)(ptr)-offsetof(type, member)))

static void list_init(struct list *h)
{
	h->prev = h->next = h;
}

static void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

static void list_add_head(struct list *h, struct list *n)
{
	n->next = h->next;
	n->prev = h;
	h->next->prev = n;
	h->next = n;
}

static void list_move_head(struct list *h, struct list *n)
{
	list_del(n);
	list_add_head(h, n);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Copy src into dst[len], truncating; always NUL-terminated when len > 0. */
static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n;

	if (!len)
		return;
	n = strnlen(src, len - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Append s (NUL included) to a growable string blob; *off gets its offset. */
static int blob_add(char **buf, size_t *len, size_t *cap, const char *s,
		    size_t slen, uint32_t *off)
{
	char *nb;
	size_t ncap;

	if (*len + slen + 1 > UINT32_MAX)
		return -E2BIG;
	if (*len + slen + 1 > *cap) {
		ncap = *cap ? *cap : 4096;
		while (ncap < *len + slen + 1)
			ncap *= 2;
		nb = realloc(*buf, ncap);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, slen);
	(*buf)[*len + slen] = '\0';
	*off = (uint32_t)*len;
	*len += slen + 1;
	return 0;
}

/* Parse lowercase or uppercase hex digits at *p; at least one, no overflow. */
static int parse_hex(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int d, n = 0;

	for (;; s++, n++) {
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (v >> 60)
			return -EINVAL;
		v = v << 4 | (uint64_t)d;
	}
	if (!n)
		return -EINVAL;
	*p = s;
	*out = v;
	return 0;
}

static int parse_dec(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int n = 0;

	for (; *s >= '0' && *s <= '9'; s++, n++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (!n)
		return -EINVAL;
	*p = s;
	*out = v;
	return 0;
}

static int leading_underscores(const char *s)
{
	int n = 0;

	while (s[n] == '_')
		n++;
	return n;
}

static int has_suffix(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

int sym_demangle(const char *name, char *out, size_t outlen)
{
	char *d;
	int status = -1;

	if (!out || !outlen)
		return 0;
	if (!name) {
		out[0] = '\0';
		return 0;
	}
	if (name[0] == '_' && name[1] == 'Z' &&
	    strnlen(name, SYM_DEMANGLE_MAX) < SYM_DEMANGLE_MAX) {
		d = __cxa_demangle(name, NULL, NULL, &status);
		if (d && status == 0) {
			copy_str(out, outlen, d);
			free(d);
			return 1;
		}
		free(d);
	}
	copy_str(out, outlen, name);
	return 0;
}

/* ---- data --------------------------------------------------------------- */

struct esym {
	uint64_t addr;
	uint32_t size; /* >= 1 */
	uint32_t name; /* offset in names */
};

struct load {
	uint64_t off, vaddr, filesz;
	int exec;
};

struct elf_file {
	struct elf_file *hnext;
	struct list lru; /* most recently used first */
	unsigned int maj, min;
	uint64_t ino;
	int refs;
	int failed; /* could not be read; retry after retry_ns */
	uint64_t retry_ns;
	struct load loads[SYM_MAX_LOADS];
	int nloads;
	struct esym *syms;
	size_t nsyms;
	char *names;
	size_t names_len;
	size_t bytes;
};

enum map_kind { MAP_FILE, MAP_ANON, MAP_VDSO, MAP_OTHER };

struct mapping {
	uint64_t start, end, pgoff;
	struct elf_file
	    *elf; /* NULL when not parsed; referenced for MAP_FILE */
	int kind;
	char module[SYM_MODULE_LEN];
};

struct perf_entry {
	uint64_t start, end;
	uint32_t name;
	uint32_t seq; /* line order: later lines win */
};

struct perf_map {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
	off_t consumed;	 /* bytes up to the last complete line read */
	off_t seen_size; /* file size at the last read */
	int full;	 /* hit a bound; no more reading */
	struct perf_entry *ents;
	size_t n, cap;
	char *names;
	size_t names_len, names_cap;
	uint32_t seq;
};

struct pid_snap {
	struct pid_snap *hnext;
	struct list lru; /* most recently snapshotted first */
	int pid;
	uint64_t read_ns;
	struct mapping *maps;
	size_t nmaps;
	struct perf_map *pm;
};

struct ksym {
	uint64_t addr, end;
	uint32_t name;
	uint32_t mod; /* index in mods, 0 = [kernel] */
};

struct kallsyms {
	int loaded, err;
	struct ksym *syms;
	size_t n;
	char *names;
	size_t names_len, names_cap;
	char (*mods)[SYM_MODULE_LEN];
	size_t nmods;
};

struct symbolizer {
	pthread_mutex_t lock;
	char proc_root[PATH_MAX];
	struct pid_snap *pids[SYM_PID_BUCKETS];
	struct list pid_lru;
	size_t npids;
	struct elf_file *elfs[SYM_ELF_BUCKETS];
	struct list elf_lru;
	size_t nelfs, elf_bytes;
	size_t max_files, max_bytes;
	struct elf_file *vdso;
	uint64_t vdso_size;
	int vdso_tried;
	struct kallsyms k;
	struct symbolizer_stats st;
};

/* ---- ELF parsing -------------------------------------------------------- */

struct tsym {
	uint64_t addr, size, limit;
	const char *name;
	int rank; /* binding: 0 global, 1 weak, 2 local */
};

struct sec {
	uint64_t addr, end;
	int exec;
};

static int tsym_cmp(const void *a, const void *b)
{
	const struct tsym *x = a, *y = b;
	size_t lx, ly;
	int ux, uy;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	if (!x->size != !y->size)
		return x->size ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank - y->rank;
	ux = leading_underscores(x->name);
	uy = leading_underscores(y->name);
	if (ux != uy)
		return ux - uy;
	lx = strlen(x->name);
	ly = strlen(y->name);
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int bind_rank(int bind)
{
	switch (bind) {
	case STB_GLOBAL:
		return 0;
	case STB_WEAK:
		return 1;
	default:
		return 2;
	}
}

static int elf_read_loads(Elf *e, struct elf_file *ef)
{
	size_t n, i;
	GElf_Phdr ph;

	if (elf_getphdrnum(e, &n) != 0)
		return -EINVAL;
	for (i = 0; i < n && ef->nloads < SYM_MAX_LOADS; i++) {
		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		ef->loads[ef->nloads].off = ph.p_offset;
		ef->loads[ef->nloads].vaddr = ph.p_vaddr;
		ef->loads[ef->nloads].filesz = ph.p_filesz;
		ef->loads[ef->nloads].exec = !!(ph.p_flags & PF_X);
		ef->nloads++;
	}
	return ef->nloads ? 0 : -ENOEXEC;
}

/* Collect the function symbols of one symbol table section into t. */
static int elf_collect(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh,
		       const struct sec *secs, size_t nsecs, struct tsym **t,
		       size_t *n, size_t *cap)
{
	Elf_Data *d;
	GElf_Sym sym;
	size_t i, count;
	const char *name;
	int type;
	struct tsym *nt;

	if (!sh->sh_entsize)
		return 0;
	d = elf_getdata(scn, NULL);
	if (!d)
		return 0;
	count = sh->sh_size / sh->sh_entsize;
	for (i = 1; i < count && *n < SYM_MAX_ELF_SYMS; i++) {
		if (!gelf_getsym(d, (int)i, &sym))
			break;
		type = GELF_ST_TYPE(sym.st_info);
		if (sym.st_shndx == SHN_UNDEF || sym.st_shndx >= nsecs ||
		    !sym.st_value)
			continue;
		if (type != STT_FUNC && type != STT_GNU_IFUNC &&
		    !(type == STT_NOTYPE && secs[sym.st_shndx].exec))
			continue;
		name = elf_strptr(e, sh->sh_link, sym.st_name);
		if (!name || !name[0] || name[0] == '$' ||
		    (name[0] == '.' && name[1] == 'L'))
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 1024;
			nt = realloc(*t, *cap * sizeof(**t));
			if (!nt)
				return -ENOMEM;
			*t = nt;
		}
		(*t)[*n].addr = sym.st_value;
		(*t)[*n].size = sym.st_size;
		(*t)[*n].limit = secs[sym.st_shndx].end > sym.st_value
				     ? secs[sym.st_shndx].end
				     : 0;
		(*t)[*n].name = name;
		(*t)[*n].rank = bind_rank(GELF_ST_BIND(sym.st_info));
		(*n)++;
	}
	return 0;
}

/* Sort, keep one name per address, settle sizes, copy names. */
static int elf_build(struct elf_file *ef, struct tsym *t, size_t n)
{
	size_t i, j, m = 0, cap = 0;
	uint64_t next, end;
	int err;

	qsort(t, n, sizeof(*t), tsym_cmp);
	for (i = 0; i < n; i++)
		if (!m || t[i].addr != t[m - 1].addr)
			t[m++] = t[i];
	ef->syms = calloc(m ? m : 1, sizeof(*ef->syms));
	if (!ef->syms)
		return -ENOMEM;
	for (i = 0, j = 0; i < m; i++) {
		end = t[i].addr + t[i].size;
		if (!t[i].size || end < t[i].addr) {
			next = i + 1 < m ? t[i + 1].addr : UINT64_MAX;
			end =
			    t[i].limit && t[i].limit < next ? t[i].limit : next;
			if (end == UINT64_MAX)
				end = t[i].addr + 1;
		}
		if (end - t[i].addr > UINT32_MAX)
			end = t[i].addr + UINT32_MAX;
		ef->syms[j].addr = t[i].addr;
		ef->syms[j].size = (uint32_t)(end - t[i].addr);
		err = blob_add(&ef->names, &ef->names_len, &cap, t[i].name,
			       strlen(t[i].name), &ef->syms[j].name);
		if (err)
			return err;
		j++;
	}
	ef->nsyms = j;
	ef->bytes = sizeof(*ef) + j * sizeof(*ef->syms) + cap;
	return 0;
}

static int elf_parse(Elf *e, struct elf_file *ef)
{
	GElf_Ehdr eh;
	GElf_Shdr sh;
	Elf_Scn *scn = NULL;
	struct sec *secs = NULL;
	struct tsym *t = NULL;
	size_t nsecs, n = 0, cap = 0, i;
	int err;

	if (elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh))
		return -ENOEXEC;
	err = elf_read_loads(e, ef);
	if (err)
		return err;
	if (elf_getshdrnum(e, &nsecs) != 0 || nsecs > SYM_MAX_SECTIONS)
		nsecs = 0;
	secs = calloc(nsecs ? nsecs : 1, sizeof(*secs));
	if (!secs)
		return -ENOMEM;
	for (i = 0; i < nsecs; i++) {
		scn = elf_getscn(e, i);
		if (!scn || !gelf_getshdr(scn, &sh))
			continue;
		secs[i].exec =
		    (sh.sh_flags & SHF_EXECINSTR) && (sh.sh_flags & SHF_ALLOC);
		if (sh.sh_flags & SHF_ALLOC) {
			secs[i].addr = sh.sh_addr;
			secs[i].end = sh.sh_addr + sh.sh_size;
		}
	}
	scn = NULL;
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM)
			continue;
		err = elf_collect(e, scn, &sh, secs, nsecs, &t, &n, &cap);
		if (err)
			goto out;
	}
	err = elf_build(ef, t, n);
out:
	free(t);
	free(secs);
	return err;
}

static void elf_file_free(struct elf_file *ef)
{
	if (!ef)
		return;
	free(ef->syms);
	free(ef->names);
	free(ef);
}

static const struct esym *elf_lookup(const struct elf_file *ef, uint64_t va)
{
	size_t lo = 0, hi = ef->nsyms, mid, i;
	const struct esym *e;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ef->syms[mid].addr <= va)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* lo symbols start at or below va; try the nearest, then encloses */
	for (i = lo; i > 0 && lo - i < SYM_LOOKBACK; i--) {
		e = &ef->syms[i - 1];
		if (va - e->addr < e->size)
			return e;
	}
	return NULL;
}

/* File offset -> ELF virtual address through the PT_LOAD that holds it. */
static int elf_vaddr(const struct elf_file *ef, uint64_t off, uint64_t *va)
{
	int pass, i;
	const struct load *l;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < ef->nloads; i++) {
			l = &ef->loads[i];
			if (l->exec != !pass)
				continue;
			if (off >= l->off && off - l->off < l->filesz) {
				*va = off - l->off + l->vaddr;
				return 0;
			}
		}
	}
	return -ENOENT;
}

/* ---- ELF cache ---------------------------------------------------------- */

static size_t elf_bucket(unsigned int maj, unsigned int min, uint64_t ino)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ULL ^
		     ((uint64_t)maj << 32 | min) * 0xff51afd7ed558ccdULL;

	return (size_t)(h >> 32) % SYM_ELF_BUCKETS;
}

static void elf_unlink(struct symbolizer *s, struct elf_file *ef)
{
	struct elf_file **pp = &s->elfs[elf_bucket(ef->maj, ef->min, ef->ino)];

	while (*pp && *pp != ef)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = ef->hnext;
	list_del(&ef->lru);
	s->nelfs--;
	s->elf_bytes -= ef->bytes;
	elf_file_free(ef);
}

/* Drop unreferenced files, least recently used first, until within bounds. */
static void elf_evict(struct symbolizer *s)
{
	struct list *n = s->elf_lru.prev, *prev;
	struct elf_file *ef;

	while (n != &s->elf_lru &&
	       (s->nelfs > s->max_files || s->elf_bytes > s->max_bytes)) {
		prev = n->prev;
		ef = container_of(n, struct elf_file, lru);
		if (!ef->refs)
			elf_unlink(s, ef);
		n = prev;
	}
}

static void elf_put(struct symbolizer *s, struct elf_file *ef)
{
	if (ef && ef->refs > 0)
		ef->refs--;
}

/*
 * Open the file a mapping maps, as a regular file only: through the
 * process's root when it is the mapped file (or when map_files cannot be
 * opened: overlayfs shows other device numbers through the path than in
 * maps), else through map_files.
 */
static int open_mapped(struct symbolizer *s, int pid, const char *path,
		       int deleted, const struct mapping *m, unsigned int maj,
		       unsigned int min, uint64_t ino)
{
	char p[PATH_MAX];
	struct stat st;
	int fd = -1, fd2, n;

	if (!deleted) {
		n = snprintf(p, sizeof(p), "%s/%d/root%s", s->proc_root, pid,
			     path);
		if (n > 0 && (size_t)n < sizeof(p) && stat(p, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			fd = open(p,
				  O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
			if (fd >= 0 &&
			    (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
				close(fd);
				fd = -1;
			}
			if (fd >= 0 && major(st.st_dev) == maj &&
			    minor(st.st_dev) == min && st.st_ino == ino)
				return fd;
		}
	}
	n = snprintf(p, sizeof(p), "%s/%d/map_files/%" PRIx64 "-%" PRIx64,
		     s->proc_root, pid, m->start, m->end);
	if (n > 0 && (size_t)n < sizeof(p)) {
		fd2 = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd2 >= 0 && fstat(fd2, &st) == 0 && S_ISREG(st.st_mode)) {
			if (fd >= 0)
				close(fd);
			return fd2;
		}
		if (fd2 >= 0)
			close(fd2);
	}
	return fd >= 0 ? fd : -ENOENT;
}

static int elf_load_fd(int fd, struct elf_file *ef)
{
	Elf *e;
	int err;

	e = elf_begin(fd, ELF_C_READ, NULL);
	if (!e)
		return -ENOEXEC;
	err = elf_parse(e, ef);
	elf_end(e);
	return err;
}

/*
 * The parsed file behind a mapping, with a reference taken; NULL when it
 * cannot be read (the mapping then names its module only).
 */
static struct elf_file *elf_get(struct symbolizer *s, int pid, const char *path,
				int deleted, const struct mapping *m,
				unsigned int maj, unsigned int min,
				uint64_t ino)
{
	size_t b = elf_bucket(maj, min, ino);
	struct elf_file *ef;
	uint64_t now = now_ns();
	int fd, err;

	for (ef = s->elfs[b]; ef; ef = ef->hnext)
		if (ef->ino == ino && ef->maj == maj && ef->min == min)
			break;
	if (ef) {
		list_move_head(&s->elf_lru, &ef->lru);
		if (!ef->failed) {
			s->st.elf_cache_hits++;
			ef->refs++;
			return ef;
		}
		if (now < ef->retry_ns)
			return NULL;
		elf_unlink(s, ef);
	}

	ef = calloc(1, sizeof(*ef));
	if (!ef)
		return NULL;
	ef->maj = maj;
	ef->min = min;
	ef->ino = ino;
	fd = open_mapped(s, pid, path, deleted, m, maj, min, ino);
	if (fd < 0) {
		/*
		 * Not remembered: the path may only have vanished with this
		 * process, while others map the same file and can open it.
		 */
		free(ef);
		return NULL;
	}
	err = elf_load_fd(fd, ef);
	close(fd);
	if (err) {
		/* opened but not usable ELF: the file's own fault, remember */
		free(ef->syms);
		free(ef->names);
		ef->syms = NULL;
		ef->names = NULL;
		ef->nsyms = ef->names_len = 0;
		ef->nloads = 0;
		ef->failed = 1;
		ef->retry_ns = now + SYM_RETRY_NS;
		ef->bytes = sizeof(*ef);
	} else {
		s->st.elf_files_parsed++;
		ef->refs = 1;
	}
	ef->hnext = s->elfs[b];
	s->elfs[b] = ef;
	list_add_head(&s->elf_lru, &ef->lru);
	s->nelfs++;
	s->elf_bytes += ef->bytes;
	elf_evict(s);
	return ef->failed ? NULL : ef;
}

/* The agent's own vDSO, parsed once; used for a [vdso] of the same size. */
static struct elf_file *vdso_get(struct symbolizer *s, uint64_t size)
{
	unsigned long base;
	uint64_t start, end;
	const char *p;
	char *line = NULL, *image = NULL;
	size_t cap = 0;
	FILE *f;
	Elf *e;

	if (!s->vdso_tried) {
		s->vdso_tried = 1;
		base = getauxval(AT_SYSINFO_EHDR);
		f = base ? fopen("/proc/self/maps", "re") : NULL;
		while (f && getline(&line, &cap, f) > 0) {
			p = line;
			if (parse_hex(&p, &start) || *p++ != '-' ||
			    parse_hex(&p, &end) || start != base)
				continue;
			if (end > start && end - start <= (1u << 20))
				s->vdso_size = end - start;
			break;
		}
		free(line);
		if (f)
			fclose(f);
		if (s->vdso_size)
			image = malloc(s->vdso_size);
		if (image) {
			memcpy(image, (const void *)base, s->vdso_size);
			e = elf_memory(image, s->vdso_size);
			s->vdso = e ? calloc(1, sizeof(*s->vdso)) : NULL;
			if (s->vdso && elf_parse(e, s->vdso)) {
				elf_file_free(s->vdso);
				s->vdso = NULL;
			}
			if (e)
				elf_end(e);
			free(image);
		}
	}
	return s->vdso && s->vdso_size == size ? s->vdso : NULL;
}

/* ---- /proc/PID/maps ----------------------------------------------------- */

struct maps_line {
	uint64_t start, end, pgoff, ino;
	unsigned int maj, min;
	int exec;
	const char *path; /* NUL-terminated, trailing newline removed */
};

/* "start-end perms offset maj:min inode   path"; 0 or -EINVAL. */
static int parse_maps_line(char *line, struct maps_line *ml)
{
	const char *p = line;
	uint64_t maj, min;
	size_t len;
	char *path;

	if (parse_hex(&p, &ml->start) || *p++ != '-' ||
	    parse_hex(&p, &ml->end) || *p++ != ' ')
		return -EINVAL;
	if (strnlen(p, 5) < 5 || p[4] != ' ')
		return -EINVAL;
	ml->exec = p[2] == 'x';
	p += 5;
	if (parse_hex(&p, &ml->pgoff) || *p++ != ' ' || parse_hex(&p, &maj) ||
	    *p++ != ':' || parse_hex(&p, &min) || *p++ != ' ' ||
	    parse_dec(&p, &ml->ino))
		return -EINVAL;
	if (*p && *p != ' ' && *p != '\n')
		return -EINVAL;
	if (ml->start >= ml->end || maj > UINT32_MAX || min > UINT32_MAX)
		return -EINVAL;
	ml->maj = (unsigned int)maj;
	ml->min = (unsigned int)min;
	while (*p == ' ' || *p == '\t')
		p++;
	path = line + (p - line);
	len = strlen(path);
	while (len && (path[len - 1] == '\n' || path[len - 1] == '\r'))
		path[--len] = '\0';
	ml->path = path;
	return 0;
}

static int map_kind(const struct maps_line *ml)
{
	const char *p = ml->path;

	if (!p[0])
		return MAP_ANON;
	if (!strcmp(p, "[vdso]"))
		return MAP_VDSO;
	if (!strcmp(p, "[vsyscall]") || !strcmp(p, "[uprobes]"))
		return MAP_OTHER;
	if (p[0] == '[' || !strncmp(p, "//anon", 6) ||
	    !strncmp(p, "/memfd:", 7) || !strncmp(p, "/dev/zero", 9))
		return MAP_ANON;
	if (p[0] == '/')
		return MAP_FILE;
	return MAP_ANON; /* anon_inode:..., other kernel-made names */
}

static void module_name(const char *path, char *out, size_t outlen)
{
	const char *b = strrchr(path, '/');
	size_t len;

	b = b ? b + 1 : path;
	len = strlen(b);
	if (has_suffix(b, len, DELETED_SUFFIX))
		len -= strlen(DELETED_SUFFIX);
	if (len >= outlen)
		len = outlen - 1;
	memcpy(out, b, len);
	out[len] = '\0';
	if (!out[0])
		copy_str(out, outlen, SYM_UNKNOWN);
}

static int mapping_cmp(const void *a, const void *b)
{
	const struct mapping *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return 0;
}

static void maps_free(struct symbolizer *s, struct mapping *maps, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (maps[i].kind == MAP_FILE)
			elf_put(s, maps[i].elf);
	free(maps);
}

/*
 * Read a pid's executable mappings; parse the files not cached yet. *anon
 * tells whether any is anonymous (JIT). 0, -ESRCH, -ENOMEM.
 */
static int maps_read(struct symbolizer *s, int pid, struct mapping **out,
		     size_t *nout, int *anon)
{
	char path[PATH_MAX], *line = NULL;
	size_t cap = 0, n = 0, mcap = 0, plen;
	struct mapping *maps = NULL, *nm, *m;
	struct maps_line ml;
	int deleted, err = 0;
	FILE *f;

	*anon = 0;
	snprintf(path, sizeof(path), "%s/%d/maps", s->proc_root, pid);
	f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	while (getline(&line, &cap, f) > 0) {
		if (parse_maps_line(line, &ml) || !ml.exec)
			continue;
		if (n == SYM_MAX_MAPPINGS)
			break;
		if (n == mcap) {
			mcap = mcap ? mcap * 2 : 64;
			nm = realloc(maps, mcap * sizeof(*maps));
			if (!nm) {
				err = -ENOMEM;
				break;
			}
			maps = nm;
		}
		m = &maps[n++];
		memset(m, 0, sizeof(*m));
		m->start = ml.start;
		m->end = ml.end;
		m->pgoff = ml.pgoff;
		m->kind = map_kind(&ml);
		switch (m->kind) {
		case MAP_FILE:
			module_name(ml.path, m->module, sizeof(m->module));
			plen = strlen(ml.path);
			deleted = has_suffix(ml.path, plen, DELETED_SUFFIX);
			m->elf = elf_get(s, pid, ml.path, deleted, m, ml.maj,
					 ml.min, ml.ino);
			break;
		case MAP_VDSO:
			copy_str(m->module, sizeof(m->module), ml.path);
			m->elf = vdso_get(s, m->end - m->start);
			break;
		case MAP_ANON:
			copy_str(m->module, sizeof(m->module), SYM_JIT);
			*anon = 1;
			break;
		default:
			copy_str(m->module, sizeof(m->module), ml.path);
			break;
		}
	}
	free(line);
	fclose(f);
	if (err) {
		maps_free(s, maps, n);
		return err;
	}
	if (n)
		qsort(maps, n, sizeof(*maps), mapping_cmp);
	*out = maps;
	*nout = n;
	return 0;
}

static const struct mapping *maps_find(const struct pid_snap *ps, uint64_t a)
{
	size_t lo = 0, hi = ps->nmaps, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ps->maps[mid].start <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && a < ps->maps[lo - 1].end)
		return &ps->maps[lo - 1];
	return NULL;
}

/* ---- perf-PID.map ------------------------------------------------------- */

static void perf_map_free(struct perf_map *pm)
{
	if (!pm)
		return;
	free(pm->ents);
	free(pm->names);
	free(pm);
}

static void perf_map_reset(struct perf_map *pm)
{
	pm->n = 0;
	pm->names_len = 0;
	pm->consumed = 0;
	pm->seen_size = 0;
	pm->full = 0;
	pm->seq = 0;
}

static int perf_entry_cmp(const void *a, const void *b)
{
	const struct perf_entry *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return 0;
}

/* "START SIZE name" (hex, optional 0x); garbage lines are skipped. */
static int perf_map_line(struct perf_map *pm, const char *line, size_t len)
{
	const char *p = line, *end = line + len;
	uint64_t start, size;
	struct perf_entry *e;
	size_t ncap;
	int err;

	if (memchr(line, '\0', len))
		return 0;
	if (len > 1 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	if (parse_hex(&p, &start) || *p++ != ' ')
		return 0;
	if (end - p > 1 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	if (parse_hex(&p, &size) || p >= end || *p++ != ' ')
		return 0;
	while (end > p && (end[-1] == '\r' || end[-1] == ' '))
		end--;
	if (!size || start + size < start || p >= end)
		return 0;
	if (pm->n >= SYM_PM_MAX_ENTRIES ||
	    pm->names_len + (size_t)(end - p) + 1 > SYM_PM_MAX_NAMES) {
		pm->full = 1;
		return 0;
	}
	if (pm->n == pm->cap) {
		ncap = pm->cap ? pm->cap * 2 : 256;
		e = realloc(pm->ents, ncap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		pm->ents = e;
		pm->cap = ncap;
	}
	e = &pm->ents[pm->n];
	err = blob_add(&pm->names, &pm->names_len, &pm->names_cap, p,
		       (size_t)(end - p), &e->name);
	if (err)
		return err;
	e->start = start;
	e->end = start + size;
	e->seq = pm->seq++;
	pm->n++;
	return 0;
}

/* Sort entries [old, n) and merge them into the sorted [0, old). */
static int perf_map_merge(struct perf_map *pm, size_t old)
{
	struct perf_entry *tmp;
	size_t i = 0, j = old, k = 0;

	qsort(pm->ents + old, pm->n - old, sizeof(*pm->ents), perf_entry_cmp);
	if (!old || old == pm->n ||
	    perf_entry_cmp(&pm->ents[old - 1], &pm->ents[old]) <= 0)
		return 0;
	tmp = malloc(pm->n * sizeof(*tmp));
	if (!tmp) {
		qsort(pm->ents, pm->n, sizeof(*pm->ents), perf_entry_cmp);
		return 0;
	}
	while (i < old && j < pm->n)
		tmp[k++] = perf_entry_cmp(&pm->ents[i], &pm->ents[j]) <= 0
			       ? pm->ents[i++]
			       : pm->ents[j++];
	while (i < old)
		tmp[k++] = pm->ents[i++];
	while (j < pm->n)
		tmp[k++] = pm->ents[j++];
	free(pm->ents);
	pm->ents = tmp;
	pm->cap = pm->n;
	return 0;
}

/* Read the complete lines after pm->consumed. */
static int perf_map_read(struct perf_map *pm, int fd)
{
	char *buf;
	size_t have = 0, i, ls, old = pm->n;
	ssize_t r;
	int skipping = 0, err = 0;

	buf = malloc(SYM_PM_LINE_MAX);
	if (!buf)
		return -ENOMEM;
	if (lseek(fd, pm->consumed, SEEK_SET) < 0) {
		free(buf);
		return -errno;
	}
	while (!pm->full && !err) {
		r = read(fd, buf + have, SYM_PM_LINE_MAX - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		ls = 0;
		for (i = 0; i < have && !err; i++) {
			if (buf[i] != '\n')
				continue;
			if (!skipping)
				err = perf_map_line(pm, buf + ls, i - ls);
			skipping = 0;
			pm->consumed += (off_t)(i + 1 - ls);
			ls = i + 1;
		}
		if (ls == 0 && have == SYM_PM_LINE_MAX) {
			/* a line longer than the buffer: drop it */
			skipping = 1;
			pm->consumed += (off_t)have;
			have = 0;
			continue;
		}
		memmove(buf, buf + ls, have - ls);
		have -= ls;
	}
	free(buf);
	if (!err)
		err = perf_map_merge(pm, old);
	return err;
}

/* <proc_root>/PID/root/tmp/perf-NSPID.map, NSPID as the process sees it. */
static void perf_map_path(struct symbolizer *s, int pid, char *out,
			  size_t outlen)
{
	char path[PATH_MAX], *line = NULL, *p, *last;
	size_t cap = 0;
	long nspid = pid, v;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%d/status", s->proc_root, pid);
	f = fopen(path, "re");
	while (f && getline(&line, &cap, f) > 0) {
		if (strncmp(line, "NSpid:", 6))
			continue;
		last = NULL;
		for (p = strtok(line + 6, " \t\n"); p;
		     p = strtok(NULL, " \t\n"))
			last = p;
		if (last) {
			v = strtol(last, &p, 10);
			if (!*p && v > 0 && v <= INT_MAX)
				nspid = v;
		}
		break;
	}
	free(line);
	if (f)
		fclose(f);
	snprintf(out, outlen, "%s/%d/root/tmp/perf-%ld.map", s->proc_root, pid,
		 nspid);
}

/*
 * Bring a pid's perf map up to date: read it the first time, read what was
 * appended since, or read it again when it was replaced or truncated.
 * Returns 0, or -errno when the file is not there (an existing table is
 * kept: the process may be gone, its samples not).
 */
static int perf_map_refresh(struct symbolizer *s, struct pid_snap *ps)
{
	struct perf_map *pm = ps->pm;
	struct stat st;
	char path[PATH_MAX];
	int fd, err;

	if (pm)
		copy_str(path, sizeof(path), pm->path);
	else
		perf_map_path(s, ps->pid, path, sizeof(path));
	if (stat(path, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (pm && (pm->dev != st.st_dev || pm->ino != st.st_ino ||
		   st.st_size < pm->seen_size))
		perf_map_reset(pm);
	if (pm && (pm->full || st.st_size == pm->seen_size))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if (!pm) {
		pm = calloc(1, sizeof(*pm));
		if (!pm) {
			close(fd);
			return -ENOMEM;
		}
		copy_str(pm->path, sizeof(pm->path), path);
		ps->pm = pm;
	}
	pm->dev = st.st_dev;
	pm->ino = st.st_ino;
	pm->seen_size = st.st_size;
	err = perf_map_read(pm, fd);
	close(fd);
	s->st.perf_map_files++;
	return err;
}

static const struct perf_entry *perf_map_find(const struct perf_map *pm,
					      uint64_t a)
{
	size_t lo = 0, hi, mid, i;
	const struct perf_entry *e, *best = NULL;

	if (!pm)
		return NULL;
	hi = pm->n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (pm->ents[mid].start <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i > 0 && lo - i < SYM_PM_LOOKBACK; i--) {
		e = &pm->ents[i - 1];
		if (a < e->end && (!best || e->seq > best->seq))
			best = e;
	}
	return best;
}

/* ---- snapshots ---------------------------------------------------------- */

static size_t pid_bucket(int pid)
{
	return ((uint32_t)pid * 2654435761u >> 16) % SYM_PID_BUCKETS;
}

static struct pid_snap *pid_find(struct symbolizer *s, int pid)
{
	struct pid_snap *ps;

	for (ps = s->pids[pid_bucket(pid)]; ps; ps = ps->hnext)
		if (ps->pid == pid)
			return ps;
	return NULL;
}

static void pid_remove(struct symbolizer *s, struct pid_snap *ps)
{
	struct pid_snap **pp = &s->pids[pid_bucket(ps->pid)];

	while (*pp && *pp != ps)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = ps->hnext;
	list_del(&ps->lru);
	s->npids--;
	maps_free(s, ps->maps, ps->nmaps);
	perf_map_free(ps->pm);
	free(ps);
}

static int snapshot_locked(struct symbolizer *s, int pid)
{
	struct pid_snap *ps = pid_find(s, pid);
	struct mapping *maps;
	size_t n;
	uint64_t now = now_ns();
	int anon, err;

	if (ps && now - ps->read_ns < SYM_FRESH_NS) {
		list_move_head(&s->pid_lru, &ps->lru);
		return 0;
	}
	err = maps_read(s, pid, &maps, &n, &anon);
	if (err)
		return err;
	if (!ps) {
		if (s->npids >= SYM_MAX_PIDS)
			pid_remove(s, container_of(s->pid_lru.prev,
						   struct pid_snap, lru));
		ps = calloc(1, sizeof(*ps));
		if (!ps) {
			maps_free(s, maps, n);
			return -ENOMEM;
		}
		ps->pid = pid;
		ps->hnext = s->pids[pid_bucket(pid)];
		s->pids[pid_bucket(pid)] = ps;
		list_add_head(&s->pid_lru, &ps->lru);
		s->npids++;
	} else {
		list_move_head(&s->pid_lru, &ps->lru);
	}
	maps_free(s, ps->maps, ps->nmaps);
	ps->maps = maps;
	ps->nmaps = n;
	ps->read_ns = now;
	if (anon) {
		perf_map_refresh(s, ps);
	} else {
		perf_map_free(ps->pm);
		ps->pm = NULL;
	}
	elf_evict(s);
	return 0;
}

/* ---- kallsyms ----------------------------------------------------------- */

/* By address; at one address by rank (carried in end), then file order. */
static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return x->name < y->name ? -1 : x->name > y->name;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t kmod_index(struct kallsyms *k, const char *name, size_t len,
			   int *err)
{
	char(*nm)[SYM_MODULE_LEN];
	size_t i;

	if (len >= SYM_MODULE_LEN)
		len = SYM_MODULE_LEN - 1;
	for (i = k->nmods; i > 0; i--)
		if (!strncmp(k->mods[i - 1], name, len) && !k->mods[i - 1][len])
			return (uint32_t)(i - 1);
	if (k->nmods >= UINT16_MAX) {
		*err = -E2BIG;
		return 0;
	}
	nm = realloc(k->mods, (k->nmods + 1) * sizeof(*k->mods));
	if (!nm) {
		*err = -ENOMEM;
		return 0;
	}
	k->mods = nm;
	memcpy(k->mods[k->nmods], name, len);
	k->mods[k->nmods][len] = '\0';
	return (uint32_t)k->nmods++;
}

/* Tie-break for symbols at one address: T before W before t before w. */
static int ktype_rank(char t)
{
	switch (t) {
	case 'T':
		return 0;
	case 'W':
		return 1;
	case 't':
		return 2;
	default:
		return 3;
	}
}

static int kallsyms_load(struct symbolizer *s)
{
	struct kallsyms *k = &s->k;
	char path[PATH_MAX], *line = NULL, *p, *name, *mod;
	const char *cp;
	size_t cap = 0, nlines = 0, naddrs = 0, acap = 0, scap = 0, i, j;
	uint64_t addr, *addrs = NULL, *na, nz = 0, end;
	struct ksym *ns;
	int err = 0;
	size_t nlen, mlen;
	FILE *f;
	char type;

	snprintf(path, sizeof(path), "%s/kallsyms", s->proc_root);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	kmod_index(k, "[kernel]", 8, &err); /* index 0 */
	if (err)
		goto out;
	while (!err && getline(&line, &cap, f) > 0 && nlines < SYM_KSYM_MAX) {
		nlines++;
		cp = line;
		if (parse_hex(&cp, &addr) || *cp != ' ' || !cp[1] ||
		    cp[2] != ' ')
			continue;
		type = cp[1];
		p = line + (cp - line) + 3;
		name = p;
		nlen = strcspn(name, " \t\r\n");
		if (!nlen)
			continue;
		if (naddrs == acap) {
			acap = acap ? acap * 2 : 4096;
			na = realloc(addrs, acap * sizeof(*addrs));
			if (!na) {
				err = -ENOMEM;
				break;
			}
			addrs = na;
		}
		addrs[naddrs++] = addr;
		if (addr)
			nz++;
		if (type != 't' && type != 'T' && type != 'w' && type != 'W')
			continue;
		if (k->n == scap) {
			scap = scap ? scap * 2 : 4096;
			ns = realloc(k->syms, scap * sizeof(*ns));
			if (!ns) {
				err = -ENOMEM;
				break;
			}
			k->syms = ns;
		}
		k->syms[k->n].addr = addr;
		k->syms[k->n].mod = 0;
		mod = name + nlen;
		mod += strspn(mod, " \t");
		if (*mod == '[') {
			mlen = strcspn(mod + 1, "] \t\r\n");
			if (mlen && mod[1 + mlen] == ']')
				k->syms[k->n].mod =
				    kmod_index(k, mod + 1, mlen, &err);
		}
		/* the rank rides in end until the sort is done */
		k->syms[k->n].end = (uint64_t)ktype_rank(type) << 32 |
				    (uint64_t)leading_underscores(name);
		name[nlen] = '\0';
		if (!err)
			err = blob_add(&k->names, &k->names_len, &k->names_cap,
				       name, nlen, &k->syms[k->n].name);
		if (!err)
			k->n++;
	}
	if (err)
		goto out;
	if (nlines && !nz) {
		err = -EACCES;
		goto out;
	}
	qsort(k->syms, k->n, sizeof(*k->syms), ksym_cmp);
	qsort(addrs, naddrs, sizeof(*addrs), u64_cmp);
	/* one symbol per address: the first after sorting is the best */
	for (i = 0, j = 0; i < k->n; i++)
		if (!j || k->syms[j - 1].addr != k->syms[i].addr)
			k->syms[j++] = k->syms[i];
	k->n = j;
	for (i = 0, j = 0; i < k->n; i++) {
		while (j < naddrs && addrs[j] <= k->syms[i].addr)
			j++;
		end = j < naddrs ? addrs[j]
				 : k->syms[i].addr + SYM_KSYM_LAST_SPAN;
		if (end < k->syms[i].addr)
			end = UINT64_MAX;
		k->syms[i].end = end;
	}
out:
	free(addrs);
	free(line);
	fclose(f);
	return err;
}

static const struct ksym *kallsyms_find(const struct kallsyms *k, uint64_t a)
{
	size_t lo = 0, hi = k->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (k->syms[mid].addr <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && a < k->syms[lo - 1].end)
		return &k->syms[lo - 1];
	return NULL;
}

static void kallsyms_free(struct kallsyms *k)
{
	free(k->syms);
	free(k->names);
	free(k->mods);
	memset(k, 0, sizeof(*k));
}

/* ---- API ---------------------------------------------------------------- */

struct symbolizer *symbolizer_new(const char *proc_root)
{
	struct symbolizer *s;

	if (!proc_root || strlen(proc_root) >= PATH_MAX - 64) {
		errno = EINVAL;
		return NULL;
	}
	if (elf_version(EV_CURRENT) == EV_NONE) {
		errno = ENOSYS;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (pthread_mutex_init(&s->lock, NULL)) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	copy_str(s->proc_root, sizeof(s->proc_root), proc_root);
	list_init(&s->pid_lru);
	list_init(&s->elf_lru);
	s->max_files = SYM_DEFAULT_MAX_FILES;
	s->max_bytes = SYM_DEFAULT_MAX_BYTES;
	return s;
}

void symbolizer_free(struct symbolizer *s)
{
	if (!s)
		return;
	while (s->pid_lru.next != &s->pid_lru)
		pid_remove(s,
			   container_of(s->pid_lru.next, struct pid_snap, lru));
	while (s->elf_lru.next != &s->elf_lru)
		elf_unlink(s,
			   container_of(s->elf_lru.next, struct elf_file, lru));
	elf_file_free(s->vdso);
	kallsyms_free(&s->k);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void symbolizer_set_cache_limit(struct symbolizer *s, size_t max_files,
				size_t max_bytes)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (max_files)
		s->max_files = max_files;
	if (max_bytes)
		s->max_bytes = max_bytes;
	elf_evict(s);
	pthread_mutex_unlock(&s->lock);
}

int symbolizer_snapshot(struct symbolizer *s, int pid)
{
	int err;

	if (!s || pid <= 0)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	err = snapshot_locked(s, pid);
	pthread_mutex_unlock(&s->lock);
	return err;
}

void symbolizer_forget(struct symbolizer *s, int pid)
{
	struct pid_snap *ps;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	ps = pid_find(s, pid);
	if (ps)
		pid_remove(s, ps);
	elf_evict(s);
	pthread_mutex_unlock(&s->lock);
}

static void sym_fill(struct sym *out, const char *name, const char *module,
		     uint64_t offset, int known, int demangle)
{
	if (demangle)
		sym_demangle(name, out->name, sizeof(out->name));
	else
		copy_str(out->name, sizeof(out->name), name);
	copy_str(out->module, sizeof(out->module), module);
	out->offset = offset;
	out->known = known;
}

/* Look a JIT address up in the perf map, rereading it once on a miss. */
static const struct perf_entry *jit_find(struct symbolizer *s,
					 struct pid_snap *ps, uint64_t addr)
{
	const struct perf_entry *e = perf_map_find(ps->pm, addr);

	if (!e && ps->pm && perf_map_refresh(s, ps) == 0)
		e = perf_map_find(ps->pm, addr);
	return e;
}

int symbolize_user(struct symbolizer *s, int pid, uint64_t addr,
		   struct sym *out)
{
	struct pid_snap *ps;
	const struct mapping *m;
	const struct perf_entry *pe;
	const struct esym *es;
	uint64_t va;
	int err;

	if (!out)
		return -EINVAL;
	sym_fill(out, SYM_UNKNOWN, SYM_UNKNOWN, 0, 0, 0);
	if (!s || pid <= 0)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	ps = pid_find(s, pid);
	if (!ps && (err = snapshot_locked(s, pid)) != 0)
		goto out;
	ps = pid_find(s, pid);
	err = -ENOENT;
	if (!ps)
		goto out;
	m = maps_find(ps, addr);
	if (!m || m->kind == MAP_ANON) {
		pe = jit_find(s, ps, addr);
		if (pe) {
			sym_fill(out, ps->pm->names + pe->name, SYM_JIT,
				 addr - pe->start, 1, 1);
			err = 0;
		} else if (m) {
			sym_fill(out, SYM_JIT, SYM_JIT, 0, 0, 0);
		}
		goto out;
	}
	copy_str(out->module, sizeof(out->module), m->module);
	if (!m->elf || elf_vaddr(m->elf, addr - m->start + m->pgoff, &va))
		goto out;
	es = elf_lookup(m->elf, va);
	if (es) {
		sym_fill(out, m->elf->names + es->name, m->module,
			 va - es->addr, 1, 1);
		err = 0;
	}
out:
	if (!out->known)
		s->st.unknown_frames++;
	pthread_mutex_unlock(&s->lock);
	return err;
}

int symbolize_kernel(struct symbolizer *s, uint64_t addr, struct sym *out)
{
	const struct ksym *ks;
	int err;

	if (!out)
		return -EINVAL;
	sym_fill(out, SYM_UNKNOWN, "[kernel]", 0, 0, 0);
	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (!s->k.loaded) {
		s->k.err = kallsyms_load(s);
		s->k.loaded = 1;
		if (s->k.err) {
			err = s->k.err;
			kallsyms_free(&s->k);
			s->k.loaded = 1;
			s->k.err = err;
		}
	}
	err = s->k.err;
	if (!err) {
		ks = kallsyms_find(&s->k, addr);
		err = -ENOENT;
		if (ks) {
			sym_fill(out, s->k.names + ks->name, s->k.mods[ks->mod],
				 addr - ks->addr, 1, 0);
			err = 0;
		}
	}
	if (!out->known)
		s->st.unknown_frames++;
	pthread_mutex_unlock(&s->lock);
	return err;
}

void symbolizer_stats(const struct symbolizer *s, struct symbolizer_stats *out)
{
	struct symbolizer *w = (struct symbolizer *)s;

	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	pthread_mutex_lock(&w->lock);
	*out = s->st;
	out->elf_files_cached = s->nelfs;
	out->elf_cache_bytes = s->elf_bytes;
	out->pids = s->npids;
	pthread_mutex_unlock(&w->lock);
}
