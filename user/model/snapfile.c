#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "model/snapfile.h"
#include "model/snapfile_format.h"
#include "util/outfile.h"

/* ---- encoding ---- */

int snapfile_encode(const struct snapshot *s, void **out, size_t *outlen)
{
	size_t len[SEC_KNOWN_MAX + 1] = {0}, off[SEC_KNOWN_MAX + 1] = {0}, total, pos;
	unsigned char *buf, *p;
	int ids[SEC_KNOWN_MAX], id;
	unsigned nsec = 0, k;
	uint32_t i;
	uint64_t t;

	/* the required sections, then the optional ones that have something to
	 * say: a snapshot without them is written as an older tracer wrote it */
	for (id = 1; id <= SEC_REQUIRED_MAX; id++)
		ids[nsec++] = id;
	if (s->domain_memory_known)
		ids[nsec++] = SEC_DOMAIN_MEMORY;
	if (s->nmappings) {
		ids[nsec++] = SEC_MAPPINGS;
		ids[nsec++] = SEC_FRAME_ADDRESSES;
	}
	if (s->ages_known)
		ids[nsec++] = SEC_TRACE_AGES;
	if (s->sites_known)
		ids[nsec++] = SEC_SITES;
	if (s->nprocesses) {
		ids[nsec++] = SEC_PROCESSES;
		ids[nsec++] = SEC_TRACE_PROCESSES;
		if (s->sites_known)
			ids[nsec++] = SEC_SITE_PROCESSES;
	}
	if (s->budget.on)
		ids[nsec++] = SEC_BUDGET;

	len[SEC_META] = META_SIZE;
	len[SEC_STRINGS] = 4;
	for (i = 0; i < s->nstrings; i++)
		len[SEC_STRINGS] += 4 + strlen(s->strings[i]);
	len[SEC_FRAMES] = (size_t)s->nframes * 12;
	len[SEC_FRAME_IDS] = (size_t)s->nframe_ids * 4;
	len[SEC_TRACEBACKS] = (size_t)s->ntracebacks * 12;
	len[SEC_TRACES] = (size_t)s->ntraces * 24;
	len[SEC_COUNTERS] = (size_t)s->ncounters * 16;
	len[SEC_DOMAIN_MEMORY] = (size_t)SNAPSHOT_NCLASSES * DOMAIN_MEMORY_RECORD;
	len[SEC_MAPPINGS] = (size_t)s->nmappings * MAPPING_RECORD;
	len[SEC_FRAME_ADDRESSES] = (size_t)s->nframes * FRAME_ADDRESS_RECORD;
	len[SEC_TRACE_AGES] = (size_t)s->ntraces * TRACE_AGE_RECORD;
	len[SEC_SITES] = (size_t)s->nsites * SITE_RECORD;
	len[SEC_PROCESSES] = (size_t)s->nprocesses * PROCESS_RECORD;
	len[SEC_TRACE_PROCESSES] = (size_t)s->ntraces * PROCESS_INDEX_RECORD;
	len[SEC_SITE_PROCESSES] = (size_t)s->nsites * PROCESS_INDEX_RECORD;
	len[SEC_BUDGET] = BUDGET_SIZE;

	pos = HEADER_SIZE + nsec * ENTRY_SIZE;
	for (k = 0; k < nsec; k++) {
		id = ids[k];
		off[id] = align8(pos);
		pos = off[id] + len[id];
	}
	total = pos;
	buf = calloc(1, total);
	if (!buf)
		return -ENOMEM;

	memcpy(buf, snapfile_magic, sizeof(snapfile_magic));
	put32(buf + 8, s->nprocesses ? SNAPFILE_VERSION : SNAPFILE_VERSION_ONE_PROCESS);
	put32(buf + 12, nsec);
	put64(buf + 16, total);
	for (k = 0; k < nsec; k++) {
		id = ids[k];
		p = buf + HEADER_SIZE + k * ENTRY_SIZE;
		put32(p, (uint32_t)id);
		put64(p + 8, off[id]);
		put64(p + 16, len[id]);
	}

	p = buf + off[SEC_META];
	put32(p, s->traceback_limit);
	put32(p + 4, (uint32_t)s->target.pid);
	put64(p + 8, s->traced_current);
	put64(p + 16, s->traced_peak);
	put64(p + 24, s->tracer_memory);
	put64(p + 32, s->taken_at);
	put64(p + 40, s->duration_ns);
	put64(p + 48, s->alloc_events);
	put64(p + 56, s->free_events);
	put64(p + 64, s->target.start_time);
	put32(p + 72, s->target.command);
	put32(p + 76, s->target.host);

	p = buf + off[SEC_STRINGS];
	put32(p, s->nstrings);
	p += 4;
	for (i = 0; i < s->nstrings; i++) {
		size_t n = strlen(s->strings[i]);

		put32(p, (uint32_t)n);
		memcpy(p + 4, s->strings[i], n);
		p += 4 + n;
	}
	for (i = 0, p = buf + off[SEC_FRAMES]; i < s->nframes; i++, p += 12) {
		put32(p, s->frames[i].filename);
		put32(p + 4, s->frames[i].lineno);
		put32(p + 8, s->frames[i].function);
	}
	for (i = 0, p = buf + off[SEC_FRAME_IDS]; i < s->nframe_ids; i++, p += 4)
		put32(p, s->frame_ids[i]);
	for (i = 0, p = buf + off[SEC_TRACEBACKS]; i < s->ntracebacks; i++, p += 12) {
		put32(p, s->tracebacks[i].first);
		put32(p + 4, s->tracebacks[i].nframe);
		put32(p + 8, s->tracebacks[i].total_nframe);
	}
	for (t = 0, p = buf + off[SEC_TRACES]; t < s->ntraces; t++, p += 24) {
		put64(p, s->traces[t].address);
		put64(p + 8, s->traces[t].size);
		put32(p + 16, s->traces[t].domain);
		put32(p + 20, s->traces[t].traceback);
	}
	for (i = 0, p = buf + off[SEC_COUNTERS]; i < s->ncounters; i++, p += 16) {
		put32(p, s->counters[i].name);
		put64(p + 8, s->counters[i].value);
	}
	if (s->domain_memory_known)
		for (i = 0, p = buf + off[SEC_DOMAIN_MEMORY]; i < SNAPSHOT_NCLASSES;
		     i++, p += DOMAIN_MEMORY_RECORD) {
			put32(p, i);
			put64(p + 8, s->domain_memory[i].current);
			put64(p + 16, s->domain_memory[i].peak);
		}
	if (s->nmappings) {
		for (i = 0, p = buf + off[SEC_MAPPINGS]; i < s->nmappings;
		     i++, p += MAPPING_RECORD) {
			put64(p, s->mappings[i].start);
			put64(p + 8, s->mappings[i].limit);
			put64(p + 16, s->mappings[i].file_offset);
			put32(p + 24, s->mappings[i].path);
			put32(p + 28, s->mappings[i].build_id);
		}
		for (i = 0, p = buf + off[SEC_FRAME_ADDRESSES]; i < s->nframes;
		     i++, p += FRAME_ADDRESS_RECORD) {
			put32(p, s->frames[i].mapping);
			put64(p + 8, s->frames[i].address);
			put64(p + 16, s->frames[i].function_offset);
		}
	}

	if (s->ages_known)
		for (t = 0, p = buf + off[SEC_TRACE_AGES]; t < s->ntraces;
		     t++, p += TRACE_AGE_RECORD)
			put64(p, s->traces[t].age_ns);
	if (s->sites_known)
		for (i = 0, p = buf + off[SEC_SITES]; i < s->nsites; i++, p += SITE_RECORD) {
			const struct snapshot_site *site = &s->sites[i];

			put32(p, site->traceback);
			put32(p + 4, site->domain);
			put64(p + 8, site->alloc_count);
			put64(p + 16, site->alloc_bytes);
			put64(p + 24, site->temp_count);
			put64(p + 32, site->temp_bytes);
			put64(p + 40, site->peak_count);
			put64(p + 48, site->peak_bytes);
		}

	if (s->nprocesses) {
		for (i = 0, p = buf + off[SEC_PROCESSES]; i < s->nprocesses;
		     i++, p += PROCESS_RECORD) {
			const struct snapshot_process *pr = &s->processes[i];

			put32(p, (uint32_t)pr->pid);
			put32(p + 4, (uint32_t)pr->ns_pid);
			put32(p + 8, pr->command);
			put32(p + 12, pr->comm);
			put32(p + 16, pr->cgroup);
			put32(p + 20, pr->runtime);
			put32(p + 24, pr->flags);
			put64(p + 32, pr->start_time);
			put64(p + 40, pr->traced_current);
			put64(p + 48, pr->traced_peak);
			put64(p + 56, pr->domain_memory[SNAPSHOT_CLASS_PYTHON].current);
			put64(p + 64, pr->domain_memory[SNAPSHOT_CLASS_PYTHON].peak);
			put64(p + 72, pr->domain_memory[SNAPSHOT_CLASS_NATIVE].current);
			put64(p + 80, pr->domain_memory[SNAPSHOT_CLASS_NATIVE].peak);
			put64(p + 88, pr->alloc_events);
			put64(p + 96, pr->free_events);
		}
		for (t = 0, p = buf + off[SEC_TRACE_PROCESSES]; t < s->ntraces;
		     t++, p += PROCESS_INDEX_RECORD)
			put32(p, s->traces[t].process);
		if (s->sites_known)
			for (i = 0, p = buf + off[SEC_SITE_PROCESSES]; i < s->nsites;
			     i++, p += PROCESS_INDEX_RECORD)
				put32(p, s->sites[i].process);
	}

	if (s->budget.on) {
		p = buf + off[SEC_BUDGET];
		put64(p, double_bits(s->budget.ratio));
		put64(p + 8, double_bits(s->budget.coverage));
		put64(p + 16, double_bits(s->budget.overhead));
		put64(p + 24, double_bits(s->budget.hit_cost_s));
		put64(p + 32, s->budget.windows);
		put32(p + 40, s->budget.frees_windowed ? BUDGET_FREES_WINDOWED : 0);
	}

	put32(buf + CRC_OFFSET, (uint32_t)crc32_z(crc32(0, NULL, 0), buf, total));
	*out = buf;
	*outlen = total;
	return 0;
}

int snapfile_write(const struct snapshot *s, const char *path, char *why, size_t why_len)
{
	size_t len;
	void *buf;
	int err;

	err = snapfile_encode(s, &buf, &len);
	if (err) {
		snprintf(why, why_len, "%s: %s", path, strerror(-err));
		return err;
	}
	err = outfile_write(path, buf, len, why, why_len);
	free(buf);
	return err;
}

int snapfile_expand_name(const char *pattern, unsigned seq, long long when, char *out,
			 size_t outlen)
{
	size_t n = 0;
	char piece[64];

	out[0] = 0;
	for (const char *p = pattern; *p; p++) {
		const char *add = piece;

		if (*p != '%') {
			piece[0] = *p;
			piece[1] = 0;
		} else if (p[1] == 'n') {
			snprintf(piece, sizeof(piece), "%u", seq);
			p++;
		} else if (p[1] == 't') {
			time_t t = (time_t)when;
			struct tm tm;

			if (!gmtime_r(&t, &tm) ||
			    !strftime(piece, sizeof(piece), "%Y%m%dT%H%M%SZ", &tm))
				return -EINVAL;
			p++;
		} else if (p[1] == '%') {
			add = "%";
			p++;
		} else {
			return -EINVAL;
		}
		if (n + strlen(add) >= outlen)
			return -ENAMETOOLONG;
		strcpy(out + n, add);
		n += strlen(add);
	}
	if (!n)
		return -EINVAL;
	return 0;
}
