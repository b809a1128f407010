#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "debuginfo.h"
#include "elfsym.h"
#include "modsym.h"
#include "symbolize.h"
#include "target.h"
#include "util/hash.h"

struct symbolizer {
	pid_t pid;
	Dwfl *dwfl;
	struct target_maps maps; /* executable file mappings seen, merged */
	char *last_maps;	 /* raw text of the last /proc/PID/maps read */
	size_t last_len;
	struct u64_map cache;	  /* return address -> struct entry, its frames */
	struct u64_map mods;	  /* Dwfl_Module * -> struct modsym *, its indexes */
	struct u64_map build_ids; /* Dwfl_Module * -> its build-id (char *, NULL: none) */
	dev_t exe_dev;		  /* the executable, as /proc/PID/exe last showed it */
	ino_t exe_ino;
};

/* A return address's frames, innermost first. */
struct entry {
	uint32_t n;
	struct symbolize_frame *frames;
};

static void free_frames(struct symbolize_frame *f, size_t n);

static const Dwfl_Callbacks callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = debuginfo_dwfl_find,
};

int symbolize_open(pid_t pid, struct symbolizer **out)
{
	struct symbolizer *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->pid = pid;
	s->dwfl = dwfl_begin(&callbacks);
	if (!s->dwfl || u64_map_init(&s->cache, sizeof(struct entry)) ||
	    u64_map_init(&s->mods, sizeof(struct modsym *)) ||
	    u64_map_init(&s->build_ids, sizeof(char *))) {
		symbolize_close(s);
		return -ENOMEM;
	}
	symbolize_refresh(s);
	*out = s;
	return 0;
}

void symbolize_close(struct symbolizer *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->cache.cap; i++) {
		struct entry *e = u64_map_value_at(&s->cache, i);

		if (!s->cache.keys[i])
			continue;
		free_frames(e->frames, e->n);
		free(e->frames);
	}
	u64_map_free(&s->cache);
	for (i = 0; i < s->build_ids.cap; i++)
		if (s->build_ids.keys[i])
			free(*(char **)u64_map_value_at(&s->build_ids, i));
	u64_map_free(&s->build_ids);
	for (i = 0; i < s->mods.cap; i++)
		if (s->mods.keys[i])
			modsym_free(*(struct modsym **)u64_map_value_at(&s->mods, i));
	u64_map_free(&s->mods);
	if (s->dwfl)
		dwfl_end(s->dwfl);
	target_maps_free(&s->maps);
	free(s->last_maps);
	free(s);
}

static bool known_mapping(const struct target_maps *maps, const struct target_mapping *m)
{
	const struct target_mapping *k = target_maps_find(maps, m->start);

	return k && k->start == m->start && k->end == m->end && k->path && m->path &&
	       !strcmp(k->path, m->path);
}

static int cmp_mapping(const void *a, const void *b)
{
	const struct target_mapping *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Which file is the executable: read again whenever the maps change (a
 * launched command is first seen before its exec). */
static void note_executable(struct symbolizer *s)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)s->pid);
	if (!stat(path, &st)) {
		s->exe_dev = st.st_dev;
		s->exe_ino = st.st_ino;
	}
}

/* Mappings stay known after they disappear: a block allocated by a library
 * that was unloaded later still deserves its frame. New ones are added. */
void symbolize_refresh(struct symbolizer *s)
{
	struct target_maps now;
	size_t len = 0, i, j, added = 0;
	char *raw;

	if (!s)
		return;
	raw = target_maps_text(s->pid, &len);

	if (!raw)
		return;
	if (s->last_maps && len == s->last_len && !memcmp(raw, s->last_maps, len)) {
		free(raw);
		return;
	}
	free(s->last_maps);
	s->last_maps = raw;
	s->last_len = len;
	note_executable(s);
	if (target_parse_maps(raw, len, &now))
		return;

	bool *fresh = calloc(now.n ? now.n : 1, sizeof(bool));

	if (!fresh) {
		target_maps_free(&now);
		return;
	}
	/* a file is new when none of its mappings was known */
	for (i = 0; i < now.n; i++) {
		fresh[i] = now.m[i].path != NULL;
		for (j = 0; j < now.n && fresh[i]; j++)
			if (now.m[j].path && !strcmp(now.m[j].path, now.m[i].path) &&
			    known_mapping(&s->maps, &now.m[j]))
				fresh[i] = false;
	}
	for (i = 0; i < now.n; i++) {
		struct target_mapping *m = &now.m[i], *p;

		if (!m->exec || !m->path || known_mapping(&s->maps, m))
			continue;
		p = realloc(s->maps.m, (s->maps.n + 1) * sizeof(*p));
		if (!p)
			break;
		s->maps.m = p;
		p[s->maps.n] = *m;
		p[s->maps.n].path = strdup(m->path);
		s->maps.n++;
		added++;
	}
	if (added) {
		qsort(s->maps.m, s->maps.n, sizeof(*s->maps.m), cmp_mapping);
		dwfl_report_begin_add(s->dwfl);
		for (i = 0; i < now.n; i++) {
			struct target_mapping *m = &now.m[i];
			struct elfsym_file *ef;
			char file[4200];
			uint64_t low = m->start;

			/* Report each new file once, from its offset-0 mapping. */
			if (!fresh[i] || m->offset != 0)
				continue;
			for (j = 0; j < i; j++)
				if (now.m[j].path && !strcmp(now.m[j].path, m->path))
					break;
			if (j < i)
				continue;
			target_file_path(s->pid, m, file, sizeof(file));
			if (elfsym_open(file, &ef))
				continue;
			low -= elfsym_first_load_vaddr(ef);
			elfsym_close(ef);
			dwfl_report_elf(s->dwfl, m->path, file, -1, low, false);
		}
		dwfl_report_end(s->dwfl, NULL, NULL);
	}
	free(fresh);
	target_maps_free(&now);
}

bool symbolize_valid_ip(struct symbolizer *s, uint64_t ip)
{
	const struct target_mapping *m = target_maps_find(&s->maps, ip);

	return m && m->exec;
}

static void free_frames(struct symbolize_frame *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)f[i].filename);
		free((char *)f[i].function);
	}
}

/* The indexes of mod, made on first use; NULL without memory. */
static struct modsym *mod_indexes(struct symbolizer *s, Dwfl_Module *mod)
{
	bool added;
	struct modsym **m = u64_map_put(&s->mods, (uint64_t)(uintptr_t)mod, &added);

	if (!m)
		return NULL;
	if (added && !(*m = modsym_new(mod))) {
		u64_map_remove(&s->mods, (uint64_t)(uintptr_t)mod);
		return NULL;
	}
	return *m;
}

static int resolve(struct symbolizer *s, uint64_t ip, struct entry *e)
{
	uint64_t pc = ip - 1; /* inside the call instruction */
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
	const struct target_mapping *m = target_maps_find(&s->maps, ip);
	struct symbolize_frame f[SYMBOLIZE_MAX_INLINE];
	struct modsym *ms = NULL;
	size_t n = 0, i;
	char buf[4300];

	memset(f, 0, sizeof(f));
	if (mod && !(ms = mod_indexes(s, mod)))
		return -ENOMEM;
	if (mod)
		n = modsym_frames(ms, pc, f) - 1;
	if (!f[0].filename) {
		if (m && m->path)
			snprintf(buf, sizeof(buf), "%s+0x%llx", m->path,
				 (unsigned long long)(pc - m->start + m->offset));
		else
			snprintf(buf, sizeof(buf), "[unknown]+0x%llx", (unsigned long long)pc);
		f[0].filename = strdup(buf);
	}
	/* an inlined call without its line keeps the address's place */
	for (i = 1; i <= n; i++)
		if (!f[i].filename) {
			f[i].filename = strdup(f[i - 1].filename);
			f[i].lineno = 0;
		}
	n++;
	for (i = 0; i < n; i++)
		if (!f[i].filename) {
			free_frames(f, n);
			return -ENOMEM;
		}
	e->frames = malloc(n * sizeof(*f));
	if (!e->frames) {
		free_frames(f, n);
		return -ENOMEM;
	}
	memcpy(e->frames, f, n * sizeof(*f));
	e->n = (uint32_t)n;
	return 0;
}

/* The build-id of the file a module was reported from, in lowercase hex
 * (readelf -n's form); NULL when it has none. Read once per module. */
static const char *module_build_id(struct symbolizer *s, Dwfl_Module *mod)
{
	const unsigned char *bits;
	GElf_Addr vaddr;
	char **slot, *hex;
	bool added;
	int n;

	slot = u64_map_put(&s->build_ids, (uint64_t)(uintptr_t)mod, &added);
	if (!slot || !added)
		return slot ? *slot : NULL;
	n = dwfl_module_build_id(mod, &bits, &vaddr);
	if (n <= 0 || n > 64 || !(hex = malloc((size_t)n * 2 + 1)))
		return NULL;
	for (int i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", bits[i]);
	*slot = hex;
	return hex;
}

static void describe_mapping(struct symbolizer *s, const struct target_mapping *m,
			     struct symbolize_mapping *out)
{
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, m->start);

	*out = (struct symbolize_mapping){
	    .start = m->start,
	    .limit = m->end,
	    .offset = m->offset,
	    .path = m->path,
	    .build_id = mod ? module_build_id(s, mod) : NULL,
	    .main = s->exe_ino && m->dev == s->exe_dev && m->ino == s->exe_ino,
	};
}

bool symbolize_mapping_at(struct symbolizer *s, size_t i, struct symbolize_mapping *out)
{
	if (i >= s->maps.n)
		return false;
	describe_mapping(s, &s->maps.m[i], out);
	return true;
}

/* Where the frames of a return address are: the mapping holding it, and
 * the return address's offset in the function the symbol table names (the
 * outermost frame's; every inlined frame is at the same address). */
static void place(struct symbolizer *s, uint64_t ip, struct entry *e)
{
	uint64_t pc = ip - 1;
	const struct target_mapping *m = target_maps_find(&s->maps, pc);
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
	struct symbolize_mapping where = {0};
	struct modsym *ms = mod ? mod_indexes(s, mod) : NULL;
	Dwarf_Addr start = 0;
	uint64_t offset = 0;

	if (m && m->path)
		describe_mapping(s, m, &where);
	if (ms && modsym_function_at(ms, pc, &start) && start <= pc)
		offset = pc - start + 1;
	for (uint32_t i = 0; i < e->n; i++) {
		e->frames[i].pc = pc;
		e->frames[i].mapping = where;
		e->frames[i].function_offset = e->frames[i].function ? offset : 0;
	}
}

int symbolize_return_address(struct symbolizer *s, uint64_t ip,
			     const struct symbolize_frame **frames)
{
	struct entry *e;
	bool added;

	if (!ip)
		return -ENOENT;
	e = u64_map_put(&s->cache, ip, &added);
	if (!e)
		return -ENOMEM;
	if (added) {
		if (resolve(s, ip, e)) {
			u64_map_remove(&s->cache, ip);
			return -ENOMEM;
		}
		place(s, ip, e);
	}
	*frames = e->frames;
	return (int)e->n;
}
