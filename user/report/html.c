/* The HTML report. The page is the template user/report/html/page.html with
 * its markers replaced: @STYLE@ by style.css, @SCRIPT@ by flame.js and
 * @DATA@ by the JSON document below (inside <script type="application/json">,
 * every string escaped by html_json_string so that nothing in it can end the
 * element). The three files are embedded at build time (html_assets.c, made
 * by the Makefile with xxd -i).
 *
 * The document, read by flame.js:
 *
 *   {"version":1, "kind":"snapshot"|"compare",
 *    "header":{...}, "old_header":{...}|null,     the figures of json_header
 *    "key":"lineno", "cumulative":false, "top":N,  how the tables were made
 *    "frames":[[label, function|null], ...],       every frame label, once
 *    "views":{NAME:{"title":..., "total":[size, count], "old_total":[...],
 *                   "tree":NODE, "table":[ROW, ...]}, ...},
 *    "series":[[seconds, traced_current, traced_peak], ...]|null}
 *
 *   NODE = [frame, size, count, [NODE...]] (+ old_size, old_count in a
 *          compare), frame an index into "frames" (-1 for the root); the
 *          tree merges the tracebacks by frame, oldest frame at the root.
 *   ROW  = [label, function|null, size, count] (+ size_diff, count_diff),
 *          tracemalloc's statistics in its order, the top N of them.
 *
 * A new view is one more entry in "views"; the page shows a selector
 * when there are several. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/stats.h"
#include "report/format.h"
#include "report/html.h"
#include "util/util.h"
#include "util/hash.h"

/* html_assets.c, generated from user/report/html/ */
extern unsigned char html_page_html[], html_style_css[], html_flame_js[];
extern unsigned int html_page_html_len, html_style_css_len, html_flame_js_len;

#define NO_LABEL UINT32_MAX

void html_json_string(FILE *out, const char *str)
{
	if (str)
		format_json_escaped(out, str, true);
	else
		fputs("null", out);
}

/* -- frame labels --------------------------------------------------------- */

struct labels {
	char **text;	  /* as the text report prints the frame (format_frame) */
	const char **fn;  /* its function, for the tooltip; NULL unknown */
	uint32_t n, cap;
	struct hash_index index;
};

static bool label_eq(const void *ctx, uint32_t entry, const void *key)
{
	return !strcmp(((const struct labels *)ctx)->text[entry], key);
}

/* The index of label text (taken over: freed here when it is a copy). */
static int64_t label_intern(struct labels *l, char *text, const char *fn)
{
	uint64_t h = hash_str(text);
	size_t pos;
	int64_t e;

	if (hash_index_reserve(&l->index)) {
		free(text);
		return -ENOMEM;
	}
	e = hash_index_find(&l->index, h, label_eq, l, text, &pos);
	if (e >= 0) {
		free(text);
		if (!l->fn[e])
			l->fn[e] = fn;
		return e;
	}
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 256;
		char **t = realloc(l->text, cap * sizeof(*t));
		const char **f;

		if (t)
			l->text = t;
		f = t ? realloc(l->fn, cap * sizeof(*f)) : NULL;
		if (!f) {
			free(text);
			return -ENOMEM;
		}
		l->fn = f;
		l->cap = cap;
	}
	l->text[l->n] = text;
	l->fn[l->n] = fn;
	hash_index_put(&l->index, pos, h, l->n);
	return l->n++;
}

/* A frame as the text report names it, reusing its formatter. */
static char *frame_text(const struct stats_frame *f)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return NULL;
	format_frame(m, f);
	if (fclose(m)) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int64_t label_of_text(struct labels *l, const char *s)
{
	char *t = strdup(s);

	return t ? label_intern(l, t, NULL) : -ENOMEM;
}

static void labels_free(struct labels *l)
{
	for (uint32_t i = 0; i < l->n; i++)
		free(l->text[i]);
	free(l->text);
	free(l->fn);
	hash_index_free(&l->index);
}

/* The label of every frame of s (NO_LABEL until asked for), by frame index. */
static int frame_labels(struct labels *l, const struct snapshot *s, uint32_t **out)
{
	uint32_t *ids = malloc((s->nframes ? s->nframes : 1) * sizeof(*ids));

	if (!ids)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nframes; i++) {
		struct stats_frame f = stats_frame_of(s, &s->frames[i]);
		char *text = frame_text(&f);
		int64_t e = text ? label_intern(l, text, f.function) : -ENOMEM;

		if (e < 0) {
			free(ids);
			return (int)e;
		}
		ids[i] = (uint32_t)e;
	}
	*out = ids;
	return 0;
}

/* -- the tree --------------------------------------------------------------- */

struct node {
	uint32_t label; /* NO_LABEL for the root */
	uint32_t first_child, next_sibling;
	uint64_t size, count, old_size, old_count;
};

struct tree {
	struct node *nodes;
	uint32_t n, cap;
	struct u64_map children; /* (parent + 1) << 32 | (label + 1) -> node */
};

#define NO_NODE UINT32_MAX

static int64_t tree_child(struct tree *t, uint32_t parent, uint32_t label)
{
	uint64_t key = ((uint64_t)parent + 1) << 32 | ((uint64_t)label + 1);
	bool added;
	uint32_t *slot;
	struct node *p;

	if (t->n == t->cap) {
		uint32_t cap = t->cap * 2;
		struct node *n = realloc(t->nodes, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->nodes = n;
		t->cap = cap;
	}
	slot = u64_map_put(&t->children, key, &added);
	if (!slot)
		return -ENOMEM;
	if (!added)
		return *slot;
	*slot = t->n;
	p = &t->nodes[parent];
	t->nodes[t->n] = (struct node){.label = label,
				       .first_child = NO_NODE,
				       .next_sibling = p->first_child};
	p->first_child = t->n;
	return t->n++;
}

static int tree_init(struct tree *t)
{
	memset(t, 0, sizeof(*t));
	t->cap = 1024;
	t->nodes = malloc(t->cap * sizeof(*t->nodes));
	if (!t->nodes || u64_map_init(&t->children, sizeof(uint32_t))) {
		free(t->nodes);
		return -ENOMEM;
	}
	t->nodes[0] = (struct node){.label = NO_LABEL, .first_child = NO_NODE,
				    .next_sibling = NO_NODE};
	t->n = 1;
	return 0;
}

static void tree_free(struct tree *t)
{
	free(t->nodes);
	u64_map_free(&t->children);
}

static void add_weight(struct node *n, bool old, uint64_t size, uint64_t count)
{
	if (old)
		n->old_size += size, n->old_count += count;
	else
		n->size += size, n->count += count;
}

/* Every trace of s along its traceback, oldest frame first; a traceback
 * cut at the limit hangs under one node that says so, an empty one under
 * "<unknown>:0" as the text report names it. */
static int tree_add(struct tree *t, struct labels *l, const struct snapshot *s, bool old,
		    enum stats_source source)
{
	uint64_t *tb_size = calloc(s->ntracebacks + 1, sizeof(uint64_t));
	uint64_t *tb_count = calloc(s->ntracebacks + 1, sizeof(uint64_t));
	uint32_t *ids = NULL;
	int64_t cut, unknown;
	int err;

	err = !tb_size || !tb_count ? -ENOMEM : frame_labels(l, s, &ids);
	if (err)
		goto out;
	cut = label_of_text(l, "[older frames not kept]");
	unknown = label_of_text(l, "<unknown>:0");
	if (cut < 0 || unknown < 0) {
		err = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; source == STATS_SOURCE_LIVE && i < s->ntraces; i++) {
		if (s->traces[i].traceback >= s->ntracebacks)
			continue;
		tb_size[s->traces[i].traceback] += s->traces[i].size;
		tb_count[s->traces[i].traceback]++;
	}
	/* the peak's live set, or what was allocated over the run: the sites' */
	for (uint32_t i = 0; source != STATS_SOURCE_LIVE && i < s->nsites; i++) {
		const struct snapshot_site *site = &s->sites[i];

		if (site->traceback >= s->ntracebacks)
			continue;
		tb_size[site->traceback] += source == STATS_SOURCE_PEAK	       ? site->peak_bytes
					    : source == STATS_SOURCE_TEMPORARY ? site->temp_bytes
									       : site->alloc_bytes;
		tb_count[site->traceback] += source == STATS_SOURCE_PEAK	? site->peak_count
					     : source == STATS_SOURCE_TEMPORARY ? site->temp_count
										: site->alloc_count;
	}
	for (uint32_t i = 0; i < s->ntracebacks; i++) {
		const struct snapshot_traceback *tb = &s->tracebacks[i];
		uint32_t at = 0;
		int64_t c = 0;

		if (!tb_count[i])
			continue;
		add_weight(&t->nodes[0], old, tb_size[i], tb_count[i]);
		if (!tb->nframe || tb->total_nframe > tb->nframe) {
			c = tree_child(t, 0, (uint32_t)(tb->nframe ? cut : unknown));
			if (c < 0)
				break;
			at = (uint32_t)c;
			add_weight(&t->nodes[at], old, tb_size[i], tb_count[i]);
		}
		for (uint32_t k = tb->nframe; k-- > 0;) {
			c = tree_child(t, at, ids[s->frame_ids[tb->first + k]]);
			if (c < 0)
				break;
			at = (uint32_t)c;
			add_weight(&t->nodes[at], old, tb_size[i], tb_count[i]);
		}
		if (c < 0) {
			err = (int)c;
			goto out;
		}
	}
	err = 0;
out:
	free(ids);
	free(tb_size);
	free(tb_count);
	return err;
}

/* -- JSON ------------------------------------------------------------------- */

static void json_header(FILE *out, const struct snapshot *s)
{
	uint64_t current, peak;
	bool python = snapshot_traced_memory(s, &current, &peak);

	fprintf(out, "{\"pid\":%d,\"command\":", s->target.pid);
	html_json_string(out, snapshot_string(s, s->target.command));
	fputs(",\"host\":", out);
	html_json_string(out, snapshot_string(s, s->target.host));
	fprintf(out,
		",\"start_time\":%" PRIu64 ",\"taken_at\":%" PRIu64 ",\"duration_ns\":%" PRIu64
		",\"nframe\":%u,\"traced_current\":%" PRIu64 ",\"traced_peak\":%" PRIu64
		",\"traced_of\":\"%s\",\"all_current\":%" PRIu64 ",\"all_peak\":%" PRIu64
		",\"tracer_memory\":%" PRIu64 ",\"allocations\":%" PRIu64 ",\"frees\":%" PRIu64
		",\"traces\":%" PRIu64 ",\"counters\":[",
		s->target.start_time, s->taken_at, s->duration_ns, s->traceback_limit, current,
		peak, python ? "python" : "all", s->traced_current, s->traced_peak,
		s->tracer_memory, s->alloc_events, s->free_events, s->ntraces);
	for (uint32_t i = 0; i < s->ncounters; i++) {
		fputs(i ? ",[" : "[", out);
		html_json_string(out, snapshot_string(s, s->counters[i].name));
		fprintf(out, ",%" PRIu64 "]", s->counters[i].value);
	}
	fputs("]}", out);
}

static void json_node(FILE *out, const struct tree *t, uint32_t i, bool diff)
{
	const struct node *n = &t->nodes[i];
	bool first = true;

	fprintf(out, "[%" PRId64 ",%" PRIu64 ",%" PRIu64 ",[",
		n->label == NO_LABEL ? (int64_t)-1 : (int64_t)n->label, n->size, n->count);
	for (uint32_t c = n->first_child; c != NO_NODE; c = t->nodes[c].next_sibling) {
		if (!t->nodes[c].count) /* gone in the newer snapshot */
			continue;
		if (!first)
			fputc(',', out);
		first = false;
		json_node(out, t, c, diff);
	}
	fputc(']', out);
	if (diff)
		fprintf(out, ",%" PRIu64 ",%" PRIu64, n->old_size, n->old_count);
	fputc(']', out);
}

static int json_table(FILE *out, const struct html_view *v, const struct report_options *o)
{
	struct stats_list l;
	size_t n;
	int err = v->old_snap
		      ? stats_compare(v->snap, v->old_snap, o->key, o->cumulative, &l)
		      : stats_compute_source(v->snap, v->source, o->key, o->cumulative, &l);

	if (err)
		return err;
	n = o->top > 0 && (size_t)o->top < l.n ? (size_t)o->top : l.n;
	fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		const struct stats_entry *e = &l.entries[i];
		/* str(Statistic) names the key's oldest frame */
		const struct stats_frame *f = e->nkey ? &e->key[e->nkey - 1] : NULL;
		char title[64];
		char *text = e->process ? strdup(stats_process_title(e->process, title,
								      sizeof(title)))
			     : f	    ? frame_text(f)
					    : strdup("<unknown>:0");

		if (!text) {
			err = -ENOMEM;
			break;
		}
		fputs(i ? ",[" : "[", out);
		html_json_string(out, text);
		free(text);
		fputc(',', out);
		html_json_string(out, f ? f->function : NULL);
		fprintf(out, ",%" PRIu64 ",%" PRIu64, e->size, e->count);
		if (v->old_snap)
			fprintf(out, ",%" PRId64 ",%" PRId64, e->size_diff, e->count_diff);
		fputc(']', out);
	}
	fputc(']', out);
	stats_list_free(&l);
	return err;
}

static int json_view(FILE *out, struct labels *l, const struct html_view *v,
		     const struct report_options *o)
{
	struct tree t;
	int err = tree_init(&t);

	if (err)
		return err;
	err = tree_add(&t, l, v->snap, false, v->source);
	if (!err && v->old_snap)
		err = tree_add(&t, l, v->old_snap, true, STATS_SOURCE_LIVE);
	if (!err) {
		fputs("{\"title\":", out);
		html_json_string(out, v->title);
		fprintf(out, ",\"total\":[%" PRIu64 ",%" PRIu64 "]", t.nodes[0].size,
			t.nodes[0].count);
		if (v->old_snap)
			fprintf(out, ",\"old_total\":[%" PRIu64 ",%" PRIu64 "]",
				t.nodes[0].old_size, t.nodes[0].old_count);
		fputs(",\"tree\":", out);
		json_node(out, &t, 0, v->old_snap != NULL);
		fputs(",\"table\":", out);
		err = json_table(out, v, o);
		fputc('}', out);
	}
	tree_free(&t);
	return err;
}

/* The document: views first into a buffer, since "frames" (before them)
 * holds the labels they intern. */
static int json_document(FILE *out, const struct html_page *p)
{
	struct labels l = {0};
	char *views = NULL;
	size_t views_len = 0;
	FILE *m = open_memstream(&views, &views_len);
	int err = m ? 0 : -ENOMEM;

	for (unsigned i = 0; !err && i < p->nviews; i++) {
		fputs(i ? "," : "{", m);
		html_json_string(m, p->views[i].name);
		fputc(':', m);
		err = json_view(m, &l, &p->views[i], p->report);
	}
	if (m) {
		if (!err)
			fputc('}', m);
		if (fclose(m) && !err)
			err = -ENOMEM;
	}
	if (err)
		goto out;
	fprintf(out, "{\"version\":1,\"kind\":\"%s\",\"header\":",
		p->old_header ? "compare" : "snapshot");
	json_header(out, p->header);
	fputs(",\"old_header\":", out);
	if (p->old_header)
		json_header(out, p->old_header);
	else
		fputs("null", out);
	fprintf(out, ",\"key\":\"%s\",\"cumulative\":%s,\"top\":%d,\"frames\":[",
		stats_key_name(p->report->key), p->report->cumulative ? "true" : "false",
		p->report->top);
	for (uint32_t i = 0; i < l.n; i++) {
		fputs(i ? ",[" : "[", out);
		html_json_string(out, l.text[i]);
		fputc(',', out);
		html_json_string(out, l.fn[i]);
		fputc(']', out);
	}
	fputs("],\"views\":", out);
	fwrite(views, 1, views_len, out);
	fputs(",\"series\":", out);
	if (p->series) {
		fputc('[', out);
		for (size_t i = 0; i < p->nseries; i++)
			fprintf(out, "%s[%.3f,%" PRIu64 ",%" PRIu64 "]", i ? "," : "",
				p->series[i].seconds, p->series[i].traced_current,
				p->series[i].traced_peak);
		fputc(']', out);
	} else {
		fputs("null", out);
	}
	fputc('}', out);
out:
	free(views);
	labels_free(&l);
	return err;
}

/* -- the page --------------------------------------------------------------- */

void html_page_init(struct html_page *p, const struct snapshot *snap,
		    const struct snapshot *old_snap, const struct report_options *o)
{
	memset(p, 0, sizeof(*p));
	p->header = snap;
	p->old_header = old_snap;
	p->report = o;
	p->views[0] = (struct html_view){.name = "live",
					 .title = old_snap ? "Live memory: growth since the "
							     "old snapshot"
							   : "Live memory",
					 .snap = snap,
					 .old_snap = old_snap};
	p->nviews = 1;
	if (old_snap || !snap->sites_known)
		return;
	/* what the probes kept per site: the live set at the peak, and every
	 * allocation since tracing began */
	p->views[p->nviews++] = (struct html_view){.name = "peak",
						   .title = "Memory at the peak",
						   .snap = snap,
						   .source = STATS_SOURCE_PEAK};
	p->views[p->nviews++] = (struct html_view){.name = "allocations",
						   .title = "Allocations over the run",
						   .snap = snap,
						   .source = STATS_SOURCE_ALLOCATIONS};
}

int html_write(FILE *out, const struct html_page *p)
{
	const char *t = (const char *)html_page_html;
	const char *end = t + html_page_html_len;
	int err = 0;

	while (t < end && !err) {
		const char *at = memchr(t, '@', (size_t)(end - t));

		if (!at) {
			fwrite(t, 1, (size_t)(end - t), out);
			break;
		}
		fwrite(t, 1, (size_t)(at - t), out);
		t = at;
		if ((size_t)(end - t) >= 7 && !memcmp(t, "@STYLE@", 7)) {
			fwrite(html_style_css, 1, html_style_css_len, out);
			t += 7;
		} else if ((size_t)(end - t) >= 8 && !memcmp(t, "@SCRIPT@", 8)) {
			fwrite(html_flame_js, 1, html_flame_js_len, out);
			t += 8;
		} else if ((size_t)(end - t) >= 6 && !memcmp(t, "@DATA@", 6)) {
			err = json_document(out, p);
			t += 6;
		} else {
			fputc('@', out);
			t++;
		}
	}
	if (err)
		return err;
	return ferror(out) ? -EIO : 0;
}
