#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debuginfo.h"
#include "elfsym.h"
#include "symbolize.h"
#include "target.h"
#include "util/hash.h"

char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

struct symbolizer {
	pid_t pid;
	Dwfl *dwfl;
	struct target_maps maps;  /* executable file mappings seen, merged */
	char *last_maps;	  /* raw text of the last /proc/PID/maps read */
	size_t last_len;
	struct u64_map cache; /* return address -> struct symbolize_frame */
};

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
	if (!s->dwfl || u64_map_init(&s->cache, sizeof(struct symbolize_frame))) {
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
		struct symbolize_frame *f = u64_map_value_at(&s->cache, i);

		if (!s->cache.keys[i])
			continue;
		free((char *)f->filename);
		free((char *)f->function);
	}
	u64_map_free(&s->cache);
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

/* Mappings stay known after they disappear: a block allocated by a library
 * that was unloaded later still deserves its frame. New ones are added. */
void symbolize_refresh(struct symbolizer *s)
{
	struct target_maps now;
	size_t len = 0, i, j, added = 0;
	char *raw = target_maps_text(s->pid, &len);

	if (!raw)
		return;
	if (s->last_maps && len == s->last_len && !memcmp(raw, s->last_maps, len)) {
		free(raw);
		return;
	}
	free(s->last_maps);
	s->last_maps = raw;
	s->last_len = len;
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

static char *demangle(const char *name)
{
	int status = -1;
	char *d;

	if (!name)
		return NULL;
	if (name[0] == '_' && name[1] == 'Z') {
		d = __cxa_demangle(name, NULL, NULL, &status);
		if (d && status == 0)
			return d;
		free(d);
	}
	return strdup(name);
}

/* A relative source name is relative to its compilation directory. */
static char *absolute_source(Dwfl_Module *mod, uint64_t pc, const char *src)
{
	Dwarf_Addr bias;
	Dwarf_Die *cu;
	Dwarf_Attribute attr;
	const char *dir;
	char *out;

	if (src[0] == '/')
		return strdup(src);
	cu = dwfl_module_addrdie(mod, pc, &bias);
	dir = cu ? dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr)) : NULL;
	if (!dir || asprintf(&out, "%s/%s", dir, src) < 0)
		return strdup(src);
	return out;
}

static void resolve(struct symbolizer *s, uint64_t ip, struct symbolize_frame *f)
{
	uint64_t pc = ip - 1; /* inside the call instruction */
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
	const struct target_mapping *m = target_maps_find(&s->maps, ip);
	char buf[4300];

	memset(f, 0, sizeof(*f));
	if (mod) {
		Dwfl_Line *line = dwfl_module_getsrc(mod, pc);
		const char *name = dwfl_module_addrname(mod, pc);
		int lineno = 0;

		f->function = demangle(name);
		if (line) {
			const char *src = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);

			if (src && lineno > 0) {
				f->filename = absolute_source(mod, pc, src);
				f->lineno = (uint32_t)lineno;
			}
		}
	}
	if (!f->filename) {
		if (m && m->path)
			snprintf(buf, sizeof(buf), "%s+0x%llx", m->path,
				 (unsigned long long)(pc - m->start + m->offset));
		else
			snprintf(buf, sizeof(buf), "[unknown]+0x%llx", (unsigned long long)pc);
		f->filename = strdup(buf);
	}
}

int symbolize_return_address(struct symbolizer *s, uint64_t ip, struct symbolize_frame *out)
{
	struct symbolize_frame *f;
	bool added;

	if (!ip)
		return -ENOENT;
	f = u64_map_put(&s->cache, ip, &added);
	if (!f)
		return -ENOMEM;
	if (added)
		resolve(s, ip, f);
	*out = *f;
	return out->filename ? 0 : -ENOMEM;
}
