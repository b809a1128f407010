#include <capstone/capstone.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfsym.h"
#include "placement.h"

/* A prologue worth walking is short; past this the probe stays at the entry. */
#define PROLOGUE_MAX_INSNS 32
/* Functions larger than this are not read whole: their probe stays at the entry. */
#define FUNC_MAX_BYTES (4u << 20)
#define X86_MAX_INSN 15
/* The largest frame a moved entry probe passes (placement_file_frame). */
#define STACK_SUB_MAX 4096
/* How far past a call's return address its return probe may move. */
#define AFTER_CALL_MAX_INSNS 6

/* The rules of arch/x86/kernel/uprobes.c (6.18): branch_setup_xol_ops()
 * emulates nop (0x90 with any prefix but rep: that is pause), jmp/call rel and
 * jcc without a 0x66 prefix; push_setup_xol_ops() emulates push reg, one byte
 * or 41 5x. uprobe_init_insn() refuses segment-override and lock prefixes.
 * nopl (0f 1f /0) is single-stepped: scripts/uprobe_cost measures ~10 us for
 * nop5 here, as for test or mov (later kernels emulate it). */
static bool insn_emulated(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;
	uint8_t op0 = x->opcode[0], op1 = x->opcode[1];
	bool has66 = x->prefix[2] == 0x66;

	if (x->prefix[0] == 0xf0 || x->prefix[1] == 0x2e || x->prefix[1] == 0x36 ||
	    x->prefix[1] == 0x3e || x->prefix[1] == 0x26)
		return false;
	if (op0 == 0x90) /* rep nop is pause; REX.B nop is xchg %r8,%rax */
		return in->id != X86_INS_PAUSE && x->prefix[0] != 0xf3 && !(x->rex & 1);
	if (op0 == 0xe8 || op0 == 0xe9 || op0 == 0xeb || (op0 >= 0x70 && op0 <= 0x7f) ||
	    (op0 == 0x0f && op1 >= 0x80 && op1 <= 0x8f))
		return !has66;
	if (op0 >= 0x50 && op0 <= 0x57)
		return in->size == 1 || (in->size == 2 && x->rex == 0x41);
	return false;
}

/* Registers a moved probe must find as they were at the entry: the
 * arguments it reads, the stack pointer (arguments and return address are
 * found through it) and the frame pointer (the kernel's stack walk starts
 * there). One row per register, with its parts; the row's index is its bit in
 * keep, rows 6 and 7 (rsp, rbp) always apply. */
static const uint16_t protected_regs[8][4] = {
    {X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL},
    {X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL},
    {X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL},
    {X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL},
    {X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B},
    {X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B},
    {X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL},
    {X86_REG_RBP, X86_REG_EBP, X86_REG_BP, X86_REG_BPL},
};

static bool reg_protected(uint16_t r, unsigned keep)
{
	size_t i, j;

	/* dh and ch are parts of rdx and rcx too */
	if ((r == X86_REG_DH && (keep & PLACEMENT_RDX)) ||
	    (r == X86_REG_CH && (keep & PLACEMENT_RCX)))
		return true;
	keep |= 3u << 6;
	for (i = 0; i < 8; i++)
		for (j = 0; j < 4; j++)
			if ((keep & (1u << i)) && protected_regs[i][j] == r)
				return true;
	return false;
}

static bool is_push(const cs_insn *in)
{
	return in->id == X86_INS_PUSH || in->id == X86_INS_PUSHFQ;
}

/* `sub $imm,%rsp` (a frame being made): imm, else 0. Only an entry probe
 * that is told the adjustment may pass one (placement_file_frame). */
static uint32_t stack_sub(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;

	if (in->id != X86_INS_SUB || x->op_count != 2 || x->operands[0].type != X86_OP_REG ||
	    x->operands[0].reg != X86_REG_RSP || x->operands[1].type != X86_OP_IMM ||
	    x->operands[1].imm <= 0 || x->operands[1].imm > STACK_SUB_MAX)
		return 0;
	return (uint32_t)x->operands[1].imm;
}

static bool in_group(const cs_insn *in, uint8_t group)
{
	const cs_detail *d = in->detail;
	uint8_t i;

	for (i = 0; i < d->groups_count; i++)
		if (d->groups[i] == group)
			return true;
	return false;
}

static bool is_control_flow(const cs_insn *in)
{
	return in_group(in, CS_GRP_JUMP) || in_group(in, CS_GRP_CALL) || in_group(in, CS_GRP_RET) ||
	       in_group(in, CS_GRP_INT) || in_group(in, CS_GRP_IRET) || in->id == X86_INS_SYSCALL ||
	       in->id == X86_INS_UD2 || in->id == X86_INS_HLT;
}

/* Whether the instruction leaves every protected register as it was; a push
 * may move rsp, by the returned number of bytes in *pushed. */
static bool keeps_regs(csh h, const cs_insn *in, unsigned keep, uint32_t *pushed)
{
	cs_regs rd, wr;
	uint8_t nrd, nwr, i;

	*pushed = 0;
	if (cs_regs_access(h, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return false;
	for (i = 0; i < nwr; i++) {
		if (!reg_protected(wr[i], keep))
			continue;
		if (is_push(in) && (wr[i] == X86_REG_RSP))
			continue;
		return false;
	}
	if (is_push(in))
		*pushed = in->detail->x86.prefix[2] == 0x66 ? 2 : 8;
	return true;
}

/* The argument register (0-5) that r is a part of, or -1. */
static int arg_index(uint16_t r)
{
	for (int i = 0; i < 6; i++)
		for (int j = 0; j < 4; j++)
			if (protected_regs[i][j] == r)
				return i;
	if (r == X86_REG_DH)
		return 2;
	if (r == X86_REG_CH)
		return 3;
	return -1;
}

/* Following the arguments: holders[i] is the set of argument registers
 * (bit j: register j) that hold argument register i's entry value. A
 * 64-bit `mov %src,%dst` between two of them copies; any other write to one
 * ends what it held. Whether the instruction leaves rsp and rbp as they
 * were (a push may move rsp: *pushed bytes) and every kept argument
 * somewhere. */
static bool follows_regs(csh h, const cs_insn *in, unsigned keep, uint8_t *holders,
			 uint32_t *pushed)
{
	const cs_x86 *x = &in->detail->x86;
	cs_regs rd, wr;
	uint8_t nrd, nwr, i;
	int src = -1, dst = -1;

	*pushed = 0;
	if (cs_regs_access(h, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return false;
	for (i = 0; i < nwr; i++)
		if (reg_protected(wr[i], 0) && !(is_push(in) && wr[i] == X86_REG_RSP))
			return false; /* rsp or rbp */
	if (in->id == X86_INS_MOV && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
	    x->operands[1].type == X86_OP_REG && x->operands[0].size == 8 &&
	    x->operands[1].size == 8) {
		dst = arg_index(x->operands[0].reg);
		src = arg_index(x->operands[1].reg);
	}
	for (i = 0; i < nwr; i++) {
		int w = arg_index(wr[i]);

		if (w < 0)
			continue;
		for (int a = 0; a < 6; a++) {
			bool had_src = src >= 0 && w == dst && (holders[a] & (1u << src));

			holders[a] &= (uint8_t)~(1u << w);
			if (had_src)
				holders[a] |= (uint8_t)(1u << w);
		}
	}
	for (int a = 0; a < 6; a++)
		if ((keep & (1u << a)) && !holders[a])
			return false;
	if (is_push(in))
		*pushed = x->prefix[2] == 0x66 ? 2 : 8;
	return true;
}

static void describe(const cs_insn *in, struct placement *out)
{
	int n = snprintf(out->insn, sizeof(out->insn), "%s%s%s", in->mnemonic,
			 in->op_str[0] ? " " : "", in->op_str);

	if (n >= (int)sizeof(out->insn)) /* a long operand list: cut, keep it a string */
		out->insn[sizeof(out->insn) - 1] = '\0';
	out->insn_len = in->size;
	out->emulated = insn_emulated(in);
}

/* Whether a direct branch in code[0..size) lands in (0, limit]: a probe at
 * limit would then fire from inside the function, or the instructions it
 * stepped over would run without it. Undecodable bytes are skipped. */
static bool branch_into(csh h, cs_insn *in, const uint8_t *code, size_t size, uint64_t limit)
{
	const uint8_t *p = code;
	size_t left = size;
	uint64_t addr = 0;

	while (left) {
		const cs_x86 *x;

		if (!cs_disasm_iter(h, &p, &left, &addr, in)) {
			p++, left--, addr++;
			continue;
		}
		if (!in_group(in, CS_GRP_JUMP) && !in_group(in, CS_GRP_CALL))
			continue;
		x = &in->detail->x86;
		if (x->op_count == 1 && x->operands[0].type == X86_OP_IMM &&
		    x->operands[0].imm > 0 && (uint64_t)x->operands[0].imm <= limit)
			return true;
	}
	return false;
}

/* A decoder with instruction details, and an instruction to decode into;
 * -ENOMEM when capstone cannot make them. */
static int decoder_open(csh *h, cs_insn **in)
{
	if (cs_open(CS_ARCH_X86, CS_MODE_64, h) != CS_ERR_OK)
		return -ENOMEM;
	cs_option(*h, CS_OPT_DETAIL, CS_OPT_ON);
	*in = cs_malloc(*h);
	if (!*in) {
		cs_close(h);
		return -ENOMEM;
	}
	return 0;
}

static int decode(const uint8_t *code, size_t size, bool may_move, unsigned keep, bool follow,
		  bool frame, struct placement *out)
{
	uint8_t holders[6];
	const uint8_t *p = code;
	size_t left = size;
	uint64_t addr = 0, here;
	uint32_t pushed = 0, n;
	cs_insn *in;
	csh h;
	int i, err = 0;

	if (!size)
		return -EINVAL;
	if (decoder_open(&h, &in))
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	for (i = 0; i < 6; i++) {
		holders[i] = (uint8_t)(1u << i);
		out->arg_reg[i] = (uint8_t)i;
	}
	if (!cs_disasm_iter(h, &p, &left, &addr, in)) {
		err = -EINVAL;
		goto done;
	}
	describe(in, out);
	out->entry_emulated = out->emulated;
	if (out->emulated || !may_move)
		goto done;

	for (i = 1; i < PROLOGUE_MAX_INSNS; i++) {
		if (is_control_flow(in))
			goto done;
		if (frame && (n = stack_sub(in)))
			; /* rsp moves by n: the program is told (stack_adjust) */
		else if (!(follow ? follows_regs(h, in, keep, holders, &n)
				  : keeps_regs(h, in, keep, &n)))
			goto done;
		pushed += n;
		here = addr;
		if (!cs_disasm_iter(h, &p, &left, &addr, in))
			goto done;
		if (!insn_emulated(in))
			continue;
		if (branch_into(h, in, code, size, here))
			goto done;
		/* branch_into() reused in: decode the chosen instruction again. */
		p = code + here, left = size - here, addr = here;
		cs_disasm_iter(h, &p, &left, &addr, in);
		out->offset = here;
		out->stack_adjust = pushed;
		describe(in, out);
		for (int a = 0; follow && a < 6; a++) {
			int r = a;

			/* its own register if it still holds it, else the lowest */
			if (!(holders[a] & (1u << a)))
				for (r = 0; r < 6 && !(holders[a] & (1u << r)); r++)
					;
			if (!(keep & (1u << a)) || r >= 6)
				r = a;
			out->arg_reg[a] = (uint8_t)r;
			out->args_moved |= r != a;
		}
		goto done;
	}
done:
	cs_free(in, 1);
	cs_close(&h);
	return err;
}

int placement_decode(const uint8_t *code, size_t size, struct placement *out)
{
	return decode(code, size, true, PLACEMENT_ALL_ARGS, false, false, out);
}

int placement_decode_keep(const uint8_t *code, size_t size, unsigned keep, struct placement *out)
{
	return decode(code, size, true, keep & PLACEMENT_ALL_ARGS, false, false, out);
}

int placement_decode_follow(const uint8_t *code, size_t size, unsigned keep,
			    struct placement *out)
{
	return decode(code, size, true, keep & PLACEMENT_ALL_ARGS, true, false, out);
}

/* Whether in writes rax (the value returned) or rsp (a part of one). rbp
 * may change: a function that writes it after a call has saved its
 * caller's (it is callee-saved), where its CFI says, which is what the
 * stack walk reads from the return address on, not the register. */
static bool writes_result(csh h, const cs_insn *in)
{
	static const uint16_t regs[] = {X86_REG_RAX, X86_REG_EAX, X86_REG_AX,  X86_REG_AL,
					X86_REG_AH,  X86_REG_RSP, X86_REG_ESP, X86_REG_SP,
					X86_REG_SPL};
	cs_regs rd, wr;
	uint8_t nrd, nwr;

	if (cs_regs_access(h, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return true;
	for (uint8_t i = 0; i < nwr; i++)
		for (size_t j = 0; j < sizeof(regs) / sizeof(regs[0]); j++)
			if (wr[i] == regs[j])
				return true;
	return false;
}

int placement_after_call(const uint8_t *code, size_t size, struct placement *out)
{
	const uint8_t *p = code;
	size_t left = size;
	uint64_t addr = 0, here = 0;
	cs_insn *in;
	csh h;
	int err = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (!size)
		return -EINVAL;
	if (decoder_open(&h, &in))
		return -ENOMEM;
	for (int i = 0; i < AFTER_CALL_MAX_INSNS; i++) {
		here = addr;
		if (!cs_disasm_iter(h, &p, &left, &addr, in))
			break;
		if (!i) {
			describe(in, out); /* the return address: where it falls back to */
			out->entry_emulated = out->emulated;
			err = 0;
		}
		if (insn_emulated(in)) {
			out->offset = here;
			describe(in, out);
			break;
		}
		if (is_control_flow(in) || writes_result(h, in))
			break;
	}
	cs_free(in, 1);
	cs_close(&h);
	return err;
}

bool placement_insn_emulated(const uint8_t *code, size_t len)
{
	struct placement pl;

	return !decode(code, len, false, PLACEMENT_ALL_ARGS, false, false, &pl) && pl.emulated;
}

int placement_file(const char *path, uint64_t file_offset, uint64_t size, struct placement *out)
{
	return placement_file_keep(path, file_offset, size, PLACEMENT_ALL_ARGS, out);
}

static int file_decode(const char *path, uint64_t file_offset, uint64_t size, unsigned keep,
		       bool follow, bool frame, struct placement *out);

int placement_file_keep(const char *path, uint64_t file_offset, uint64_t size, unsigned keep,
			struct placement *out)
{
	return file_decode(path, file_offset, size, keep, false, false, out);
}

int placement_file_follow(const char *path, uint64_t file_offset, uint64_t size, unsigned keep,
			  struct placement *out)
{
	return file_decode(path, file_offset, size, keep, true, false, out);
}

int placement_decode_frame(const uint8_t *code, size_t size, unsigned keep,
			   struct placement *out)
{
	return decode(code, size, true, keep & PLACEMENT_ALL_ARGS, true, true, out);
}

int placement_file_frame(const char *path, uint64_t file_offset, uint64_t size, unsigned keep,
			 struct placement *out)
{
	return file_decode(path, file_offset, size, keep, true, true, out);
}

static int file_decode(const char *path, uint64_t file_offset, uint64_t size, unsigned keep,
		       bool follow, bool frame, struct placement *out)
{
	bool whole = size && size <= FUNC_MAX_BYTES;
	size_t want = whole ? size : X86_MAX_INSN;
	uint8_t *buf;
	ssize_t n;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(want);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = pread(fd, buf, want, (off_t)file_offset);
	err = n < 0 ? -errno : 0;
	close(fd);
	/* Only a whole function may move the probe; a short read keeps the entry. */
	if (!err)
		err = n > 0 ? decode(buf, (size_t)n, whole && (size_t)n == want,
				     keep & PLACEMENT_ALL_ARGS, follow, frame, out)
			    : -EIO;
	free(buf);
	return err;
}

int placement_symbol(const char *path, const char *name, struct elfsym *sym, struct placement *out)
{
	struct elfsym_file *f;
	struct elfsym s;
	int err;

	err = elfsym_open(path, &f);
	if (err)
		return err;
	err = elfsym_lookup(f, name, &s);
	elfsym_close(f);
	if (err)
		return err;
	if (sym)
		*sym = s;
	return placement_file(path, s.file_offset, s.size, out);
}
