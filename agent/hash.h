/*
 * hash.h - the agent's one string hash, for its in-memory tables (label
 * sets, statements, prepared-statement names, route positions, symbol
 * interning). Eight bytes per step, one multiply each: the byte-at-a-time
 * FNV it replaces showed in the agent's profile on every exchange. Values
 * never leave the process, so they may change between versions.
 */
#ifndef KS_HASH_H
#define KS_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KS_HASH_SEED 0xcbf29ce484222325ULL

static inline uint64_t ks_hash_mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

/*
 * Hash n bytes at p into h, their length first (chained calls over "ab",
 * "c" and "a", "bc" differ). The tail is gathered by shifts: stored byte
 * by byte and loaded as a word, it would stall store forwarding.
 */
static inline uint64_t ks_hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t w;

	h = ks_hash_mix(h, n);
	for (; n >= 8; b += 8, n -= 8) {
		memcpy(&w, b, 8);
		h = ks_hash_mix(h, w);
	}
	for (w = 0; n; n--)
		w = w << 8 | b[n - 1];
	h = ks_hash_mix(h, w);
	return h ^ (h >> 32); /* low bits index tables */
}

/* A NUL-terminated string (NULL hashes as ""). */
static inline uint64_t ks_hash_str(uint64_t h, const char *s)
{
	return ks_hash_bytes(h, s ? s : "", s ? strlen(s) : 0);
}

#endif
