#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "python/code.h"
#include "python/layout.h"
#include "util/hash.h"

struct entry {
	uint64_t ident[3];	/* filename ptr, name ptr, firstlineno: what we checked */
	uint64_t capture_ident; /* co_filename ^ co_name << 1, as the walker sees it */
	char *filename, *function;
	int firstlineno;
	uint8_t *table;
	size_t table_len;
};

struct python_code {
	struct target_mem *mem; /* the target's, borrowed */
	int minor;
	uint64_t code_type; /* PyCode_Type in the process; 0: not known */
	struct python_layout_code l;
	struct u64_map entries; /* code object address -> struct entry */
};

int python_code_open(const struct python_target *t, struct python_code **out)
{
	const struct python_layout *l = python_layout_for(t->minor);
	struct python_code *c;

	if (!l)
		return -EPROTONOSUPPORT;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->mem = t->mem;
	c->minor = t->minor;
	c->code_type = t->code_type;
	c->l = l->code;
	if (u64_map_init(&c->entries, sizeof(struct entry))) {
		free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

static void entry_free(struct entry *e)
{
	free(e->filename);
	free(e->function);
	free(e->table);
	memset(e, 0, sizeof(*e));
}

static void forget_all(struct python_code *c)
{
	for (size_t i = 0; i < c->entries.cap; i++)
		if (c->entries.keys[i])
			entry_free(u64_map_value_at(&c->entries, i));
	u64_map_free(&c->entries);
}

void python_code_close(struct python_code *c)
{
	if (!c)
		return;
	forget_all(c);
	free(c);
}

static void put_utf8(char **p, uint32_t cp)
{
	unsigned char *o = (unsigned char *)*p;

	if (cp < 0x80) {
		*o++ = (unsigned char)cp;
	} else if (cp < 0x800) {
		*o++ = (unsigned char)(0xc0 | cp >> 6);
		*o++ = (unsigned char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (unsigned char)(0xe0 | cp >> 12);
		*o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (unsigned char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (unsigned char)(0xf0 | cp >> 18);
		*o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		*o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (unsigned char)(0x80 | (cp & 0x3f));
	}
	*p = (char *)o;
}

/* A live object's reference count: at least 1, below 2^32 even when
 * immortal (3.12, 3.13); from 3.14 the word is {u32 ob_refcnt; u16
 * ob_overflow; u16 ob_flags} with a few flag bits. A freed block's first
 * word is an allocator's free-list link (a pointer, or a mangled one) or
 * zero: this tells the two apart. */
static bool plausible_refcnt(const struct python_code *c, const uint8_t *obj)
{
	uint64_t word;

	memcpy(&word, obj, 8);
	if (c->minor >= 14)
		return (uint32_t)word >= 1 && ((word >> 32) & 0xffff) == 0 && (word >> 48) < 0x100;
	return word >= 1 && word <= UINT32_MAX;
}

/* A reference count of 0: an object in its tp_dealloc. */
static bool dying(const uint8_t *obj)
{
	uint32_t count;

	memcpy(&count, obj, sizeof(count));
	return count == 0;
}

/* A str object as UTF-8 (compact strings only, which code objects use);
 * NULL when the object does not look like a live, well-formed str. */
static char *read_str(struct python_code *c, uint64_t obj)
{
	uint8_t hdr[40];
	uint64_t len;
	uint32_t state, kind;
	uint8_t *raw;
	char *out, *p;
	size_t i;

	if (!obj || target_mem_read(c->mem, obj, hdr, sizeof(hdr)))
		return NULL;
	memcpy(&len, hdr + 16, 8);
	memcpy(&state, hdr + 32, 4);
	kind = (state >> 2) & 7;
	if (!plausible_refcnt(c, hdr) || !(state & (1u << 5)) || len > 4096 ||
	    (kind != 1 && kind != 2 && kind != 4))
		return NULL; /* freed, not compact, or not a plausible name */
	raw = malloc(len * kind + 1);
	out = malloc(len * 4 + 1);
	if (!raw || !out ||
	    target_mem_read(c->mem,
			    obj + ((state & (1u << 6)) ? c->l.ascii_size : c->l.compact_size), raw,
			    len * kind)) {
		free(raw);
		free(out);
		return NULL;
	}
	for (p = out, i = 0; i < len; i++) {
		uint32_t cp = kind == 1	  ? raw[i]
			      : kind == 2 ? ((uint16_t *)raw)[i]
					  : ((uint32_t *)raw)[i];

		/* what a live str of this kind cannot hold: its memory was reused */
		if (cp > 0x10ffff || (kind == 1 && (state & (1u << 6)) && cp > 0x7f)) {
			free(raw);
			free(out);
			return NULL;
		}
		put_utf8(&p, cp);
	}
	*p = '\0';
	free(raw);
	return out;
}

/* What identifies the code object in buf: filename and name pointers and
 * first line, as read_code checked them. */
static void code_ident(const struct python_code *c, const uint8_t *buf, uint64_t ident[3])
{
	int32_t first;

	memcpy(&ident[0], buf + c->l.filename, 8);
	memcpy(&ident[1], buf + c->l.name, 8);
	memcpy(&first, buf + c->l.firstlineno, 4);
	ident[2] = (uint32_t)first;
}

static int read_code(struct python_code *c, uint64_t code, struct entry *e)
{
	uint8_t buf[160];
	uint64_t table, tlen, co_name;

	if (target_mem_read(c->mem, code, buf, sizeof(buf)))
		return -EFAULT;
	if (c->code_type && memcmp(buf + 8, &c->code_type, 8))
		return -ESTALE; /* its memory now holds another type of object */
	/* freed since the capture; but a count of 0 with the type intact is a
	 * code object being deallocated, read where the tracer stopped its
	 * process (py_code_dealloc): its fields still hold (the identity
	 * checks below tell it from a reused block) */
	if (!plausible_refcnt(c, buf) && !(c->code_type && dying(buf)))
		return -ESTALE;
	code_ident(c, buf, e->ident);
	memcpy(&table, buf + c->l.linetable, 8);
	memcpy(&co_name, buf + c->l.filename + 8, 8);
	e->capture_ident = e->ident[0] ^ (co_name << 1);
	e->firstlineno = (int32_t)e->ident[2];
	e->filename = read_str(c, e->ident[0]);
	e->function = read_str(c, e->ident[1]);
	if (!e->function) {
		/* co_name/co_qualname is always a str: its memory was reused */
		free(e->filename);
		e->filename = NULL;
		return -ESTALE;
	}
	if (table && !target_mem_read(c->mem, table + 16, &tlen, 8) && tlen < (1 << 24)) {
		e->table = malloc(tlen ? tlen : 1);
		if (e->table && !target_mem_read(c->mem, table + 32, e->table, tlen))
			e->table_len = tlen;
	}
	if (!e->filename)
		e->filename = strdup("<unknown>"); /* as tracemalloc for a non-str filename */
	return e->filename ? 0 : -ENOMEM;
}

int python_code_frame(struct python_code *c, uint64_t code, int64_t instr, uint64_t ident,
		      const char **filename, uint32_t *lineno, const char **function)
{
	struct entry *e = u64_map_get(&c->entries, code);
	int line, err;
	bool added;

	if (!e) {
		struct entry fresh = {0};

		err = read_code(c, code, &fresh);
		if (!err && !(e = u64_map_put(&c->entries, code, &added)))
			err = -ENOMEM;
		if (err) {
			entry_free(&fresh);
			return err;
		}
		*e = fresh;
	}
	if (e->capture_ident != ident)
		return -ESTALE; /* freed, and its memory reused, since the capture */
	line = python_code_line(c->minor, e->table, e->table_len, e->firstlineno, instr);
	*filename = e->filename;
	*lineno = line < 0 ? 0 : (uint32_t)line; /* tracemalloc: negative -> 0 */
	*function = e->function;
	return 0;
}

struct target_mem *python_code_use_mem(struct python_code *c, struct target_mem *mem)
{
	struct target_mem *was = c->mem;

	c->mem = mem;
	return was;
}

void python_code_revalidate(struct python_code *c)
{
	struct u64_map *m = &c->entries;
	/* removal moves entries: collect the keys of the gone, then remove */
	uint64_t *gone = malloc((m->n + 1) * sizeof(*gone));
	size_t ngone = 0;

	if (!gone) {
		/* cannot tell which: forget them all, to be read again */
		forget_all(c);
		u64_map_init(m, sizeof(struct entry));
		return;
	}
	for (size_t i = 0; i < m->cap; i++) {
		struct entry *e = u64_map_value_at(m, i);
		uint8_t buf[160];
		uint64_t now[3];

		if (!m->keys[i])
			continue;
		if (!target_mem_read(c->mem, m->keys[i], buf, sizeof(buf))) {
			code_ident(c, buf, now);
			if (!memcmp(now, e->ident, sizeof(now)))
				continue;
		}
		entry_free(e); /* gone or reused */
		gone[ngone++] = m->keys[i];
	}
	while (ngone > 0)
		u64_map_remove(m, gone[--ngone]);
	free(gone);
}

static int varint(const uint8_t *t, size_t len, size_t *i, uint32_t *out)
{
	uint32_t v = 0, shift = 0;

	while (*i < len) {
		uint8_t b = t[(*i)++];

		v |= (uint32_t)(b & 63) << shift;
		shift += 6;
		if (!(b & 64)) {
			*out = v;
			return 0;
		}
		if (shift > 30)
			return -EINVAL;
	}
	return -EINVAL;
}

static int svarint(const uint8_t *t, size_t len, size_t *i, int32_t *out)
{
	uint32_t v;

	if (varint(t, len, i, &v))
		return -EINVAL;
	*out = (v & 1) ? -(int32_t)(v >> 1) : (int32_t)(v >> 1);
	return 0;
}

/* A line moved by a table's delta: saturated within int32 (a hostile
 * table's deltas could carry it beyond; CPython's never do). */
static int64_t moved(int64_t line, int64_t delta)
{
	line += delta;
	return line > INT32_MAX ? INT32_MAX : line < INT32_MIN ? INT32_MIN : line;
}

int python_code_line(int minor, const uint8_t *t, size_t len, int firstlineno, int64_t instr)
{
	size_t i = 0;

	if (minor <= 9) { /* co_lnotab: (addr delta, line delta) pairs, f_lasti in bytes */
		int64_t addr = 0, line = firstlineno;

		for (i = 0; i + 1 < len; i += 2) {
			addr += t[i];
			if (addr > instr)
				break;
			line = moved(line, (int8_t)t[i + 1]);
		}
		return (int)line;
	}
	if (minor == 10) { /* (start delta, line delta) ranges in bytes; -128 = none */
		int64_t start, end = 0, addr, line = firstlineno, ar_line = -1;

		if (instr < 0)
			return firstlineno;
		if (instr > INT64_MAX / 2)
			return -1; /* beyond any table */
		addr = instr * 2;
		for (i = 0; i + 1 < len; i += 2) {
			start = end;
			end += t[i];
			if ((int8_t)t[i + 1] == -128) {
				ar_line = -1;
			} else {
				line = moved(line, (int8_t)t[i + 1]);
				ar_line = line;
			}
			if (start <= addr && addr < end)
				return (int)ar_line;
		}
		return -1;
	}
	/* 3.11+ location table: entries of (code, length) with line deltas */
	{
		int64_t addr = 0, line = firstlineno;

		if (instr < 0)
			return firstlineno;
		while (i < len) {
			uint8_t b = t[i++];
			int code = (b >> 3) & 15, length = (b & 7) + 1;
			int64_t this_line = line;
			int32_t delta = 0;
			uint32_t skip;

			if (!(b & 128))
				return -1; /* lost sync: not a location table */
			if (code == 15) {
				this_line = -1;
			} else if (code == 14) {
				if (svarint(t, len, &i, &delta) || varint(t, len, &i, &skip) ||
				    varint(t, len, &i, &skip) || varint(t, len, &i, &skip))
					return -1;
				line = moved(line, delta);
				this_line = line;
			} else if (code == 13) {
				if (svarint(t, len, &i, &delta))
					return -1;
				line = moved(line, delta);
				this_line = line;
			} else if (code >= 10) {
				line = moved(line, code - 10);
				this_line = line;
				i += 2;
			} else {
				i += 1;
			}
			if (addr <= instr && instr < addr + length)
				return (int)this_line;
			addr += length;
		}
		return -1;
	}
}
