#include <capstone/capstone.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "elfsym.h"
#include "placement.h"
#include "python/sites.h"
#include "util/util.h"

/* How far back from a call the guard may be: the inlined raw function's
 * body between them is a handful of instructions (moves of its arguments,
 * 0 -> 1 for malloc(0), the pops of a tail call's epilogue). */
#define GUARD_WINDOW 16

static const char *const libc_names[PYTHON_SITE_NKINDS] = {"malloc", "calloc", "realloc"};

struct recent {
	uint64_t addr;
	uint16_t size;
	uint8_t bytes[16];
};

/* A direct (rel32, or a short jmp) or memory-indirect call or jmp (an
 * optional bnd or notrack prefix, a REX): its target, or the memory it
 * jumps through with *mem. No conditional tail call to libc's allocators
 * is in the binaries seen (GCC emits none). */
static bool branch_of(const cs_insn *in, uint64_t *target, bool *mem, bool *call)
{
	const uint8_t *b = in->bytes;
	size_t i = 0, n = in->size;
	int32_t rel;

	while (i < n && (b[i] == 0xf2 || b[i] == 0x3e))
		i++;
	if (i < n && (b[i] & 0xf0) == 0x40)
		i++;
	if (i < n && (b[i] == 0xe8 || b[i] == 0xe9) && n - i == 5) {
		memcpy(&rel, b + i + 1, 4);
		*mem = false;
		*call = b[i] == 0xe8;
	} else if (i < n && b[i] == 0xeb && n - i == 2) {
		rel = (int8_t)b[i + 1];
		*mem = false;
		*call = false;
	} else if (i + 1 < n && b[i] == 0xff && (b[i + 1] == 0x15 || b[i + 1] == 0x25) &&
		   n - i == 6) {
		memcpy(&rel, b + i + 2, 4);
		*mem = true;
		*call = b[i + 1] == 0x15;
	} else {
		return false;
	}
	*target = in->address + n + (uint64_t)(int64_t)rel;
	return true;
}

static bool in_group(const cs_insn *in, uint8_t group)
{
	for (uint8_t i = 0; i < in->detail->groups_count; i++)
		if (in->detail->groups[i] == group)
			return true;
	return false;
}

/* Whether control may leave the straight line before in: the guard's
 * conditional branch and those of the inlined body may be crossed. */
static bool ends_line(const cs_insn *in)
{
	return in_group(in, CS_GRP_CALL) || in_group(in, CS_GRP_RET) || in_group(in, CS_GRP_INT) ||
	       in_group(in, CS_GRP_IRET) || in->id == X86_INS_JMP || in->id == X86_INS_LJMP ||
	       in->id == X86_INS_UD2 || in->id == X86_INS_HLT || in->id == X86_INS_SYSCALL;
}

/* Whether in names the guard's function: `cmp $fn,%rax` (an immediate, in
 * a non-PIE executable) or `lea fn(%rip),%rdx` before a `cmp %rdx,%rax`. */
static bool names(const cs_insn *in, uint64_t fn)
{
	const cs_x86 *x = &in->detail->x86;

	for (uint8_t i = 0; i < x->op_count; i++) {
		const cs_x86_op *op = &x->operands[i];

		if (op->type == X86_OP_IMM && (uint64_t)op->imm == fn)
			return true;
		if (op->type == X86_OP_MEM && in->id == X86_INS_LEA &&
		    op->mem.base == X86_REG_RIP && op->mem.index == X86_REG_INVALID &&
		    in->address + in->size + (uint64_t)op->mem.disp == fn)
			return true;
	}
	return false;
}

/* Whether a guard naming fn stands in the straight line of the n
 * instructions before a call (ring[.. last], the most recent last). */
static bool guarded(csh h, cs_insn *in, const struct recent *ring, size_t n, size_t last,
		    uint64_t fn)
{
	for (size_t k = 0; k < n; k++) {
		const struct recent *r = &ring[(last + GUARD_WINDOW - k) % GUARD_WINDOW];
		const uint8_t *p = r->bytes;
		size_t left = r->size;
		uint64_t addr = r->addr;

		if (!cs_disasm_iter(h, &p, &left, &addr, in))
			return false;
		if (names(in, fn))
			return true;
		if (ends_line(in))
			return false;
	}
	return false;
}

static int add(struct python_sites *out, uint64_t addr, enum python_site_kind kind, bool tail)
{
	if (array_reserve((void **)&out->v, &out->cap, sizeof(*out->v), out->n + 1))
		return -ENOMEM;
	out->v[out->n++] = (struct python_site){.addr = addr, .kind = kind, .tail = tail};
	if (tail)
		out->tails++;
	else
		out->calls++;
	return 0;
}

static int callee_kind(const struct python_sites_in *in, uint64_t target, bool mem)
{
	for (size_t i = 0; i < in->ncallees; i++)
		if (in->callees[i].addr == target && in->callees[i].slot == mem)
			return (int)in->callees[i].kind;
	return -1;
}

int python_sites_scan(const uint8_t *code, size_t size, uint64_t vaddr,
		      const struct python_sites_in *in, struct python_sites *out)
{
	struct recent ring[GUARD_WINDOW];
	const uint8_t *p = code;
	size_t left = size, n = 0, last = 0;
	uint64_t addr = vaddr;
	cs_insn *insn, *detail;
	csh sweep, h;
	int err = 0;

	if (cs_open(CS_ARCH_X86, CS_MODE_64, &sweep) != CS_ERR_OK)
		return -ENOMEM;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK) {
		cs_close(&sweep);
		return -ENOMEM;
	}
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	insn = cs_malloc(sweep);
	detail = cs_malloc(h);
	if (!insn || !detail)
		err = -ENOMEM;
	while (!err && left) {
		uint64_t target;
		bool mem, call;
		int kind;

		if (!cs_disasm_iter(sweep, &p, &left, &addr, insn)) {
			p++, left--, addr++; /* not code: resynchronise */
			n = 0;
			continue;
		}
		if (branch_of(insn, &target, &mem, &call) &&
		    (kind = callee_kind(in, target, mem)) >= 0) {
			if (in->guard[kind] && guarded(h, detail, ring, n, last, in->guard[kind]))
				err = add(out, call ? insn->address + insn->size : insn->address,
					  (enum python_site_kind)kind, !call);
			else
				out->unguarded++;
		}
		last = (last + 1) % GUARD_WINDOW;
		ring[last].addr = insn->address;
		ring[last].size = insn->size;
		memcpy(ring[last].bytes, insn->bytes, insn->size);
		if (n < GUARD_WINDOW)
			n++;
	}
	if (insn)
		cs_free(insn, 1);
	if (detail)
		cs_free(detail, 1);
	cs_close(&sweep);
	cs_close(&h);
	return err;
}

struct find_state {
	struct python_sites_in in;
	struct python_sites_callee callees[64];
	struct python_sites *out;
};

static bool is_plt(const char *name)
{
	return !strncmp(name, ".plt", 4);
}

static void add_callee(struct find_state *st, uint64_t addr, enum python_site_kind kind)
{
	if (st->in.ncallees < sizeof(st->callees) / sizeof(st->callees[0]))
		st->callees[st->in.ncallees++] =
		    (struct python_sites_callee){.addr = addr, .kind = kind, .slot = false};
}

/* A PLT section: each stub that jumps through an allocator's GOT slot is
 * that allocator for its callers (from its endbr64 where it has one). */
static int find_stubs(const char *name, uint64_t vaddr, const uint8_t *code, size_t size, void *arg)
{
	struct find_state *st = arg;
	const uint8_t *p = code;
	size_t left = size, nslots = st->in.ncallees;
	uint64_t addr = vaddr, prev = 0;
	bool prev_endbr = false;
	cs_insn *in;
	csh h;

	if (!is_plt(name))
		return 0;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
		return -ENOMEM;
	in = cs_malloc(h);
	while (in && left) {
		uint64_t target;
		bool mem, call;

		if (!cs_disasm_iter(h, &p, &left, &addr, in)) {
			p++, left--, addr++;
			prev_endbr = false;
			continue;
		}
		if (branch_of(in, &target, &mem, &call) && mem && !call)
			for (size_t i = 0; i < nslots; i++)
				if (st->callees[i].slot && st->callees[i].addr == target) {
					add_callee(st, in->address, st->callees[i].kind);
					if (prev_endbr && prev + 4 == in->address)
						add_callee(st, prev, st->callees[i].kind);
				}
		prev_endbr = in->id == X86_INS_ENDBR64;
		prev = in->address;
	}
	if (in)
		cs_free(in, 1);
	cs_close(&h);
	return in ? 0 : -ENOMEM;
}

static int find_calls(const char *name, uint64_t vaddr, const uint8_t *code, size_t size, void *arg)
{
	struct find_state *st = arg;

	if (is_plt(name))
		return 0;
	return python_sites_scan(code, size, vaddr, &st->in, st->out);
}

int python_sites_find(const char *path, uint64_t bias, const uint64_t guard[PYTHON_SITE_NKINDS],
		      struct python_sites *out)
{
	struct find_state st = {.out = out};
	struct elfsym_file *f;
	int err;

	memset(out, 0, sizeof(*out));
	err = elfsym_open(path, &f);
	if (err)
		return err;
	for (int k = 0; k < PYTHON_SITE_NKINDS; k++) {
		uint64_t slots[4];
		int n = elfsym_import_slots(f, libc_names[k], slots, 4);

		st.in.guard[k] = guard[k] ? guard[k] - bias : 0;
		for (int i = 0; i < n; i++)
			st.callees[st.in.ncallees++] = (struct python_sites_callee){
			    .addr = slots[i], .kind = (enum python_site_kind)k, .slot = true};
	}
	st.in.callees = st.callees;
	err = elfsym_code_sections(f, find_stubs, &st);
	if (!err)
		err = elfsym_code_sections(f, find_calls, &st);
	elfsym_close(f);
	if (err) {
		python_sites_free(out);
		return err;
	}
	for (size_t i = 0; i < out->n; i++)
		out->v[i].addr += bias;
	return 0;
}

void python_sites_free(struct python_sites *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* A direct branch's target (jmp, jcc, call, loop and jrcxz with a
 * displacement; an optional bnd or ds prefix, a REX): true and *target. */
static bool direct_target(const cs_insn *in, uint64_t *target)
{
	const uint8_t *b = in->bytes;
	size_t i = 0, n = in->size;
	int32_t rel;

	while (i < n && (b[i] == 0xf2 || b[i] == 0x3e || b[i] == 0x2e))
		i++;
	if (i < n && (b[i] & 0xf0) == 0x40)
		i++;
	if (i >= n)
		return false;
	if ((b[i] == 0xe8 || b[i] == 0xe9) && n - i == 5) {
		memcpy(&rel, b + i + 1, 4);
	} else if ((b[i] == 0xeb || (b[i] >= 0x70 && b[i] <= 0x7f) ||
		    (b[i] >= 0xe0 && b[i] <= 0xe3)) &&
		   n - i == 2) {
		rel = (int8_t)b[i + 1];
	} else if (b[i] == 0x0f && i + 1 < n && b[i + 1] >= 0x80 && b[i + 1] <= 0x8f &&
		   n - i == 6) {
		memcpy(&rel, b + i + 2, 4);
	} else {
		return false;
	}
	*target = in->address + n + (uint64_t)(int64_t)rel;
	return true;
}

static int add_call(struct python_calls *out, const struct python_call *c)
{
	if (out->n >= PYTHON_CALLS_MAX)
		return -E2BIG;
	if (array_reserve((void **)&out->v, &out->cap, sizeof(*out->v), out->n + 1))
		return -ENOMEM;
	out->v[out->n++] = *c;
	return 0;
}

int python_calls_scan(const uint8_t *code, size_t size, uint64_t vaddr, uint64_t fn,
		      struct python_calls *out, uint64_t **targets, size_t *ntargets,
		      size_t *cap)
{
	const uint8_t *p = code;
	size_t left = size;
	uint64_t addr = vaddr;
	cs_insn *insn;
	csh h;
	int err = 0;

	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
		return -ENOMEM;
	insn = cs_malloc(h);
	if (!insn)
		err = -ENOMEM;
	while (!err && left) {
		uint64_t target, t2;
		bool mem, call;

		if (!cs_disasm_iter(h, &p, &left, &addr, insn)) {
			p++, left--, addr++; /* not code: resynchronise */
			continue;
		}
		if (!direct_target(insn, &target))
			continue;
		if (array_reserve((void **)targets, cap, sizeof(**targets), *ntargets + 1)) {
			err = -ENOMEM;
			break;
		}
		(*targets)[(*ntargets)++] = target;
		if (target != fn || !branch_of(insn, &t2, &mem, &call) || mem)
			continue;
		if (call) {
			struct placement pl;
			struct python_call c = {.addr = addr};

			/* p is the return address's byte: what follows the call */
			if (!left || placement_after_call(p, left < 64 ? left : 64, &pl))
				continue; /* nothing decodes after it: never returns */
			c.probe = (uint32_t)pl.offset;
			c.emulated = pl.emulated;
			c.ret_emulated = pl.entry_emulated;
			err = add_call(out, &c);
		} else {
			struct python_call c = {.addr = insn->address, .tail = true, .emulated = true};

			err = add_call(out, &c);
		}
	}
	if (insn)
		cs_free(insn, 1);
	cs_close(&h);
	return err;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A call's return probe moved past its return address stays there only
 * where no direct branch lands in (addr, addr + probe]: a path that joins
 * there would run the probe without the call (or the call without it). */
static void settle(struct python_calls *c, uint64_t *targets, size_t n)
{
	qsort(targets, n, sizeof(*targets), cmp_u64);
	for (size_t i = 0; i < c->n; i++) {
		struct python_call *k = &c->v[i];
		size_t lo = 0, hi = n;

		if (k->tail || !k->probe)
			continue;
		while (lo < hi) { /* the first target above addr */
			size_t mid = lo + (hi - lo) / 2;

			if (targets[mid] <= k->addr)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < n && targets[lo] <= k->addr + k->probe) {
			k->probe = 0;
			k->emulated = k->ret_emulated;
			c->moved_back++;
		}
	}
}

struct calls_state {
	uint64_t fn;
	struct python_calls *out;
	uint64_t *targets;
	size_t ntargets, cap;
};

static int find_fn_calls(const char *name, uint64_t vaddr, const uint8_t *code, size_t size,
			 void *arg)
{
	struct calls_state *st = arg;

	if (is_plt(name))
		return 0;
	return python_calls_scan(code, size, vaddr, st->fn, st->out, &st->targets, &st->ntargets,
				 &st->cap);
}

int python_calls_find(const char *path, uint64_t bias, uint64_t fn, struct python_calls *out)
{
	struct calls_state st = {.fn = fn - bias, .out = out};
	struct elfsym_file *f;
	int err;

	memset(out, 0, sizeof(*out));
	err = elfsym_open(path, &f);
	if (err)
		return err;
	err = elfsym_code_sections(f, find_fn_calls, &st);
	elfsym_close(f);
	if (!err)
		settle(out, st.targets, st.ntargets);
	free(st.targets);
	if (err) {
		python_calls_free(out);
		return err;
	}
	for (size_t i = 0; i < out->n; i++)
		out->v[i].addr += bias;
	return 0;
}

void python_calls_free(struct python_calls *c)
{
	free(c->v);
	memset(c, 0, sizeof(*c));
}

#define RAW_TAIL_MAX_BYTES 256

static bool writes_rsp(csh h, const cs_insn *in)
{
	cs_regs rd, wr;
	uint8_t nrd, nwr;

	if (cs_regs_access(h, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return true;
	for (uint8_t i = 0; i < nwr; i++)
		if (wr[i] == X86_REG_RSP || wr[i] == X86_REG_ESP || wr[i] == X86_REG_SP ||
		    wr[i] == X86_REG_SPL)
			return true;
	return false;
}

static bool is_callee(const struct find_state *st, uint64_t target, bool mem)
{
	for (size_t i = 0; i < st->in.ncallees; i++)
		if (st->callees[i].addr == target && st->callees[i].slot == mem)
			return true;
	return false;
}

bool python_raw_tail(const char *path, uint64_t bias, uint64_t fn, uint64_t size,
		     enum python_site_kind kind)
{
	struct find_state st = {0};
	uint8_t code[RAW_TAIL_MAX_BYTES];
	uint64_t start = fn - bias, addr = start, slots[4];
	struct elfsym_file *f;
	const uint8_t *p = code;
	size_t left = size;
	bool ok = false, tail = false;
	cs_insn *in = NULL;
	csh h;
	int n;

	if (kind >= PYTHON_SITE_NKINDS || !size || size > sizeof(code) || elfsym_open(path, &f))
		return false;
	n = elfsym_import_slots(f, libc_names[kind], slots, 4);
	for (int i = 0; i < n; i++)
		st.callees[st.in.ncallees++] =
		    (struct python_sites_callee){.addr = slots[i], .kind = kind, .slot = true};
	if (elfsym_code_sections(f, find_stubs, &st) || elfsym_read(f, start, code, size)) {
		elfsym_close(f);
		return false;
	}
	elfsym_close(f);
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
		return false;
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	in = cs_malloc(h);
	/* every instruction of the function (its FDE's range, which leaves
	 * out the padding after it): none may leave it but by a jmp to libc's
	 * function, nor fall off its end */
	ok = in != NULL;
	while (ok && left) {
		uint64_t target;
		bool mem, call, last_jmp;

		if (!cs_disasm_iter(h, &p, &left, &addr, in) || in_group(in, CS_GRP_CALL) ||
		    in_group(in, CS_GRP_RET) || in_group(in, CS_GRP_INT) ||
		    in_group(in, CS_GRP_IRET) || in->id == X86_INS_SYSCALL ||
		    in->id == X86_INS_UD2 || in->id == X86_INS_HLT || writes_rsp(h, in)) {
			ok = false;
			break;
		}
		last_jmp = in->id == X86_INS_JMP;
		if (branch_of(in, &target, &mem, &call) && !call && is_callee(&st, target, mem))
			tail = true;
		else if (in_group(in, CS_GRP_JUMP) &&
			 (!direct_target(in, &target) || target < start || target >= start + size))
			ok = false; /* indirect, or out of the function elsewhere */
		if (!left && !last_jmp)
			ok = false; /* it would run off its end */
	}
	if (in)
		cs_free(in, 1);
	cs_close(&h);
	return ok && tail;
}
