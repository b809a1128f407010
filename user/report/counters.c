#include <stdio.h>
#include <string.h>

#include "report/counters.h"
#include "util/util.h"

struct known_counter {
	const char *name; /* as collect.c sets it, and snapshot files keep it */
	const char *key;
	enum counter_kind kind;
	const char *text;
};

/* Every counter the collector sets (collect.c), and those older tracers
 * wrote; README.md's table is this one. */
static const struct known_counter known[] = {
    {"allocs table full", "allocs_table_full", COUNTER_LOSS,
     "allocations not traced (allocation table full: --max-allocs)"},
    {"allocs table full (bytes)", "allocs_table_full_bytes", COUNTER_LOSS,
     "bytes in allocations not traced (allocation table full)"},
    {"native stack table full", "native_stack_table_full", COUNTER_LOSS,
     "native stacks kept as their call site only (stack table full: --max-stacks)"},
    {"thread slot unavailable", "thread_slot_unavailable", COUNTER_LOSS,
     "calls not traced (no thread slot)"},
    {"return without entry", "return_without_entry", COUNTER_LOSS,
     "returns without their entry (calls in flight at the attach)"},
    {"process table full", "process_table_full", COUNTER_LOSS,
     "processes without memory figures (process table full)"},
    {"python frames unreadable", "python_frames_unreadable", COUNTER_LOSS,
     "Python stacks unreadable (native frames only)"},
    {"python stack table full", "python_stack_table_full", COUNTER_LOSS,
     "Python stacks lost (Python stack table full: native frames only)"},
    {"free-list objects not moved (frames unreadable)", "free_list_frames_unreadable",
     COUNTER_LOSS, "objects from free lists left at their first line (frames unreadable)"},
    {"frees no probe saw (the address given out again)", "frees_unseen", COUNTER_LOSS,
     "blocks freed where no probe saw it (live in the figures until their address came back)"},
    {"frees no probe saw (found in pymalloc's pools)", "frees_found_in_pools", COUNTER_LOSS,
     "pymalloc blocks freed where no probe saw it, found free in its pools at a report (live "
     "in the figures until then)"},
    {"pymalloc blocks not marked (pool marks table full)", "pool_marks_full", COUNTER_LOSS,
     "pymalloc blocks whose free no probe may see, not marked to be looked for in its pools "
     "(table full)"},
    {"pymalloc pool checks failed", "pool_checks_failed", COUNTER_LOSS,
     "marked pymalloc blocks whose pool the last report could not check (live in the figures "
     "until a later report can)"},
    {"python frames unresolved", "python_frames_unresolved", COUNTER_LOSS,
     "Python stacks unresolved (code objects freed before they were read)"},
    {"reallocs of untraced blocks, domain unknown (libc)", "realloc_domain_unknown",
     COUNTER_LOSS, "reallocs of blocks not traced (domain unknown: libc's)"},
    {"stack truncated (address outside code)", "stack_truncated_outside_code", COUNTER_LOSS,
     "tracebacks cut at an address outside code"},
    {"native stack cut: address in no mapping read", "native_stack_cut_no_mapping", COUNTER_LOSS,
     "native stacks cut (address in no mapping read)"},
    {"native stack cut: no CFI for the address", "native_stack_cut_no_cfi", COUNTER_LOSS,
     "native stacks cut (no CFI)"},
    {"native stack cut: CFI not followed", "native_stack_cut_cfi_not_followed", COUNTER_LOSS,
     "native stacks cut (CFI not followed)"},
    {"native stack cut: rbp lost", "native_stack_cut_rbp_lost", COUNTER_LOSS,
     "native stacks cut (rbp lost)"},
    {"native stack cut: stack unreadable", "native_stack_cut_unreadable", COUNTER_LOSS,
     "native stacks cut (stack unreadable)"},
    {"native stack cut: CFA below the stack pointer", "native_stack_cut_bad_cfa", COUNTER_LOSS,
     "native stacks cut (CFA below the stack pointer)"},
    {"native stack missing", "native_stack_missing", COUNTER_LOSS,
     "native stacks missing (call site unknown)"},
    {"unwind: files not tabled (no room in the maps)", "unwind_files_no_room", COUNTER_LOSS,
     "files without unwind rows (no room in the maps)"},
    {"unwind: files unreadable", "unwind_files_unreadable", COUNTER_LOSS,
     "files without unwind rows (unreadable)"},
    {"unwind: files not found by identity (table full)", "unwind_files_not_found",
     COUNTER_LOSS, "files not found by identity (file table full)"},
    {"unwind: mappings left out", "unwind_mappings_left_out", COUNTER_LOSS,
     "mappings left out of unwind tables"},
    {"objects loaded without a stop (probed late)", "loader_stop_lost", COUNTER_LOSS,
     "objects loaded without a stop (their allocators probed late)"},
    {"sites table full (allocations left out of per-site figures)", "sites_table_full",
     COUNTER_LOSS, "allocations left out of the per-site figures (sites table full)"},
    {"python allocations from an unknown call site", "python_return_uncaught", COUNTER_LOSS,
     "Python allocations not traced (an allocator whose return is caught at its call "
     "sites, called from elsewhere)"},
    {"process notices lost (every process looked at again)", "process_notices_lost",
     COUNTER_NOTE, "process notices lost (-a: every process looked at again)"},
    {"unmaps inside mapped blocks not followed (address space busy)", "mmap_unmaps_not_followed",
     COUNTER_LOSS, "munmaps or mremaps inside mapped blocks not followed (address space busy)"},
    {"processes gone before their probes were attached", "processes_gone_before_probed",
     COUNTER_LOSS,
     "processes that exited before their probes were attached (-a with filters, -p: "
     "they lived less than a loop turn)"},
    {"threads let go with a stop of the tracer pending", "threads_left_with_a_stop",
     COUNTER_LOSS,
     "threads let go with a stop of the tracer pending (their process may stop: kill -CONT)"},
    /* written by older tracers */
    {"stack table full or collision", "stack_table_full_or_collision", COUNTER_LOSS,
     "native stacks lost (stack table full or collision)"},
    {"stack ended early (no frame pointer)", "stack_ended_early", COUNTER_LOSS,
     "native stacks cut (no frame pointer)"},
    /* notes: no figure misses them */
    {"native stacks walked before their process was tabled", "native_walks_before_table",
     COUNTER_NOTE, "native stacks walked before their process's unwind table was installed"},
    {"failed allocations (NULL)", "failed_allocations", COUNTER_NOTE,
     "failed allocations (NULL: not blocks)"},
    {"mapped blocks split by an unmap in their middle", "mmap_blocks_split", COUNTER_NOTE,
     "mapped blocks split in two by an unmap in their middle (each part its own block)"},
    {"frees of untraced blocks", "frees_of_untraced_blocks", COUNTER_NOTE,
     "frees of blocks not traced (ignored)"},
    {"blocks of exec'd or exited images (not reported)", "blocks_of_execd_or_exited_images",
     COUNTER_NOTE, "blocks of images an exec replaced or of processes gone (not reported)"},
    /* a note of older tracers */
    {"blocks of exec'd images (not reported)", "blocks_of_execd_images", COUNTER_NOTE,
     "blocks of images an exec replaced (gone with them: not reported)"},
    {"events after Python finalization (not applied)", "events_after_python_finalization",
     COUNTER_NOTE, "events after Python finalization (not applied, as tracemalloc)"},
};

/* The CFI rows' reasons are appended to this one: "... (signal frame)". */
static const char cfi_prefix[] = "native stack cut: CFI not followed (";

/* name as an identifier: lowercase letters, digits and single '_'. */
static void make_key(char *out, size_t cap, const char *prefix, const char *name)
{
	size_t n = 0;
	bool sep = false;

	for (; *prefix && n + 1 < cap; prefix++)
		out[n++] = *prefix;
	for (const unsigned char *p = (const unsigned char *)name; *p && n + 1 < cap; p++) {
		unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p - 'A' + 'a') : *p;

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (sep && n && out[n - 1] != '_' && n + 2 < cap)
				out[n++] = '_';
			out[n++] = (char)c;
			sep = false;
		} else {
			sep = true;
		}
	}
	while (n && out[n - 1] == '_')
		n--;
	if (!n) /* a name of punctuation only */
		n = (size_t)snprintf(out, cap, "counter");
	out[n] = '\0';
}

void counter_describe(const char *name, struct counter_info *out)
{
	size_t plen = sizeof(cfi_prefix) - 1, len = strlen(name);

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
		if (strcmp(name, known[i].name))
			continue;
		out->kind = known[i].kind;
		snprintf(out->key, sizeof(out->key), "%s", known[i].key);
		snprintf(out->text, sizeof(out->text), "%s", known[i].text);
		out->bytes_of_previous = !strcmp(known[i].key, "allocs_table_full_bytes");
		return;
	}
	out->kind = COUNTER_LOSS;
	if (len > plen && !strncmp(name, cfi_prefix, plen) && name[len - 1] == ')') {
		char why[128];

		snprintf(why, sizeof(why), "%.*s", (int)(len - plen - 1), name + plen);
		make_key(out->key, sizeof(out->key), "native_stack_cut_cfi_not_followed_", why);
		snprintf(out->text, sizeof(out->text), "native stacks cut (CFI not followed: %s)",
			 why);
		return;
	}
	make_key(out->key, sizeof(out->key), "", name);
	snprintf(out->text, sizeof(out->text), "%s", name);
}

const char *counter_known_name(size_t i)
{
	return i < ARRAY_SIZE(known) ? known[i].name : NULL;
}
