#include <bpf/bpf.h>
#include <capstone/capstone.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elfsym.h"
#include "python/alloc.h"
#include "python/newref.h"
#include "python/sites.h"
#include "target.h"
#include "unwind/table.h"

static const char *const wrappers[PYTHON_ALLOC_NDOMAINS] = {"PyMem_RawMalloc", "PyMem_Malloc",
							    "PyObject_Malloc"};

/* The data addresses the first instructions of a wrapper read: a table's
 * ctx and malloc slots, 8 bytes apart. Registers loaded from memory are
 * followed one step, which covers 3.12+'s `mov GOT(%rip),%rax;
 * mov disp(%rax),%rdi; jmp *disp+8(%rax)` with the GOT read in the process.
 * LTO builds of 3.14 test the malloc slot against the default first and
 * read ctx only on the branch taken when it differs: the code at a
 * conditional branch's target inside the function is decoded too. */
static int decode_table(struct target_mem *mem, struct elfsym_file *f, uint64_t bias,
			const char *name, uint64_t *table)
{
	uint64_t refs[32], regval[X86_REG_ENDING] = {0}, regions[4];
	unsigned nrefs = 0, nregions = 1;
	struct elfsym sym;
	cs_insn *in;
	csh h;

	if (elfsym_lookup(f, name, &sym))
		return -ENOENT;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
		return -ENOMEM;
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	in = cs_malloc(h);
	regions[0] = sym.vaddr;
	for (unsigned r = 0; in && r < nregions; r++) {
		uint8_t code[96];
		const uint8_t *p = code;
		size_t left = sizeof(code);
		uint64_t addr = regions[r];

		if (elfsym_read(f, addr, code, sizeof(code)))
			continue;
		for (int n = 0; n < 16 && nrefs < 30 && cs_disasm_iter(h, &p, &left, &addr, in);
		     n++) {
			const cs_x86 *x = &in->detail->x86;

			for (int i = 0; i < x->op_count; i++) {
				const cs_x86_op *op = &x->operands[i];
				uint64_t a;

				if (op->type != X86_OP_MEM || op->mem.index != X86_REG_INVALID)
					continue;
				if (op->mem.base == X86_REG_RIP)
					a = in->address + in->size + (uint64_t)op->mem.disp + bias;
				else if (op->mem.base == X86_REG_INVALID)
					a = (uint64_t)op->mem.disp + bias; /* absolute, non-PIE */
				else if (regval[op->mem.base])
					a = regval[op->mem.base] + (uint64_t)op->mem.disp;
				else
					continue;
				refs[nrefs++] = a;
				/* mov reg64, [mem]: the register now holds what is there */
				if (in->id == X86_INS_MOV && i == 1 &&
				    x->operands[0].type == X86_OP_REG && op->size == 8 &&
				    target_mem_read(mem, a, &regval[x->operands[0].reg], 8))
					regval[x->operands[0].reg] = 0;
			}
			if (cs_insn_group(h, in, CS_GRP_JUMP) && in->id != X86_INS_JMP &&
			    x->op_count == 1 && x->operands[0].type == X86_OP_IMM &&
			    nregions < sizeof(regions) / sizeof(regions[0])) {
				uint64_t target = (uint64_t)x->operands[0].imm;

				if (target > sym.vaddr && target < sym.vaddr + sym.size)
					regions[nregions++] = target;
			}
			if (in->id == X86_INS_RET || (in->id == X86_INS_JMP && nrefs))
				break;
		}
	}
	if (in)
		cs_free(in, 1);
	cs_close(&h);
	for (unsigned i = 0; i < nrefs; i++)
		for (unsigned j = 0; j < nrefs; j++)
			if (refs[j] == refs[i] + 8) {
				*table = refs[i];
				return 0;
			}
	return -ENOENT;
}

/* A table slot must point into code the process maps. */
static bool in_code(const struct target_maps *maps, uint64_t addr)
{
	const struct target_mapping *m = target_maps_find(maps, addr);

	return m && m->exec;
}

/* Finds the tables of the CPython t in process pid and reads them.
 * Returns 0, -ENOENT (a wrapper is missing or does not decode) or -errno. */
static int find_tables(const struct python_target *t, pid_t pid, struct python_alloc *out)
{
	struct target_maps maps;
	struct elfsym_file *f;
	int err, d;

	memset(out, 0, sizeof(*out));
	out->pid = pid;
	out->mem = t->mem;
	err = elfsym_open(t->path, &f);
	if (err)
		return err;
	err = target_read_maps(pid, &maps);
	if (err) {
		elfsym_close(f);
		return err;
	}
	for (d = 0; d < PYTHON_ALLOC_NDOMAINS && !err; d++) {
		err = decode_table(out->mem, f, t->bias, wrappers[d], &out->table[d]);
		if (!err)
			err = target_mem_read(out->mem, out->table[d], out->fn[d],
					      sizeof(out->fn[d]));
		for (int s = PYTHON_ALLOC_MALLOC; !err && s <= PYTHON_ALLOC_FREE; s++)
			if (!in_code(&maps, out->fn[d][s]))
				err = -ENOENT;
	}
	target_maps_free(&maps);
	elfsym_close(f);
	return err;
}

/* The hooked slots: mem and obj, malloc and calloc. */
static const int hooked_domains[] = {PYTHON_ALLOC_MEM, PYTHON_ALLOC_OBJ};
static const int hooked_slots[] = {PYTHON_ALLOC_MALLOC, PYTHON_ALLOC_CALLOC};

/* Sets every hooked slot from one value to another, checking each first;
 * on a mismatch puts back what it already changed. A slot that holds the
 * hook's value already (a process left hooked) is taken as it is. */
static int swap_slots(struct python_alloc *a, bool hook)
{
	uint64_t done[4][2];
	int ndone = 0, err = 0;

	for (int i = 0; i < 2 && !err; i++)
		for (int j = 0; j < 2 && !err; j++) {
			int d = hooked_domains[i], s = hooked_slots[j];
			uint64_t slot = a->table[d] + 8 * (uint64_t)s, cur;
			uint64_t from = hook ? a->fn[d][s] : a->fn[PYTHON_ALLOC_RAW][s];
			uint64_t to = hook ? a->fn[PYTHON_ALLOC_RAW][s] : a->fn[d][s];

			err = target_mem_read(a->mem, slot, &cur, sizeof(cur));
			if (!err && hook && cur == to)
				continue;
			if (!err && cur != from)
				err = -EBUSY;
			if (!err)
				err = target_mem_write_u64(a->mem, slot, to);
			if (!err) {
				done[ndone][0] = slot;
				done[ndone++][1] = from;
			}
		}
	if (err)
		while (ndone-- > 0)
			target_mem_write_u64(a->mem, done[ndone][0], done[ndone][1]);
	return err;
}

/* What the tables hold, told by their shape (CPython's own tables have a
 * NULL ctx; mem and obj share pymalloc's functions, raw has libc's):
 * - tracemalloc's hooks (tracemalloc.start(), -X tracemalloc): the three
 *   tables' ctx point at its saved copies of them, one struct {mem, raw,
 *   obj} of PyMemAllocatorEx (40 bytes each), and one free serves all;
 * - another hook (PYTHONMALLOC=debug, an extension's): a ctx not NULL;
 * - left hooked by an earlier --hook-pymalloc that did not end cleanly
 *   (SIGKILL): a mem or obj malloc or calloc is the raw one while that
 *   table's free is not the raw free (PYTHONMALLOC=malloc gives all four). */
static enum python_alloc_state tables_state(const struct python_alloc *a)
{
	const uint64_t *raw = a->fn[PYTHON_ALLOC_RAW], *mem = a->fn[PYTHON_ALLOC_MEM];
	const uint64_t *obj = a->fn[PYTHON_ALLOC_OBJ];

	if (mem[PYTHON_ALLOC_CTX] && raw[PYTHON_ALLOC_CTX] == mem[PYTHON_ALLOC_CTX] + 40 &&
	    obj[PYTHON_ALLOC_CTX] == mem[PYTHON_ALLOC_CTX] + 80 &&
	    raw[PYTHON_ALLOC_FREE] == mem[PYTHON_ALLOC_FREE] &&
	    obj[PYTHON_ALLOC_FREE] == mem[PYTHON_ALLOC_FREE] &&
	    obj[PYTHON_ALLOC_MALLOC] == mem[PYTHON_ALLOC_MALLOC] &&
	    raw[PYTHON_ALLOC_MALLOC] != mem[PYTHON_ALLOC_MALLOC])
		return PYTHON_ALLOC_TRACEMALLOC;
	if (raw[PYTHON_ALLOC_CTX] || mem[PYTHON_ALLOC_CTX] || obj[PYTHON_ALLOC_CTX])
		return PYTHON_ALLOC_OTHER_HOOK;
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			const uint64_t *t = a->fn[hooked_domains[i]];

			if (t[hooked_slots[j]] == raw[hooked_slots[j]] &&
			    t[PYTHON_ALLOC_FREE] != raw[PYTHON_ALLOC_FREE])
				return PYTHON_ALLOC_LEFT_HOOKED;
		}
	return PYTHON_ALLOC_DEFAULT;
}

/* Longest stretch of the interpreter's data searched for its debug hooks'
 * table. */
#define DEFAULTS_SEARCH_MAX (64u << 20)

/* Whether words w (18 of them) are CPython's debug hooks' table
 * (_PyMem_Debug, 3.12+ _PyRuntime.allocators.debug: {char api_id;
 * PyMemAllocatorEx alloc;} for raw 'r', mem 'm', obj 'o'), which holds the
 * interpreter's default functions and is never changed outside
 * PYTHONMALLOC=debug: its raw entry must be the raw table, its mem and obj
 * entries' realloc and free those the hook leaves in the tables. */
static bool is_debug_table(const struct python_alloc *a, const uint64_t *w)
{
	static const char ids[PYTHON_ALLOC_NDOMAINS] = {'r', 'm', 'o'};

	for (int d = 0; d < PYTHON_ALLOC_NDOMAINS; d++) {
		const uint64_t *e = w + 6 * d;

		if ((e[0] & 0xff) != (uint64_t)ids[d] || e[1 + PYTHON_ALLOC_CTX])
			return false;
		for (int s = PYTHON_ALLOC_MALLOC; s <= PYTHON_ALLOC_FREE; s++)
			if ((d == PYTHON_ALLOC_RAW || s >= PYTHON_ALLOC_REALLOC) &&
			    e[1 + s] != a->fn[d][s])
				return false;
	}
	return true;
}

/* A process left hooked: CPython's own mem and obj malloc and calloc, read
 * from its debug hooks' table in the interpreter's data mappings. 0 (into
 * orig), or -ENOENT when no such table is found, or two that disagree. */
static int find_defaults(const struct python_alloc *a, pid_t pid,
			 uint64_t orig[PYTHON_ALLOC_NDOMAINS][5])
{
	enum { WORDS = 8192, ENTRY = 18 };
	const struct target_mapping *home;
	struct target_maps maps;
	uint64_t *buf, searched = 0;
	int found = 0, err;

	err = target_read_maps(pid, &maps);
	if (err)
		return err;
	home = target_maps_find(&maps, a->table[PYTHON_ALLOC_MEM]);
	buf = malloc(WORDS * sizeof(*buf));
	for (size_t i = 0; home && buf && i < maps.n && found < 2; i++) {
		const struct target_mapping *m = &maps.m[i];

		if (m->exec || m->dev != home->dev || m->ino != home->ino || !m->path)
			continue;
		/* chunks overlapping by an entry less one word */
		for (uint64_t at = m->start; found < 2 && searched < DEFAULTS_SEARCH_MAX;) {
			size_t n = (m->end - at) / 8 < WORDS ? (m->end - at) / 8 : WORDS;

			if (n < ENTRY || target_mem_read(a->mem, at, buf, n * 8))
				break;
			for (size_t k = 0; k + ENTRY <= n; k++)
				if ((buf[k] & 0xff) == 'r' && is_debug_table(a, buf + k)) {
					uint64_t got[PYTHON_ALLOC_NDOMAINS][5];

					for (int d = 0; d < PYTHON_ALLOC_NDOMAINS; d++)
						memcpy(got[d], buf + k + 6 * d + 1, sizeof(got[d]));
					if (!found)
						memcpy(orig, got, sizeof(got));
					/* copies that agree are one answer (3.12+ keep
					 * _PyRuntime's initial state in .data.rel.ro) */
					found = !found || !memcmp(orig, got, sizeof(got)) ? 1 : 2;
				}
			at += (n - ENTRY + 1) * 8;
			searched += (n - ENTRY + 1) * 8;
		}
	}
	free(buf);
	/* what will be written back must be code the process maps */
	for (int i = 0; found == 1 && i < 2; i++)
		for (int j = 0; j < 2; j++)
			if (!in_code(&maps, orig[hooked_domains[i]][hooked_slots[j]]))
				found = 0;
	target_maps_free(&maps);
	return found == 1 ? 0 : -ENOENT;
}

/* A process left hooked: the default functions put in place of what the
 * tables were found to hold, as if the hook had been made now. */
static int adopt_left_hook(struct python_alloc *a)
{
	uint64_t orig[PYTHON_ALLOC_NDOMAINS][5];
	int err = find_defaults(a, a->pid, orig);

	if (err)
		return err;
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			int d = hooked_domains[i], s = hooked_slots[j];

			if (!orig[d][s] || orig[d][s] == a->fn[PYTHON_ALLOC_RAW][s])
				return -ENOENT;
			a->fn[d][s] = orig[d][s];
		}
	return 0;
}

/* --hook-pymalloc: mem and obj malloc/calloc := raw malloc/calloc, after
 * checking that the slots still hold what find_tables read. Returns 0,
 * -EBUSY (the tables changed: someone else hooks them) or -errno. */
static int hook_tables(struct python_alloc *a)
{
	int err;

	if (a->hooked)
		return 0;
	err = swap_slots(a, true);
	if (!err)
		a->hooked = true;
	return err;
}

/* Restores what hook_tables replaced, where the slots still hold our values.
 * Returns 0, -EBUSY (changed since: left alone) or -errno. */
static int unhook_tables(struct python_alloc *a)
{
	int err;

	if (!a->hooked)
		return 0;
	err = swap_slots(a, false);
	if (!err || err == -EBUSY)
		a->hooked = false; /* changed since: not ours to restore */
	return err;
}

/* A malloc of the obj or mem table single-stepped where its return probe
 * can sit (3.11's _PyObject_Malloc: `lea; sub $0x18,%rsp` before its
 * first emulated instruction, a ~10 us trap a call in a VM): its returns
 * are caught at its direct call sites instead (python/sites.h). 1 when
 * probed so, 0 when already probed, else negative: probe it as any other. */
static int probe_by_call_sites(const struct python_alloc *a, const struct python_target *t,
			       struct tracer_bpf *skel, struct probes *p, pid_t attach_pid,
			       uint64_t fn, uint64_t size, uint64_t pool_cookie, bool verbose)
{
	struct probes_calls_result res;
	struct python_calls calls;
	int err;

	if (!probes_python_entry_stepped(a->pid, fn, size, PYTHON_ALLOC_MALLOC))
		return -EAGAIN;
	err = python_calls_find(t->path, t->bias, fn, &calls);
	if (err) {
		if (verbose)
			fprintf(stderr,
				"tracer: CPython's malloc at 0x%llx: its call sites not found (%s): "
				"probed on its entry\n",
				(unsigned long long)fn, strerror(-err));
		return err;
	}
	if (!calls.n) { /* not called directly: nothing to gain */
		python_calls_free(&calls);
		return -EAGAIN;
	}
	err = probes_attach_python_calls(skel, p, a->pid, attach_pid, fn, size, &calls, &res,
					 pool_cookie, verbose);
	if (err >= 0 && res.lost)
		fprintf(stderr,
			"tracer: warning: %zu of the %zu sites that call CPython's malloc at 0x%llx "
			"could not be probed: their allocations are counted as "
			"python_return_uncaught\n",
			res.lost, calls.n, (unsigned long long)fn);
	if (err > 0 && verbose && calls.moved_back)
		fprintf(stderr,
			"tracer: %zu of those call sites keep their probe on the return address (a "
			"branch lands past it)\n",
			calls.moved_back);
	python_calls_free(&calls);
	return err;
}

/* Whether the file at path is readable and has no symbol name (a
 * stripped or LTO build's pymalloc functions). */
static bool lacks_symbol(const char *path, const char *name)
{
	struct elfsym_file *f;
	struct elfsym sym;
	bool lacks;

	if (elfsym_open(path, &f))
		return false;
	lacks = elfsym_lookup(f, name, &sym) != 0;
	elfsym_close(f);
	return lacks;
}

/* The cookie bits of the probes on pymalloc's functions whose blocks get
 * marks (tracer.h's TRACER_COOKIE_POOLED): where pymalloc's free is
 * inlined into its callers, where no probe sees it (an LTO build, whose
 * _PyObject_Free has no symbol left), of a version whose pools the tracer
 * knows (3.8-3.14), pymalloc being the allocator (not PYTHONMALLOC's
 * others: mimalloc, malloc, the debug hooks). 0 otherwise. */
static uint64_t pool_marks_cookie(const struct python_alloc *a, const struct python_target *t)
{
	static const char *const others[] = {"PYTHONMALLOC=malloc", "PYTHONMALLOC=malloc_debug",
					     "PYTHONMALLOC=debug", "PYTHONMALLOC=mimalloc",
					     "PYTHONMALLOC=mimalloc_debug"};

	if (t->major != 3 || t->minor < 8 || t->minor > 14 ||
	    !lacks_symbol(t->path, "_PyObject_Free"))
		return 0;
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		if (target_environ_has(a->pid, others[i]))
			return 0;
	return TRACER_COOKIE_POOLED | (t->minor < 10 ? TRACER_COOKIE_SMALL_POOLS : 0);
}

static const char *const domain_names[PYTHON_ALLOC_NDOMAINS] = {"raw", "mem", "obj"};

/* The sizes of the functions at addrs[0..n) in process pid, from the FDEs
 * that start there in the files mapped at them (one read of each file's
 * CFI); 0 where none starts, or the address is in no file's code. 0, or
 * -errno when the process's mappings or a file's CFI could not be read. */
static int function_sizes(pid_t pid, const uint64_t *addrs, uint64_t *sizes, size_t n)
{
	enum { MAX = PYTHON_ALLOC_NDOMAINS * (PYTHON_ALLOC_FREE + 1) };
	char paths[MAX][PATH_MAX + 64];
	uint64_t vaddrs[MAX], vs[MAX], got[MAX];
	struct target_maps maps;
	size_t idx[MAX];
	int err;

	memset(sizes, 0, n * sizeof(*sizes));
	if (n > MAX)
		return -EINVAL;
	err = target_read_maps(pid, &maps);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		const struct target_mapping *m = target_maps_find(&maps, addrs[i]);
		struct elfsym_file *f;

		paths[i][0] = 0;
		if (!m || !m->exec || !m->path)
			continue;
		target_file_path(pid, m, paths[i], sizeof(paths[i]));
		if (elfsym_open(paths[i], &f)) {
			paths[i][0] = 0;
			continue;
		}
		if (elfsym_exec_vaddr(f, addrs[i] - m->start + m->offset, &vaddrs[i]))
			paths[i][0] = 0;
		elfsym_close(f);
	}
	target_maps_free(&maps);
	/* each file once, with the addresses in it */
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		if (!paths[i][0] || sizes[i])
			continue;
		for (size_t j = i; j < n; j++)
			if (!strcmp(paths[j], paths[i])) {
				idx[k] = j;
				vs[k++] = vaddrs[j];
			}
		err = unwind_function_sizes(paths[i], vs, got, k);
		if (err)
			return err;
		for (size_t j = 0; j < k; j++) {
			sizes[idx[j]] = got[j];
			paths[idx[j]][0] = 0; /* done */
		}
	}
	return 0;
}

/* The functions the tables hold, each probed once: the raw domain's free
 * is libc's, probed as such, but for a hook's (tracemalloc's free serves
 * all three tables: left out, no free of pymalloc's would be seen). */
static void probe_allocators(const struct python_alloc *a, const struct python_target *t,
			     struct tracer_bpf *skel, struct probes *p, pid_t attach_pid,
			     bool verbose)
{
	enum { N = PYTHON_ALLOC_NDOMAINS * (PYTHON_ALLOC_FREE + 1) };
	uint64_t sizes[N];
	int sized;
	bool libc_free = a->state == PYTHON_ALLOC_DEFAULT || a->state == PYTHON_ALLOC_LEFT_HOOKED;
	/* CPython's own pymalloc, its free inlined where no probe is */
	uint64_t pool_cookie = libc_free ? pool_marks_cookie(a, t) : 0;

	if (pool_cookie) /* before the probes that mark: frees take marks away */
		__atomic_store_n(&skel->bss->pool_marking, 1, __ATOMIC_RELAXED);

	/* Their sizes, from the FDEs that start at them in the files they lie
	 * in: a stripped build has no symbols, and placement needs the whole
	 * function */
	sized = function_sizes(a->pid, &a->fn[0][0], sizes, N);
	if (sized) {
		fprintf(stderr,
			"tracer: warning: cannot tell where the functions CPython's allocator "
			"tables hold in process %d start (%s): not probed\n",
			a->pid, strerror(-sized));
		return;
	}
	for (int d = 0; d < PYTHON_ALLOC_NDOMAINS; d++) {
		for (int k = PYTHON_ALLOC_MALLOC; k <= PYTHON_ALLOC_FREE; k++) {
			int err;

			if (k == PYTHON_ALLOC_FREE && d != PYTHON_ALLOC_RAW &&
			    a->fn[d][k] == a->fn[PYTHON_ALLOC_RAW][k])
				continue; /* probed once, as the raw domain's */
			if (k == PYTHON_ALLOC_FREE && d == PYTHON_ALLOC_RAW && libc_free)
				continue;
			/* the tables are the process's to write: a probe where no
			 * function starts could sit inside an instruction, in every
			 * process that maps the file (--follow) */
			if (!sizes[d * (PYTHON_ALLOC_FREE + 1) + k]) {
				fprintf(stderr,
					"tracer: warning: CPython's %s allocator table in process %d "
					"holds 0x%llx, where no function starts (no FDE): not "
					"probed\n",
					domain_names[d], a->pid, (unsigned long long)a->fn[d][k]);
				continue;
			}
			err = -EAGAIN;
			/* a raw function that only jumps to libc's: libc's
			 * probes catch its return */
			if (d == PYTHON_ALLOC_RAW && k != PYTHON_ALLOC_FREE && libc_free &&
			    python_raw_tail(t->path, t->bias, a->fn[d][k],
					    sizes[d * (PYTHON_ALLOC_FREE + 1) + k],
					    (enum python_site_kind)(k - PYTHON_ALLOC_MALLOC)))
				err = probes_attach_python_raw_tail(
				    skel, p, a->pid, attach_pid, a->fn[d][k],
				    sizes[d * (PYTHON_ALLOC_FREE + 1) + k], k, verbose);
			/* CPython's own functions only: a hook's are called
			 * through the tables, from no call site */
			if (k == PYTHON_ALLOC_MALLOC && d != PYTHON_ALLOC_RAW && libc_free)
				err = probe_by_call_sites(a, t, skel, p, attach_pid, a->fn[d][k],
							  sizes[d * (PYTHON_ALLOC_FREE + 1) + k],
							  pool_cookie, verbose);
			if (err < 0)
				err = probes_attach_python(
				    skel, p, a->pid, attach_pid, a->fn[d][k],
				    sizes[d * (PYTHON_ALLOC_FREE + 1) + k], k,
				    d != PYTHON_ALLOC_RAW && k != PYTHON_ALLOC_FREE ? pool_cookie : 0,
				    verbose);
			if (err < 0)
				fprintf(stderr,
					"tracer: warning: cannot probe CPython's allocator at "
					"0x%llx: %s\n",
					(unsigned long long)a->fn[d][k], strerror(-err));
		}
	}
}

/* CPython's raw allocator inlined into its callers (LTO) calls libc's
 * directly (python/sites.h): the return addresses of those calls go into
 * py_alloc_sites, their tail jumps get py_site_enter, so that their blocks
 * are in the Python domain as tracemalloc's. A site that cannot be
 * registered is said: its blocks would count as libc's. */
/* The raw table's functions as the binary initialises them: what the
 * inlined guards compare with, whatever the process holds there now (a
 * tracemalloc started before the attach has its hooks in the table, and
 * takes them out when it stops). Read from the file's bytes at the table;
 * where they are not there (a PIE's relocated .data), the live values. */
static void raw_defaults(const struct python_alloc *a, const struct python_target *t,
			 uint64_t *out, bool verbose)
{
	uint64_t file[5] = {0};
	struct elfsym_file *f;

	memcpy(out, a->fn[PYTHON_ALLOC_RAW], sizeof(file));
	if (elfsym_open(t->path, &f))
		return;
	if (!elfsym_read(f, a->table[PYTHON_ALLOC_RAW] - t->bias, file, sizeof(file)))
		for (int s = PYTHON_ALLOC_MALLOC; s <= PYTHON_ALLOC_FREE; s++)
			if (file[s] && file[s] + t->bias != out[s]) {
				if (verbose)
					fprintf(stderr,
						"tracer: CPython's raw table slot %d holds 0x%llx, "
						"its default is 0x%llx: the inlined calls are "
						"found by the default\n",
						s, (unsigned long long)out[s],
						(unsigned long long)(file[s] + t->bias));
				out[s] = file[s] + t->bias;
			}
	elfsym_close(f);
}

static void register_sites(const struct python_alloc *a, const struct python_target *t,
			   struct tracer_bpf *skel, struct probes *p, pid_t attach_pid,
			   bool verbose)
{
	int fd = bpf_map__fd(skel->maps.py_alloc_sites), err;
	uint64_t raw[5], guard[PYTHON_SITE_NKINDS];
	__u32 domain = TRACER_DOMAIN_PYTHON;
	size_t lost = 0;
	struct python_sites s;

	raw_defaults(a, t, raw, verbose);
	guard[PYTHON_SITE_MALLOC] = raw[PYTHON_ALLOC_MALLOC];
	guard[PYTHON_SITE_CALLOC] = raw[PYTHON_ALLOC_CALLOC];
	guard[PYTHON_SITE_REALLOC] = raw[PYTHON_ALLOC_REALLOC];
	err = python_sites_find(t->path, t->bias, guard, &s);
	if (err) {
		fprintf(stderr,
			"tracer: warning: cannot read CPython's code in %s for its inlined "
			"allocator calls (%s): blocks they make count as libc's\n",
			t->path, strerror(-err));
		return;
	}
	for (size_t i = 0; i < s.n; i++) {
		struct tracer_site_key key = {.addr = s.v[i].addr, .tgid = (__u32)a->pid};

		if (s.v[i].tail)
			err = probes_attach_site(skel, p, a->pid, attach_pid, s.v[i].addr, verbose);
		else
			err = bpf_map_update_elem(fd, &key, &domain, BPF_ANY) ? -errno : 0;
		if (err < 0)
			lost++;
	}
	if (verbose)
		fprintf(stderr,
			"tracer: CPython's inlined raw allocator calls libc's at %zu sites (%zu "
			"tail jumps) in %s; %zu calls of libc's allocators there are CPython's "
			"own\n",
			s.n, s.tails, t->path, s.unguarded);
	if (lost)
		fprintf(stderr,
			"tracer: warning: %zu of the %zu sites where CPython's inlined allocator "
			"calls libc's could not be registered: their blocks count as libc's\n",
			lost, s.n);
	python_sites_free(&s);
}

/* Where CPython initialises an object (python/newref.h) gets
 * py_new_reference: an object taken from a free list moves to the line
 * that takes it, as tracemalloc moves it. What cannot be found is said:
 * such objects keep the line of their first allocation. */
static void register_new_references(const struct python_alloc *a, const struct python_target *t,
				    struct tracer_bpf *skel, struct probes *p, pid_t attach_pid,
				    bool asked, bool verbose)
{
	struct python_newref_sites s;
	uint64_t *addr, *cookie;
	int err, made;

	err = python_newref_find(t->path, t->bias, t->minor, &s);
	if (err) {
		/* said when asked for (--python-free-lists), else with -v: 3.8
		 * would say it at every run, and for every process of -a */
		if (asked || verbose)
			fprintf(stderr,
				"tracer: %scannot find where CPython initialises objects in "
				"%s (%s): an object taken from a free list keeps the line it "
				"was allocated at, where tracemalloc gives it the line that "
				"takes it\n",
				asked ? "warning: --python-free-lists: " : "", t->path,
				err == -ENOENT ? "no check of tracemalloc's hook found"
					       : strerror(-err));
		return;
	}
	addr = calloc(s.n + 1, sizeof(*addr));
	cookie = calloc(s.n + 1, sizeof(*cookie));
	if (!addr || !cookie) {
		made = -ENOMEM;
	} else {
		for (size_t i = 0; i < s.n; i++) {
			addr[i] = s.v[i].addr;
			cookie[i] = (uint64_t)s.v[i].reg | (s.v[i].indirect ? NEWREF_COOKIE_INDIRECT : 0) |
				    (uint64_t)(uint32_t)s.v[i].disp << 32;
		}
		made = probes_attach_new_references(skel, p, a->pid, attach_pid, addr, cookie, s.n,
						    verbose);
	}
	if (verbose)
		fprintf(stderr,
			"tracer: CPython initialises objects at %zu places in %s (and at %zu "
			"where the object could not be located: not probed)\n",
			s.n, t->path, s.unresolved);
	if (made < 0)
		fprintf(stderr,
			"tracer: warning: cannot probe where CPython initialises objects (%s): an "
			"object taken from a free list keeps the line it was allocated at\n",
			strerror(-made));
	free(addr);
	free(cookie);
	python_newref_free(&s);
}

/* Says what the tables hold when they are not CPython's defaults and
 * settles the hook: 0, or -EINVAL after the line saying why it is
 * refused. */
static int settle_state(struct python_alloc *a, bool hook)
{
	pid_t pid = a->pid;

	switch (a->state) {
	case PYTHON_ALLOC_DEFAULT:
		return 0;
	case PYTHON_ALLOC_TRACEMALLOC:
		if (hook) {
			fprintf(stderr,
				"tracer: --hook-pymalloc: process %d runs tracemalloc (its allocator "
				"tables hold tracemalloc's hooks): refused, left as they are\n",
				pid);
			return -EINVAL;
		}
		fprintf(stderr,
			"tracer: process %d runs tracemalloc: its allocator tables hold "
			"tracemalloc's hooks, traced as CPython's allocators\n",
			pid);
		return 0;
	case PYTHON_ALLOC_OTHER_HOOK:
		if (hook) {
			fprintf(stderr,
				"tracer: --hook-pymalloc: process %d's allocator tables hold another "
				"hook (PYTHONMALLOC=debug or an extension's): refused, left as they "
				"are\n",
				pid);
			return -EINVAL;
		}
		return 0;
	case PYTHON_ALLOC_LEFT_HOOKED:
		break;
	}
	if (adopt_left_hook(a)) {
		fprintf(stderr,
			"tracer: %sprocess %d was left hooked by an earlier --hook-pymalloc (its "
			"object and mem allocators call the raw allocator) and CPython's own "
			"functions cannot be found: it stays so (every block is traced)\n",
			hook ? "--hook-pymalloc: " : "", pid);
		a->state = PYTHON_ALLOC_OTHER_HOOK; /* nothing to hook or restore */
		return 0;
	}
	if (hook)
		fprintf(stderr,
			"tracer: --hook-pymalloc: process %d was left hooked by an earlier "
			"--hook-pymalloc (its object and mem allocators call the raw allocator): "
			"taken over, CPython's own restored when tracing ends\n",
			pid);
	else
		fprintf(stderr,
			"tracer: process %d was left hooked by an earlier --hook-pymalloc (its "
			"object and mem allocators call the raw allocator): every block is traced; "
			"--hook-pymalloc would restore CPython's own when tracing ends\n",
			pid);
	return 0;
}

static int read_tables(const struct python_alloc *a, uint64_t out[PYTHON_ALLOC_NDOMAINS][5]);
static bool pymalloc_hidden(const struct python_target *t, pid_t pid);

int python_alloc_setup(struct python_alloc *a, const struct python_target *t,
		       struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
		       bool hook, enum python_free_lists free_lists, bool verbose)
{
	int err = find_tables(t, pid, a);

	if (err) {
		if (hook) {
			fprintf(stderr,
				"tracer: --hook-pymalloc: cannot find CPython's allocator "
				"tables in process %d (%s)\n",
				pid, strerror(-err));
			return -EINVAL;
		}
		if (free_lists == PYTHON_FREE_LISTS_ASKED)
			fprintf(stderr,
				"tracer: warning: --python-free-lists: CPython's allocator tables "
				"not found in process %d (%s): objects taken from free lists keep "
				"the line they were allocated at\n",
				pid, strerror(-err));
		else if (verbose)
			fprintf(stderr, "tracer: CPython's allocator tables not found (%s)\n",
				strerror(-err));
		return 0;
	}
	if (verbose)
		fprintf(stderr,
			"tracer: CPython allocator tables: raw 0x%llx, mem 0x%llx, obj 0x%llx\n",
			(unsigned long long)a->table[PYTHON_ALLOC_RAW],
			(unsigned long long)a->table[PYTHON_ALLOC_MEM],
			(unsigned long long)a->table[PYTHON_ALLOC_OBJ]);
	a->state = tables_state(a);
	if (settle_state(a, hook))
		return -EINVAL;
	probe_allocators(a, t, skel, p, attach_pid, verbose);
	register_sites(a, t, skel, p, attach_pid, verbose);
	/* on by default, though it costs a probe hit for every object made:
	 * without it a block reused from a free list keeps the line of its
	 * first allocation, however often it is reused (README). Where
	 * pymalloc is hidden, a block its inlined free gave back is still
	 * traced: an object made there later would move that stale trace to
	 * its line */
	if (free_lists == PYTHON_FREE_LISTS_OFF) {
		if (verbose)
			fprintf(stderr,
				"tracer: CPython: an object taken from a free list keeps the line "
				"it was allocated at (--no-python-free-lists)\n");
	} else if (!hook && pymalloc_hidden(t, pid)) {
		if (free_lists == PYTHON_FREE_LISTS_ASKED)
			fprintf(stderr,
				"tracer: warning: --python-free-lists: CPython in process %d hides "
				"pymalloc: objects taken from free lists keep the line they were "
				"allocated at (launch with --python-malloc or attach with "
				"--hook-pymalloc)\n",
				pid);
		else if (verbose)
			fprintf(stderr,
				"tracer: CPython in process %d: objects taken from free lists keep "
				"the line they were allocated at (its pymalloc is not probed)\n",
				pid);
	} else {
		register_new_references(a, t, skel, p, attach_pid,
					free_lists == PYTHON_FREE_LISTS_ASKED, verbose);
	}
	a->target = t;
	a->skel = skel;
	a->probes = p;
	a->attach_pid = attach_pid;
	a->verbose = verbose;
	if (!hook || a->state == PYTHON_ALLOC_OTHER_HOOK) {
		a->tracing_read = !read_tables(a, a->tracing);
		memcpy(a->followed, a->tracing, sizeof(a->followed));
		return 0;
	}
	err = hook_tables(a);
	if (err) {
		fprintf(stderr, "tracer: --hook-pymalloc: %s\n",
			err == -EBUSY ? "the allocator tables are not CPython's defaults (another "
					"hook is installed): left alone"
				      : strerror(-err));
		return -EINVAL;
	}
	if (a->state == PYTHON_ALLOC_DEFAULT)
		fprintf(stderr,
			"tracer: --hook-pymalloc: CPython's object and mem allocators in process "
			"%d now call the raw allocator; restored when tracing ends\n",
			pid);
	a->tracing_read = !read_tables(a, a->tracing);
	memcpy(a->followed, a->tracing, sizeof(a->followed));
	return 0;
}

/* The tables' contents now; 0 or -errno. */
static int read_tables(const struct python_alloc *a, uint64_t out[PYTHON_ALLOC_NDOMAINS][5])
{
	for (int d = 0; d < PYTHON_ALLOC_NDOMAINS; d++) {
		int err = target_mem_read(a->mem, a->table[d], out[d], sizeof(out[d]));

		if (err)
			return err;
	}
	return 0;
}

/* Probes what the tables hold now (seen: a with their contents and
 * state), keeps it in kept and says what it follows (python_alloc_check). */
static void follow(struct python_alloc *a, const struct python_alloc *seen,
		   uint64_t kept[PYTHON_ALLOC_NDOMAINS][5], bool *done, const char *what)
{
	probe_allocators(seen, a->target, a->skel, a->probes, a->attach_pid, a->verbose);
	memcpy(kept, seen->fn, sizeof(seen->fn));
	*done = true;
	fprintf(stderr, "tracer: process %d %s\n", a->pid, what);
}

int python_alloc_check(struct python_alloc *a, bool warn)
{
	uint64_t now[PYTHON_ALLOC_NDOMAINS][5];
	size_t size = sizeof(now);
	struct python_alloc seen;

	if (!a->tracing_read || !a->target || read_tables(a, now) ||
	    !memcmp(now, a->followed, size))
		return 0;
	seen = *a;
	memcpy(seen.fn, now, size);
	seen.state = tables_state(&seen);
	/* Each of tracemalloc's two changes is followed once, to the functions
	 * first seen (the same again when it starts again): what a process
	 * writes there is probed, and under --follow in every process mapping
	 * the file. Its start puts its hooks around what the tables held; its
	 * stop, where it ran at the attach, puts back CPython's own. */
	if (seen.state == PYTHON_ALLOC_TRACEMALLOC && !a->hooks_followed) {
		follow(a, &seen, a->hooks, &a->hooks_followed,
		       "started tracemalloc: its hooks in the allocator tables are probed now, so "
		       "that a block counts once and what tracemalloc allocates for itself not at "
		       "all (until then, up to 0.25 s, it counted)");
	} else if (seen.state == PYTHON_ALLOC_DEFAULT && a->state == PYTHON_ALLOC_TRACEMALLOC &&
		   !a->defaults_followed) {
		follow(a, &seen, a->defaults, &a->defaults_followed,
		       "stopped tracemalloc: CPython's own allocators, back in its tables, are "
		       "probed now (until then, up to 0.25 s, their blocks were not seen)");
	} else if (!memcmp(now, a->tracing, size) ||
		   (a->hooks_followed && !memcmp(now, a->hooks, size)) ||
		   (a->defaults_followed && !memcmp(now, a->defaults, size))) {
		if (a->verbose)
			fprintf(stderr, "tracer: process %d's allocator tables changed back: "
				"followed\n", a->pid);
	} else if (memcmp(now, a->unfollowed, size)) {
		/* said once it has held for a turn: tracemalloc writes the
		 * three tables one after another */
		memcpy(a->unfollowed, now, size);
		return 0;
	} else if (warn && !a->change_said) {
		a->change_said = true;
		fprintf(stderr,
			"tracer: warning: process %d changed its allocator tables while traced "
			"(PyMem_SetAllocator, not tracemalloc's): the functions they hold now are "
			"not probed, and blocks made through them may count in another domain "
			"than tracemalloc's (or not at all)\n",
			a->pid);
	}
	memcpy(a->followed, now, size);
	return 1;
}

void python_alloc_restore(struct python_alloc *a)
{
	int err;

	if (!a->hooked)
		return;
	err = unhook_tables(a);
	if (err == -EBUSY)
		fprintf(stderr,
			"tracer: --hook-pymalloc: process %d changed its allocator tables "
			"since; left as they are\n",
			a->pid);
	else if (err && target_alive(a->pid))
		fprintf(stderr,
			"tracer: --hook-pymalloc: cannot restore process %d's allocator "
			"tables: %s\n",
			a->pid, strerror(-err));
	else if (!err)
		fprintf(stderr, "tracer: --hook-pymalloc: process %d's allocator tables restored\n",
			a->pid);
}

/* Whether the process's pymalloc runs inlined where its probes do not see
 * it (a stripped or LTO build with CPython's own tables, not PYTHONMALLOC=
 * malloc): its blocks are partly seen, partly not, and their frees too. */
static bool pymalloc_hidden(const struct python_target *t, pid_t pid)
{
	struct python_alloc tables;

	/* PYTHONMALLOC=malloc routes every object allocation to libc */
	if (target_environ_has(pid, "PYTHONMALLOC=malloc"))
		return false;
	/* tables left hooked or tracemalloc's call functions that are seen */
	if (!find_tables(t, pid, &tables) && tables_state(&tables) != PYTHON_ALLOC_DEFAULT)
		return false;
	return lacks_symbol(t->path, "_PyObject_Malloc");
}

void python_alloc_warn_if_hidden(const struct python_target *t, pid_t pid)
{
	if (pymalloc_hidden(t, pid))
		fprintf(
		    stderr,
		    "tracer: warning: CPython in process %d hides pymalloc (stripped or LTO "
		    "build): only Python blocks above 512 bytes, which reach libc malloc, are "
		    "traced; launch it with --python-malloc (PYTHONMALLOC=malloc) or attach with "
		    "--hook-pymalloc for all of them\n",
		    pid);
}
