/*
 * symbolize.h - instruction pointers to function names for the CPU profiler.
 *
 * The profiler's BPF side records raw user and kernel instruction pointers
 * per pid; this turns them into (function, module, offset). User frames are
 * resolved against a snapshot of the process's executable mappings and the
 * ELF symbol tables (.symtab, else .dynsym) of the mapped files, JIT frames
 * against the process's /tmp/perf-PID.map when it writes one, kernel frames
 * against kallsyms. Everything is read under a proc_root ("/proc" in
 * production, a fake tree in tests).
 *
 * Samples are symbolized after the fact, when the process may be gone, so
 * symbolizer_snapshot() reads a pid's maps and parses every mapped file it
 * has not seen before right away; the snapshot then answers until
 * symbolizer_forget(). Parsed files are shared by all processes that map
 * them (keyed by device and inode) and kept in a bounded LRU cache.
 *
 * One symbolizer may be used from several threads: every call takes its
 * lock. No call ever fails with a half-filled struct sym: whatever the
 * return value, out holds a printable frame ("[unknown]" when nothing is
 * known) unless out itself is NULL.
 */
#ifndef KS_SYMBOLIZE_H
#define KS_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#define SYM_NAME_LEN 256
#define SYM_MODULE_LEN 64

struct symbolizer;

struct sym {
	/*
	 * Function name: user-space C++ names demangled (the mangled name
	 * when it does not demangle), kernel names as kallsyms spells them;
	 * "[unknown]" when no symbol covers the address, "[jit]" for JIT code
	 * the process did not describe. Truncated to fit.
	 */
	char name[SYM_NAME_LEN];
	/*
	 * Base name of the mapped file ("libc.so.6", "node"), "[kernel]" or a
	 * kernel module's name for kernel frames, "[jit]" for anonymous
	 * executable memory, "[vdso]", "[unknown]" when no mapping covers it.
	 */
	char module[SYM_MODULE_LEN];
	uint64_t offset; /* address - symbol start, 0 when unknown */
	int known;	 /* 1 when name is a real symbol */
};

/*
 * A symbolizer reading under proc_root ("/proc" in production). Returns NULL
 * (errno set) when out of memory or proc_root is NULL or too long.
 */
struct symbolizer *symbolizer_new(const char *proc_root);

/* Free everything: snapshots, cached ELF files, perf maps, kallsyms. */
void symbolizer_free(struct symbolizer *s);

/*
 * Cap the cache of parsed ELF files at max_files files and max_bytes bytes
 * of symbol tables (0 leaves a limit as it is; defaults 512 files, 512 MiB).
 * Files a snapshot still uses are never evicted; the others are dropped
 * least recently used first.
 */
void symbolizer_set_cache_limit(struct symbolizer *s, size_t max_files,
				size_t max_bytes);

/*
 * Read /proc/PID/maps now and keep its executable mappings, parsing the
 * files they map that are not cached yet (through /proc/PID/root/<path>,
 * so processes in containers work) and reading /tmp/perf-PID.map under the
 * process's root when it has anonymous executable memory. Cheap (no I/O)
 * when the pid's maps were read less than a second ago.
 *
 * Returns 0, -ESRCH when the maps cannot be read (the process is gone; a
 * snapshot taken earlier is kept), -EINVAL on bad arguments, -ENOMEM.
 */
int symbolizer_snapshot(struct symbolizer *s, int pid);

/* Drop a pid's snapshot (after its samples are symbolized). */
void symbolizer_forget(struct symbolizer *s, int pid);

/*
 * Symbolize a user address of pid, from its snapshot (one is taken first
 * when the pid has none). Returns 0 when a symbol was found (out->known),
 * -ENOENT when not (out holds "[unknown]" or "[jit]" and the module when
 * one is known), -ESRCH when the pid has no snapshot and none can be taken,
 * -EINVAL on bad arguments.
 */
int symbolize_user(struct symbolizer *s, int pid, uint64_t addr,
		   struct sym *out);

/*
 * Symbolize a kernel address from <proc_root>/kallsyms (text symbols, read
 * once on first use). Returns 0 when found, -ENOENT when no symbol covers
 * it, -EACCES when kallsyms hides its addresses (kptr_restrict; the agent
 * is not root), another -errno when kallsyms cannot be read, -EINVAL.
 */
int symbolize_kernel(struct symbolizer *s, uint64_t addr, struct sym *out);

/*
 * Counters for self-metrics. The first four only grow: files parsed, cache
 * hits (mappings served by a file parsed before), perf-PID.map reads (first
 * reads and rereads), symbolize_* calls that found no symbol. The last three
 * are gauges: files and symbol-table bytes in the cache, snapshots held.
 */
struct symbolizer_stats {
	uint64_t elf_files_parsed;
	uint64_t elf_cache_hits;
	uint64_t perf_map_files;
	uint64_t unknown_frames;
	uint64_t elf_files_cached;
	uint64_t elf_cache_bytes;
	uint64_t pids;
};

void symbolizer_stats(const struct symbolizer *s, struct symbolizer_stats *out);

/*
 * Demangle an Itanium C++ ABI name ("_ZN2v88internal4Heap14CollectGarbageEv"
 * -> "v8::internal::Heap::CollectGarbage()") into out, truncated to fit.
 * Names that are not mangled or do not demangle are copied unchanged.
 * Returns 1 when demangled, 0 when copied.
 */
int sym_demangle(const char *name, char *out, size_t outlen);

#endif
