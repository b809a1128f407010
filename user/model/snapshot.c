#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/snapshot.h"
#include "util/hash.h"
#include "util/util.h"

struct intern {
	struct hash_index strings, frames, tracebacks, mappings;
};

static int grow(void **arr, uint32_t *cap, size_t elem, uint64_t need)
{
	uint64_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? (uint64_t)*cap * 2 : 64;
	while (ncap < need)
		ncap *= 2;
	if (ncap > UINT32_MAX)
		return -E2BIG;
	p = realloc(*arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = (uint32_t)ncap;
	return 0;
}

struct snapshot *snapshot_new(void)
{
	struct snapshot *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->intern = calloc(1, sizeof(struct intern));
	if (!s->intern) {
		free(s);
		return NULL;
	}
	s->traceback_limit = 1;
	return s;
}

void snapshot_free(struct snapshot *s)
{
	struct intern *in;
	uint32_t i;

	if (!s)
		return;
	in = s->intern;
	if (in) {
		hash_index_free(&in->strings);
		hash_index_free(&in->frames);
		hash_index_free(&in->tracebacks);
		hash_index_free(&in->mappings);
		free(in);
	}
	for (i = 0; i < s->nstrings; i++)
		free(s->strings[i]);
	free(s->strings);
	free(s->frames);
	free(s->frame_ids);
	free(s->tracebacks);
	free(s->mappings);
	free(s->traces);
	free(s->sites);
	free(s->processes);
	free(s->counters);
	free(s);
}

static bool string_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct snapshot *s = ctx;

	return !strcmp(s->strings[idx], key);
}

int64_t snapshot_intern_string(struct snapshot *s, const char *str)
{
	struct intern *in = s->intern;
	uint64_t h = hash_str(str);
	size_t pos;
	int64_t idx;
	int err;

	if ((err = hash_index_reserve(&in->strings)))
		return err;
	idx = hash_index_find(&in->strings, h, string_eq, s, str, &pos);
	if (idx >= 0)
		return idx;
	if ((err = grow((void **)&s->strings, &s->cap_strings, sizeof(char *), s->nstrings + 1ull)))
		return err;
	s->strings[s->nstrings] = strdup(str);
	if (!s->strings[s->nstrings])
		return -ENOMEM;
	hash_index_put(&in->strings, pos, h, s->nstrings);
	return s->nstrings++;
}

static bool frame_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct snapshot *s = ctx;

	return !memcmp(&s->frames[idx], key, sizeof(struct snapshot_frame));
}

/* A frame without a mapping has no address; one with holds its address. */
static bool place_ok(const struct snapshot *s, uint32_t mapping, uint64_t address,
		     uint64_t function_offset)
{
	if (mapping == SNAPSHOT_NO_MAPPING)
		return !address && !function_offset;
	return mapping < s->nmappings && address >= s->mappings[mapping].start &&
	       address < s->mappings[mapping].limit;
}

int64_t snapshot_intern_native_frame(struct snapshot *s, const char *filename, uint32_t lineno,
				     const char *function, uint32_t mapping, uint64_t address,
				     uint64_t function_offset)
{
	struct intern *in = s->intern;
	struct snapshot_frame f = {.lineno = lineno,
				   .function = SNAPSHOT_NO_STRING,
				   .mapping = mapping,
				   .address = address,
				   .function_offset = function_offset};
	int64_t idx;
	uint64_t h;
	size_t pos;
	int err;

	if (!place_ok(s, mapping, address, function_offset))
		return -EINVAL;
	idx = snapshot_intern_string(s, filename ? filename : "<unknown>");
	if (idx < 0)
		return idx;
	f.filename = (uint32_t)idx;
	if (function) {
		idx = snapshot_intern_string(s, function);
		if (idx < 0)
			return idx;
		f.function = (uint32_t)idx;
	}
	h = hash_mix(hash_mix(hash_mix(0, f.filename), f.lineno), f.function);
	h = hash_mix(hash_mix(hash_mix(h, f.mapping), f.address), f.function_offset);
	if ((err = hash_index_reserve(&in->frames)))
		return err;
	idx = hash_index_find(&in->frames, h, frame_eq, s, &f, &pos);
	if (idx >= 0)
		return idx;
	if ((err = grow((void **)&s->frames, &s->cap_frames, sizeof(f), s->nframes + 1ull)))
		return err;
	s->frames[s->nframes] = f;
	hash_index_put(&in->frames, pos, h, s->nframes);
	return s->nframes++;
}

int64_t snapshot_intern_frame(struct snapshot *s, const char *filename, uint32_t lineno,
			      const char *function)
{
	return snapshot_intern_native_frame(s, filename, lineno, function, SNAPSHOT_NO_MAPPING, 0,
					    0);
}

static bool mapping_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct snapshot *s = ctx;

	return !memcmp(&s->mappings[idx], key, sizeof(struct snapshot_mapping));
}

int64_t snapshot_intern_mapping(struct snapshot *s, const char *path, const char *build_id,
				uint64_t start, uint64_t limit, uint64_t file_offset)
{
	struct intern *in = s->intern;
	struct snapshot_mapping m = {.start = start,
				     .limit = limit,
				     .file_offset = file_offset,
				     .build_id = SNAPSHOT_NO_STRING};
	int64_t idx;
	uint64_t h;
	size_t pos;
	int err;

	if (start >= limit)
		return -EINVAL;
	idx = snapshot_intern_string(s, path ? path : "");
	if (idx < 0)
		return idx;
	m.path = (uint32_t)idx;
	if (build_id) {
		idx = snapshot_intern_string(s, build_id);
		if (idx < 0)
			return idx;
		m.build_id = (uint32_t)idx;
	}
	h = hash_mix(hash_mix(hash_mix(hash_mix(hash_mix(0, start), limit), file_offset), m.path),
		     m.build_id);
	if ((err = hash_index_reserve(&in->mappings)))
		return err;
	idx = hash_index_find(&in->mappings, h, mapping_eq, s, &m, &pos);
	if (idx >= 0)
		return idx;
	if ((err = grow((void **)&s->mappings, &s->cap_mappings, sizeof(m), s->nmappings + 1ull)))
		return err;
	s->mappings[s->nmappings] = m;
	hash_index_put(&in->mappings, pos, h, s->nmappings);
	return s->nmappings++;
}

struct tb_key {
	const uint32_t *ids;
	uint32_t n, total;
};

static bool traceback_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct snapshot *s = ctx;
	const struct tb_key *k = key;
	const struct snapshot_traceback *tb = &s->tracebacks[idx];

	return tb->nframe == k->n && tb->total_nframe == k->total &&
	       (!k->n || !memcmp(&s->frame_ids[tb->first], k->ids, k->n * sizeof(uint32_t)));
}

int64_t snapshot_intern_traceback(struct snapshot *s, const uint32_t *frame_ids, uint32_t nframe,
				  uint32_t total_nframe)
{
	struct intern *in = s->intern;
	struct tb_key k = {frame_ids, nframe, total_nframe};
	uint64_t h = hash_mix(0, total_nframe);
	size_t pos;
	int64_t idx;
	uint32_t i;
	int err;

	for (i = 0; i < nframe; i++) {
		if (frame_ids[i] >= s->nframes)
			return -EINVAL;
		h = hash_mix(h, frame_ids[i]);
	}
	if ((err = hash_index_reserve(&in->tracebacks)))
		return err;
	idx = hash_index_find(&in->tracebacks, h, traceback_eq, s, &k, &pos);
	if (idx >= 0)
		return idx;
	if ((err = grow((void **)&s->frame_ids, &s->cap_frame_ids, sizeof(uint32_t),
			(uint64_t)s->nframe_ids + nframe)) ||
	    (err = grow((void **)&s->tracebacks, &s->cap_tracebacks,
			sizeof(struct snapshot_traceback), s->ntracebacks + 1ull)))
		return err;
	if (nframe) /* frame_ids may be NULL for an empty traceback */
		memcpy(&s->frame_ids[s->nframe_ids], frame_ids, nframe * sizeof(uint32_t));
	s->tracebacks[s->ntracebacks] = (struct snapshot_traceback){
	    .first = s->nframe_ids, .nframe = nframe, .total_nframe = total_nframe};
	s->nframe_ids += nframe;
	hash_index_put(&in->tracebacks, pos, h, s->ntracebacks);
	return s->ntracebacks++;
}

int snapshot_add_trace(struct snapshot *s, uint64_t address, uint64_t size, uint32_t domain,
		       uint32_t traceback)
{
	if (traceback >= s->ntracebacks)
		return -EINVAL;
	if (array_reserve((void **)&s->traces, &s->cap_traces, sizeof(*s->traces), s->ntraces + 1))
		return -ENOMEM;
	s->traces[s->ntraces++] = (struct snapshot_trace){
	    .address = address, .size = size, .domain = domain, .traceback = traceback};
	return 0;
}

int64_t snapshot_add_process(struct snapshot *s, const struct snapshot_process *p)
{
	int err = grow((void **)&s->processes, &s->cap_processes, sizeof(*p),
		       (uint64_t)s->nprocesses + 1);

	if (err)
		return err;
	s->processes[s->nprocesses] = *p;
	return s->nprocesses++;
}

int snapshot_add_trace_of(struct snapshot *s, const struct snapshot_trace *t, bool ages)
{
	if (t->traceback >= s->ntracebacks ||
	    (t->process && t->process >= s->nprocesses))
		return -EINVAL;
	if (array_reserve((void **)&s->traces, &s->cap_traces, sizeof(*s->traces), s->ntraces + 1))
		return -ENOMEM;
	s->traces[s->ntraces++] = *t;
	if (ages)
		s->ages_known = true;
	return 0;
}

int snapshot_add_aged_trace(struct snapshot *s, uint64_t address, uint64_t size, uint32_t domain,
			    uint32_t traceback, uint64_t age_ns)
{
	int err = snapshot_add_trace(s, address, size, domain, traceback);

	if (err)
		return err;
	s->traces[s->ntraces - 1].age_ns = age_ns;
	s->ages_known = true;
	return 0;
}

/* Sites in (traceback, domain, process) order. */
static int site_order(const struct snapshot_site *a, uint32_t traceback, uint32_t domain,
		      uint32_t process)
{
	if (a->traceback != traceback)
		return a->traceback < traceback ? -1 : 1;
	if (a->domain != domain)
		return a->domain < domain ? -1 : 1;
	return a->process < process ? -1 : a->process > process;
}

/* Where (traceback, domain, process) is in the sorted sites, or would go. */
static uint32_t site_position(const struct snapshot *s, uint32_t traceback, uint32_t domain,
			      uint32_t process)
{
	uint32_t lo = 0, hi = s->nsites;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (site_order(&s->sites[mid], traceback, domain, process) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct snapshot_site *snapshot_find_site(const struct snapshot *s, uint32_t traceback,
					       uint32_t domain, uint32_t process)
{
	uint32_t i = site_position(s, traceback, domain, process);

	if (i < s->nsites && !site_order(&s->sites[i], traceback, domain, process))
		return &s->sites[i];
	return NULL;
}

int snapshot_add_site(struct snapshot *s, const struct snapshot_site *site)
{
	uint32_t i;
	int err;

	if (site->traceback >= s->ntracebacks || (site->process && site->process >= s->nprocesses))
		return -EINVAL;
	s->sites_known = true;
	i = site_position(s, site->traceback, site->domain, site->process);
	if (i < s->nsites && !site_order(&s->sites[i], site->traceback, site->domain, site->process)) {
		struct snapshot_site *t = &s->sites[i];

		t->alloc_count += site->alloc_count;
		t->alloc_bytes += site->alloc_bytes;
		t->temp_count += site->temp_count;
		t->temp_bytes += site->temp_bytes;
		t->peak_count += site->peak_count;
		t->peak_bytes += site->peak_bytes;
		return 0;
	}
	/* sites come mostly in order (by traceback, as interned): appending
	 * is the common case */
	if ((err = grow((void **)&s->sites, &s->cap_sites, sizeof(*s->sites),
			(uint64_t)s->nsites + 1)))
		return err;
	memmove(&s->sites[i + 1], &s->sites[i], (s->nsites - i) * sizeof(*s->sites));
	s->sites[i] = *site;
	s->nsites++;
	return 0;
}

static int cmp_site(const void *pa, const void *pb)
{
	const struct snapshot_site *b = pb;

	return site_order(pa, b->traceback, b->domain, b->process);
}

int snapshot_add_sites(struct snapshot *s, struct snapshot_site *sites, size_t n)
{
	int err = 0;

	s->sites_known = true;
	qsort(sites, n, sizeof(*sites), cmp_site);
	for (size_t i = 0; i < n && !err; i++)
		err = snapshot_add_site(s, &sites[i]);
	return err;
}

int snapshot_alloc_totals(const struct snapshot *s, uint64_t **objects, uint64_t **bytes)
{
	size_t n = s->ntracebacks ? s->ntracebacks : 1;

	*objects = calloc(n, sizeof(uint64_t));
	*bytes = calloc(n, sizeof(uint64_t));
	if (!*objects || !*bytes) {
		free(*objects);
		free(*bytes);
		*objects = *bytes = NULL;
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->nsites; i++) {
		(*objects)[s->sites[i].traceback] += s->sites[i].alloc_count;
		(*bytes)[s->sites[i].traceback] += s->sites[i].alloc_bytes;
	}
	return 0;
}

int snapshot_set_counter(struct snapshot *s, const char *name, uint64_t value)
{
	int64_t idx = snapshot_intern_string(s, name);
	uint32_t i;
	int err;

	if (idx < 0)
		return (int)idx;
	for (i = 0; i < s->ncounters; i++)
		if (s->counters[i].name == (uint32_t)idx) {
			s->counters[i].value = value;
			return 0;
		}
	if ((err = grow((void **)&s->counters, &s->cap_counters, sizeof(struct snapshot_counter),
			s->ncounters + 1ull)))
		return err;
	s->counters[s->ncounters++] =
	    (struct snapshot_counter){.name = (uint32_t)idx, .value = value};
	return 0;
}

const char *snapshot_class_name(enum snapshot_domain_class c)
{
	static const char *const names[SNAPSHOT_NCLASSES] = {
	    [SNAPSHOT_CLASS_PYTHON] = "python",
	    [SNAPSHOT_CLASS_NATIVE] = "native",
	};

	return (unsigned)c < SNAPSHOT_NCLASSES ? names[c] : NULL;
}

bool snapshot_traced_memory(const struct snapshot *s, uint64_t *current, uint64_t *peak)
{
	const struct snapshot_domain_memory *py = &s->domain_memory[SNAPSHOT_CLASS_PYTHON];

	if (s->domain_memory_known && (py->current || py->peak)) {
		*current = py->current;
		*peak = py->peak;
		return true;
	}
	*current = s->traced_current;
	*peak = s->traced_peak;
	return false;
}

const char *snapshot_domain_name(uint32_t domain, char *buf)
{
	if (domain == SNAPSHOT_DOMAIN_PYTHON)
		return "python";
	if (domain == SNAPSHOT_DOMAIN_LIBC)
		return "libc";
	if (domain == SNAPSHOT_DOMAIN_MMAP)
		return "mmap";
	snprintf(buf, 16, "%u", domain);
	return buf;
}

int snapshot_parse_domain(const char *name, uint32_t *domain)
{
	char *end;
	unsigned long v;

	if (!strcmp(name, "python")) {
		*domain = SNAPSHOT_DOMAIN_PYTHON;
		return 0;
	}
	if (!strcmp(name, "libc")) {
		*domain = SNAPSHOT_DOMAIN_LIBC;
		return 0;
	}
	if (!strcmp(name, "mmap")) {
		*domain = SNAPSHOT_DOMAIN_MMAP;
		return 0;
	}
	errno = 0;
	v = strtoul(name, &end, 10);
	if (errno || end == name || *end || v > UINT32_MAX || name[0] == '-')
		return -EINVAL;
	*domain = (uint32_t)v;
	return 0;
}

void snapshot_budget_line(const struct snapshot *s, char *out, size_t len)
{
	const struct snapshot_budget *b = &s->budget;

	if (!len)
		return;
	out[0] = '\0';
	if (!b->on)
		return;
	snprintf(out, len,
		 "budget %.3g%%: allocations traced in windows, %.1f%% of the time (%llu windows), "
		 "estimated overhead %.2f%%; alloc figures count the windows' allocations "
		 "(unscaled: divide by the coverage %.4f to estimate all); %s",
		 b->ratio * 100, b->coverage * 100, (unsigned long long)b->windows,
		 b->overhead * 100, b->coverage,
		 b->frees_windowed
		     ? "frees in windows too (they alone cost more than the budget): the live set "
		       "is the last window's blocks still live at its end"
		     : "the live set is the blocks allocated within windows and not freed since");
}
