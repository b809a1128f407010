#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "model/delta.h"
#include "report/pprof.h"
#include "util/hash.h"

/* profile.proto field numbers */
enum {
	PROFILE_SAMPLE_TYPE = 1,
	PROFILE_SAMPLE = 2,
	PROFILE_MAPPING = 3,
	PROFILE_LOCATION = 4,
	PROFILE_FUNCTION = 5,
	PROFILE_STRING_TABLE = 6,
	PROFILE_TIME_NANOS = 9,
	PROFILE_DURATION_NANOS = 10,
	PROFILE_PERIOD_TYPE = 11,
	PROFILE_PERIOD = 12,
	PROFILE_COMMENT = 13,
	PROFILE_DEFAULT_SAMPLE_TYPE = 14,
	VALUE_TYPE_TYPE = 1,
	VALUE_TYPE_UNIT = 2,
	SAMPLE_LOCATION_ID = 1,
	SAMPLE_VALUE = 2,
	SAMPLE_LABEL = 3,
	LABEL_KEY = 1,
	LABEL_STR = 2,
	MAPPING_ID = 1,
	MAPPING_MEMORY_START = 2,
	MAPPING_MEMORY_LIMIT = 3,
	MAPPING_FILE_OFFSET = 4,
	MAPPING_FILENAME = 5,
	MAPPING_BUILD_ID = 6,
	MAPPING_HAS_FUNCTIONS = 7,
	MAPPING_HAS_FILENAMES = 8,
	MAPPING_HAS_LINE_NUMBERS = 9,
	LOCATION_ID = 1,
	LOCATION_MAPPING_ID = 2,
	LOCATION_ADDRESS = 3,
	LOCATION_LINE = 4,
	LINE_FUNCTION_ID = 1,
	LINE_LINE = 2,
	FUNCTION_ID = 1,
	FUNCTION_NAME = 2,
	FUNCTION_SYSTEM_NAME = 3,
	FUNCTION_FILENAME = 4,
};

enum { WIRE_VARINT = 0, WIRE_BYTES = 2 };

struct buf {
	unsigned char *p;
	size_t n, cap;
	int err;
};

static void put(struct buf *b, const void *data, size_t n)
{
	if (b->err)
		return;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		void *p;

		while (cap < b->n + n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
}

static void varint(struct buf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	put(b, tmp, n);
}

static void field_varint(struct buf *b, unsigned field, uint64_t v)
{
	if (!v)
		return; /* proto3: zero is the default and is left out */
	varint(b, (uint64_t)field << 3 | WIRE_VARINT);
	varint(b, v);
}

static void field_bytes(struct buf *b, unsigned field, const void *data, size_t n)
{
	varint(b, (uint64_t)field << 3 | WIRE_BYTES);
	varint(b, n);
	put(b, data, n);
}

/* A nested message: encoded in msg, appended here, msg emptied. */
static void field_message(struct buf *b, unsigned field, struct buf *msg)
{
	if (msg->err)
		b->err = msg->err;
	field_bytes(b, field, msg->p, msg->n);
	msg->n = 0;
}

/* The profile's string table: index 0 is "" by the format's rule. */
struct strtab {
	const char **s;
	uint32_t n, cap;
	int64_t *of_snapshot; /* snapshot string index -> table index, or -1 */
};

static int64_t intern(struct strtab *t, const char *s)
{
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 64;
		const char **p = realloc(t->s, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->s = p;
		t->cap = cap;
	}
	t->s[t->n] = s;
	return t->n++;
}

static int64_t snapshot_str(struct strtab *t, const struct snapshot *s, uint32_t idx)
{
	if (idx >= s->nstrings)
		return 0;
	if (t->of_snapshot[idx] < 0)
		t->of_snapshot[idx] = intern(t, s->strings[idx]);
	return t->of_snapshot[idx];
}

/* The label value of a domain: "python", "libc" or its number, each
 * interned once (the table keeps a copy). */
struct domain_name {
	uint32_t domain;
	int64_t str;
	char *name;
};

static int64_t domain_string(struct strtab *t, struct domain_name **names, uint32_t *n,
			     uint32_t domain)
{
	struct domain_name *p;
	char buf[16];
	uint32_t i;

	for (i = 0; i < *n; i++)
		if ((*names)[i].domain == domain)
			return (*names)[i].str;
	p = realloc(*names, (*n + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	*names = p;
	p[*n].domain = domain;
	p[*n].name = strdup(snapshot_domain_name(domain, buf));
	if (!p[*n].name)
		return -ENOMEM;
	p[*n].str = intern(t, p[*n].name);
	if (p[*n].str < 0) {
		free(p[*n].name);
		return -ENOMEM;
	}
	return p[(*n)++].str;
}

/* One sample: a traceback in a domain, its traces summed (a delta's
 * earlier traces negatively). */
struct sample {
	uint32_t traceback, domain;
	uint32_t process; /* snapshot_trace.process: its pid and comm label it */
	int64_t count, size;
	int64_t alloc_count, alloc_size; /* since tracing began: the site's */
};

/* The sample types, in Go's heap profile's order. alloc_* are every block
 * allocated since tracing began, freed or not, from the snapshot's sites
 * (the probes count them per site); a snapshot without sites (a file from
 * an older tracer) and a delta profile have inuse_* only: a profile with
 * made-up alloc_* figures would mislead. */
enum sample_value { ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE, NVALUES };

static const struct {
	const char *type, *unit;
} sample_types[NVALUES] = {
    [ALLOC_OBJECTS] = {"alloc_objects", "count"},
    [ALLOC_SPACE] = {"alloc_space", "bytes"},
    [INUSE_OBJECTS] = {"inuse_objects", "count"},
    [INUSE_SPACE] = {"inuse_space", "bytes"},
};

static bool has_alloc_counts(const struct snapshot *s, const struct pprof_options *o)
{
	return s->sites_known && !o->delta;
}

static int64_t sample_value(const struct sample *x, enum sample_value v)
{
	switch (v) {
	case ALLOC_OBJECTS:
		return x->alloc_count;
	case ALLOC_SPACE:
		return x->alloc_size;
	case INUSE_OBJECTS:
		return x->count;
	case INUSE_SPACE:
		return x->size;
	default:
		return 0;
	}
}

static bool sample_empty(const struct sample *x)
{
	return !x->count && !x->size && !x->alloc_count && !x->alloc_size;
}

static int cmp_sample(const void *a, const void *b)
{
	const struct sample *x = a, *y = b;

	if (x->traceback != y->traceback)
		return x->traceback < y->traceback ? -1 : 1;
	if (x->domain != y->domain)
		return x->domain < y->domain ? -1 : 1;
	return x->process < y->process ? -1 : x->process > y->process;
}

static int gzip_to(FILE *out, const struct buf *b)
{
	unsigned char chunk[65536];
	z_stream z = {0};
	int rc;

	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -ENOMEM;
	z.next_in = b->p;
	z.avail_in = (uInt)b->n;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		rc = deflate(&z, Z_FINISH);
		if (rc == Z_STREAM_ERROR)
			break;
		if (fwrite(chunk, 1, sizeof(chunk) - z.avail_out, out) !=
		    sizeof(chunk) - z.avail_out) {
			deflateEnd(&z);
			return -EIO;
		}
	} while (rc != Z_STREAM_END);
	deflateEnd(&z);
	return rc == Z_STREAM_END ? 0 : -EIO;
}

enum { HAVE_FUNCTIONS = 1, HAVE_LINES = 2 };

int pprof_write(const struct snapshot *s, FILE *out)
{
	return pprof_write_with(s, &(struct pprof_options){0}, out);
}

int pprof_write_with(const struct snapshot *s, const struct pprof_options *o, FILE *out)
{
	struct buf prof = {0}, msg = {0}, sub = {0}, packed = {0};
	struct strtab st = {0};
	struct sample *samples = NULL;
	uint64_t nsamples = 0, i;
	uint32_t *func_of_frame = NULL, nfunc = 0, ndomains = 0;
	struct domain_name *domains = NULL;
	/* (name, file) string indices + 1 -> function id; Python's, native's */
	struct u64_map funcs[2] = {{0}};
	unsigned char *have = NULL; /* per mapping: HAVE_* of its frames */
	int64_t str_type[NVALUES], str_unit[NVALUES], str_bytes, str_space, str_domain;
	int64_t str_pid = 0, str_comm = 0, str_budget = 0, str_cgroup = 0;
	/* per process (one for a snapshot of one process): its labels' values,
	 * 0 for none; pids holds their text */
	uint32_t nlabelled = s->nprocesses ? s->nprocesses : 1;
	int64_t *pid_value = NULL, *comm_value = NULL, *cgroup_value = NULL;
	char (*pids)[16] = NULL, comm[SNAPSHOT_COMM_LEN], budget[512];
	bool wanted[NVALUES] = {[INUSE_OBJECTS] = true, [INUSE_SPACE] = true};
	int err = 0;

	bool alloc_counts = has_alloc_counts(s, o);
	uint64_t nin = s->ntraces + (alloc_counts ? s->nsites : 0);

	if (nin > (uint64_t)SIZE_MAX / sizeof(*samples) - 1) /* 32-bit hosts */
		return -E2BIG;
	st.of_snapshot = malloc((s->nstrings + 1) * sizeof(int64_t));
	samples = malloc((nin + 1) * sizeof(*samples));
	func_of_frame = calloc(s->nframes + 1, sizeof(*func_of_frame));
	pid_value = calloc(nlabelled, sizeof(*pid_value));
	comm_value = calloc(nlabelled, sizeof(*comm_value));
	cgroup_value = calloc(nlabelled, sizeof(*cgroup_value));
	pids = calloc(nlabelled, sizeof(*pids));
	if (!st.of_snapshot || !samples || !func_of_frame || !pid_value || !comm_value || !pids ||
	    !cgroup_value) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < s->nstrings; i++)
		st.of_snapshot[i] = -1;
	intern(&st, "");
	wanted[ALLOC_OBJECTS] = wanted[ALLOC_SPACE] = alloc_counts;
	for (int v = 0; v < NVALUES; v++) {
		str_type[v] = wanted[v] ? intern(&st, sample_types[v].type) : 0;
		str_unit[v] = wanted[v] ? intern(&st, sample_types[v].unit) : 0;
	}
	str_bytes = str_unit[INUSE_SPACE];
	str_space = intern(&st, "space");
	str_domain = intern(&st, "domain");
	snapshot_budget_line(s, budget, sizeof(budget));
	if (budget[0]) /* --budget: what the figures cover, as the profile's comment */
		str_budget = intern(&st, budget);
	if (str_budget < 0) {
		err = -ENOMEM;
		goto out;
	}
	str_cgroup = intern(&st, "cgroup");
	/* each trace's process labels its samples; a snapshot of one process's
	 * target labels them all */
	if (!s->nprocesses && s->target.pid) {
		snprintf(pids[0], sizeof(pids[0]), "%d", (int)s->target.pid);
		str_pid = intern(&st, "pid");
		pid_value[0] = intern(&st, pids[0]);
		str_comm = intern(&st, "comm");
		comm_value[0] = intern(&st, snapshot_comm(s, comm));
		if (s->target.cgroup[0])
			cgroup_value[0] = intern(&st, s->target.cgroup);
	} else if (s->nprocesses) {
		str_pid = intern(&st, "pid");
		str_comm = intern(&st, "comm");
	}
	for (i = 0; i < s->nprocesses && str_pid >= 0 && str_comm >= 0; i++) {
		const struct snapshot_process *p = &s->processes[i];

		snprintf(pids[i], sizeof(pids[i]), "%d", (int)p->pid);
		pid_value[i] = intern(&st, pids[i]);
		comm_value[i] = snapshot_str(&st, s, p->comm); /* 0: none */
		cgroup_value[i] = snapshot_str(&st, s, p->cgroup);
		if (pid_value[i] < 0 || comm_value[i] < 0 || cgroup_value[i] < 0)
			break;
	}
	if (str_domain < 0 || str_pid < 0 || str_comm < 0 || str_cgroup < 0 || pid_value[0] < 0 ||
	    comm_value[0] < 0 || cgroup_value[0] < 0 || (i < s->nprocesses)) {
		err = -ENOMEM;
		goto out;
	}

	/* samples: traces grouped by (traceback, domain); a delta's earlier
	 * traces count negatively, and what comes to nothing is dropped */
	for (i = 0; i < s->ntraces; i++) {
		int64_t sign = o->delta && i >= o->subtract_from ? -1 : 1;

		samples[i] = (struct sample){s->traces[i].traceback, s->traces[i].domain,
					     s->traces[i].process, sign,
					     sign * (int64_t)s->traces[i].size};
	}
	/* every site, live or not: what was allocated there since tracing
	 * began (a site whose blocks are all freed is a sample of alloc_* only) */
	for (i = s->ntraces; i < nin; i++) {
		const struct snapshot_site *site = &s->sites[i - s->ntraces];

		samples[i] = (struct sample){.traceback = site->traceback,
					     .domain = site->domain,
					     .process = site->process,
					     .alloc_count = (int64_t)site->alloc_count,
					     .alloc_size = (int64_t)site->alloc_bytes};
	}
	qsort(samples, nin, sizeof(*samples), cmp_sample);
	for (i = 0; i < nin; i++) {
		if (nsamples && !cmp_sample(&samples[nsamples - 1], &samples[i])) {
			samples[nsamples - 1].count += samples[i].count;
			samples[nsamples - 1].size += samples[i].size;
			samples[nsamples - 1].alloc_count += samples[i].alloc_count;
			samples[nsamples - 1].alloc_size += samples[i].alloc_size;
		} else {
			if (nsamples && sample_empty(&samples[nsamples - 1]))
				nsamples--;
			samples[nsamples++] = samples[i];
		}
	}
	if (nsamples && sample_empty(&samples[nsamples - 1]))
		nsamples--;

	/* sample_type: Go's heap profile's, those known; the default is inuse_space */
	for (int v = 0; v < NVALUES; v++) {
		if (!wanted[v])
			continue;
		field_varint(&msg, VALUE_TYPE_TYPE, (uint64_t)str_type[v]);
		field_varint(&msg, VALUE_TYPE_UNIT, (uint64_t)str_unit[v]);
		field_message(&prof, PROFILE_SAMPLE_TYPE, &msg);
	}

	for (i = 0; i < nsamples; i++) {
		const struct snapshot_traceback *tb = &s->tracebacks[samples[i].traceback];
		int64_t label;

		/* locations leaf first: the snapshot's order. A frameless trace
		 * gets the <unknown> location, id nframes + 1. */
		for (uint32_t k = 0; k < tb->nframe; k++)
			varint(&packed, (uint64_t)s->frame_ids[tb->first + k] + 1);
		if (!tb->nframe)
			varint(&packed, (uint64_t)s->nframes + 1);
		field_message(&msg, SAMPLE_LOCATION_ID, &packed);
		for (int v = 0; v < NVALUES; v++)
			if (wanted[v])
				varint(&packed, (uint64_t)sample_value(&samples[i], v));
		field_message(&msg, SAMPLE_VALUE, &packed);
		label = domain_string(&st, &domains, &ndomains, samples[i].domain);
		if (label < 0) {
			err = -ENOMEM;
			goto out;
		}
		field_varint(&sub, LABEL_KEY, (uint64_t)str_domain);
		field_varint(&sub, LABEL_STR, (uint64_t)label);
		field_message(&msg, SAMPLE_LABEL, &sub);
		if (str_pid && samples[i].process < nlabelled) {
			uint32_t p = samples[i].process;

			field_varint(&sub, LABEL_KEY, (uint64_t)str_pid);
			field_varint(&sub, LABEL_STR, (uint64_t)pid_value[p]);
			field_message(&msg, SAMPLE_LABEL, &sub);
			if (comm_value[p] || !s->nprocesses) {
				field_varint(&sub, LABEL_KEY, (uint64_t)str_comm);
				field_varint(&sub, LABEL_STR, (uint64_t)comm_value[p]);
				field_message(&msg, SAMPLE_LABEL, &sub);
			}
		}
		if (samples[i].process < nlabelled && cgroup_value[samples[i].process]) {
			field_varint(&sub, LABEL_KEY, (uint64_t)str_cgroup);
			field_varint(&sub, LABEL_STR, (uint64_t)cgroup_value[samples[i].process]);
			field_message(&msg, SAMPLE_LABEL, &sub);
		}
		field_message(&prof, PROFILE_SAMPLE, &msg);
	}

	/* mappings: every one the snapshot has, in its order (the executable's
	 * first: pprof's main binary); what their frames already say keeps
	 * pprof from symbolizing them again, and a mapping whose frames say
	 * nothing is left to it (or to a server) */
	if (s->nmappings) {
		have = calloc(s->nmappings, 1);
		if (!have) {
			err = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < s->nframes; i++) {
		const struct snapshot_frame *f = &s->frames[i];

		if (f->mapping >= s->nmappings)
			continue;
		if (f->function != SNAPSHOT_NO_STRING)
			have[f->mapping] |= HAVE_FUNCTIONS;
		if (f->lineno)
			have[f->mapping] |= HAVE_LINES;
	}
	for (i = 0; i < s->nmappings; i++) {
		const struct snapshot_mapping *m = &s->mappings[i];

		field_varint(&msg, MAPPING_ID, i + 1);
		field_varint(&msg, MAPPING_MEMORY_START, m->start);
		field_varint(&msg, MAPPING_MEMORY_LIMIT, m->limit);
		field_varint(&msg, MAPPING_FILE_OFFSET, m->file_offset);
		field_varint(&msg, MAPPING_FILENAME, (uint64_t)snapshot_str(&st, s, m->path));
		field_varint(&msg, MAPPING_BUILD_ID, (uint64_t)snapshot_str(&st, s, m->build_id));
		field_varint(&msg, MAPPING_HAS_FUNCTIONS, !!(have[i] & HAVE_FUNCTIONS));
		field_varint(&msg, MAPPING_HAS_FILENAMES, !!(have[i] & HAVE_LINES));
		field_varint(&msg, MAPPING_HAS_LINE_NUMBERS, !!(have[i] & HAVE_LINES));
		field_message(&prof, PROFILE_MAPPING, &msg);
	}

	/* and one for the frames without an address (Python's, <unknown>, those
	 * of a snapshot file older than mappings): complete as they are, so
	 * that pprof neither tries to symbolize them nor, when no other mapping
	 * is left, makes up an empty main binary and says it has no file name */
	field_varint(&msg, MAPPING_ID, (uint64_t)s->nmappings + 1);
	field_varint(&msg, MAPPING_FILENAME,
		     (uint64_t)intern(&st, s->nmappings ? "[python]" : "[no address]"));
	field_varint(&msg, MAPPING_HAS_FUNCTIONS, 1);
	field_varint(&msg, MAPPING_HAS_FILENAMES, 1);
	field_varint(&msg, MAPPING_HAS_LINE_NUMBERS, 1);
	field_message(&prof, PROFILE_MAPPING, &msg);

	/* functions: one per (name, file, kind). A frame without a name is
	 * named by its file, which is how tracemalloc's frames read. A native
	 * frame without a source line has no file: pprof groups the frames of
	 * one function. A native function's system_name is its name, as pprof's
	 * own symbolizer gives it (pprof then shortens C++ names); a Python
	 * frame's is empty, which tells pprof that the name is final: pprof
	 * would otherwise take "<module>" for a C++ template argument and cut
	 * it to nothing. */
	if (u64_map_init(&funcs[0], sizeof(uint32_t)) ||
	    u64_map_init(&funcs[1], sizeof(uint32_t))) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < s->nframes; i++) {
		const struct snapshot_frame *f = &s->frames[i];
		bool native = f->mapping < s->nmappings, added;
		uint32_t name = f->function != SNAPSHOT_NO_STRING ? f->function : f->filename;
		uint32_t file = native && !f->lineno ? SNAPSHOT_NO_STRING : f->filename;
		uint32_t *id =
		    u64_map_put(&funcs[native], ((uint64_t)name << 32 | file) + 1, &added);

		if (!id) {
			err = -ENOMEM;
			goto out;
		}
		if (!added) {
			func_of_frame[i] = *id;
			continue;
		}
		*id = ++nfunc;
		func_of_frame[i] = nfunc;
		field_varint(&msg, FUNCTION_ID, nfunc);
		field_varint(&msg, FUNCTION_NAME, (uint64_t)snapshot_str(&st, s, name));
		if (native)
			field_varint(&msg, FUNCTION_SYSTEM_NAME,
				     (uint64_t)snapshot_str(&st, s, name));
		field_varint(&msg, FUNCTION_FILENAME, (uint64_t)snapshot_str(&st, s, file));
		field_message(&prof, PROFILE_FUNCTION, &msg);
	}
	func_of_frame[s->nframes] = ++nfunc; /* <unknown> */
	field_varint(&msg, FUNCTION_ID, nfunc);
	field_varint(&msg, FUNCTION_NAME, (uint64_t)intern(&st, "<unknown>"));
	field_message(&prof, PROFILE_FUNCTION, &msg);

	/* locations: one per frame, id = frame index + 1; a native frame's in
	 * its mapping, at the address it was symbolized at */
	for (i = 0; i <= s->nframes; i++) {
		field_varint(&msg, LOCATION_ID, i + 1);
		if (i < s->nframes && s->frames[i].mapping < s->nmappings) {
			field_varint(&msg, LOCATION_MAPPING_ID, (uint64_t)s->frames[i].mapping + 1);
			field_varint(&msg, LOCATION_ADDRESS, s->frames[i].address);
		} else {
			field_varint(&msg, LOCATION_MAPPING_ID, (uint64_t)s->nmappings + 1);
		}
		field_varint(&sub, LINE_FUNCTION_ID, func_of_frame[i]);
		if (i < s->nframes)
			field_varint(&sub, LINE_LINE, s->frames[i].lineno);
		field_message(&msg, LOCATION_LINE, &sub);
		field_message(&prof, PROFILE_LOCATION, &msg);
	}

	for (i = 0; i < st.n; i++)
		field_bytes(&prof, PROFILE_STRING_TABLE, st.s[i] ? st.s[i] : "",
			    st.s[i] ? strlen(st.s[i]) : 0);
	field_varint(&prof, PROFILE_TIME_NANOS, s->taken_at * 1000000000ull);
	field_varint(&prof, PROFILE_DURATION_NANOS, s->duration_ns);
	field_varint(&msg, VALUE_TYPE_TYPE, (uint64_t)str_space);
	field_varint(&msg, VALUE_TYPE_UNIT, (uint64_t)str_bytes);
	field_message(&prof, PROFILE_PERIOD_TYPE, &msg);
	field_varint(&prof, PROFILE_PERIOD, 1);
	field_varint(&prof, PROFILE_DEFAULT_SAMPLE_TYPE, (uint64_t)str_type[INUSE_SPACE]);
	if (str_budget)
		field_varint(&prof, PROFILE_COMMENT, (uint64_t)str_budget);

	err = prof.err ? prof.err : msg.err ? msg.err : sub.err ? sub.err : packed.err;
	if (!err)
		err = gzip_to(out, &prof);
out:
	free(prof.p);
	free(msg.p);
	free(sub.p);
	free(packed.p);
	free(samples);
	free(func_of_frame);
	free(pid_value);
	free(comm_value);
	free(cgroup_value);
	free(pids);
	free(st.of_snapshot);
	free(st.s);
	u64_map_free(&funcs[0]);
	u64_map_free(&funcs[1]);
	free(have);
	for (i = 0; i < ndomains; i++)
		free(domains[i].name);
	free(domains);
	return err;
}
