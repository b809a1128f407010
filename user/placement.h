/* Probe placement: where in a function's prologue an entry uprobe costs least.
 *
 * The kernel emulates a few x86 instructions at a uprobe (push reg, nop/nopl,
 * jmp/call/jcc rel) and single-steps every other one, which in a VM costs a
 * trap into the hypervisor (~10 us against ~0.75 us, DESIGN.md). An entry probe
 * can move forward to the first emulated instruction of a straight-line
 * prologue as long as the arguments and the stack still read as at the entry. */
#ifndef TRACER_PLACEMENT_H
#define TRACER_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct elfsym;

struct placement {
	uint64_t offset;       /* probe point: bytes from the function's first byte */
	uint32_t stack_adjust; /* bytes pushed before the probe point: the return
				* address is at sp + stack_adjust there */
	uint32_t insn_len;     /* length of the probed instruction */
	bool emulated;	       /* the kernel emulates the probed instruction */
	bool entry_emulated;   /* ... the function's first instruction */
	/* _follow variants: where each kept argument register's value is at
	 * the probe point (arg_reg[i]: 0-5 for rdi, rsi, rdx, rcx, r8, r9);
	 * args_moved when one is not in its own register any more */
	bool args_moved;
	uint8_t arg_reg[6];
	char insn[64];	       /* the probed instruction, targets relative to the entry */
};

/* Argument registers a probe reads, for the _keep variants: an instruction
 * may change the others before the probe point. rsp and rbp are always kept. */
#define PLACEMENT_RDI (1u << 0)
#define PLACEMENT_RSI (1u << 1)
#define PLACEMENT_RDX (1u << 2)
#define PLACEMENT_RCX (1u << 3)
#define PLACEMENT_R8 (1u << 4)
#define PLACEMENT_R9 (1u << 5)
#define PLACEMENT_ALL_ARGS 0x3fu

/* Chooses the probe point for the function whose code is code[0..size). Every
 * direct branch in those bytes is checked, so pass the whole function.
 * Returns 0, -EINVAL (no bytes, or the first instruction does not decode) or
 * -ENOMEM. */
int placement_decode(const uint8_t *code, size_t size, struct placement *out);

/* The same, where only the argument registers in keep (PLACEMENT_*) must be
 * as at the entry: _PyMem_RawFree(ctx, ptr) is `mov %rsi,%rdi; jmp free`,
 * and a probe reading only rsi can sit on the jmp. */
int placement_decode_keep(const uint8_t *code, size_t size, unsigned keep, struct placement *out);
int placement_file_keep(const char *path, uint64_t file_offset, uint64_t size, unsigned keep,
			struct placement *out);

/* The same, where the probe's program can read each kept argument from
 * another register (out->arg_reg, tracer.h's TRACER_ARGS cookie): a
 * prologue that copies an argument elsewhere (`mov %rsi,%rdi; mov
 * %rdx,%rsi`, _PyMem_RawCalloc's) no longer stops the probe there. */
int placement_decode_follow(const uint8_t *code, size_t size, unsigned keep,
			    struct placement *out);
int placement_file_follow(const char *path, uint64_t file_offset, uint64_t size, unsigned keep,
			  struct placement *out);

/* The same for an entry probe with no return probe on it, which may pass
 * the `sub $n,%rsp` that makes a frame as well: out->stack_adjust counts
 * those bytes too (the return address is at sp + stack_adjust). */
int placement_decode_frame(const uint8_t *code, size_t size, unsigned keep,
			   struct placement *out);
int placement_file_frame(const char *path, uint64_t file_offset, uint64_t size, unsigned keep,
			 struct placement *out);

/* Where a probe that reads a call's result (rax) may sit, for the call
 * whose return address is code[0] (size bytes readable from there): the
 * first emulated instruction of the straight line that follows, before
 * anything writes rax or rsp, at most a few instructions on; else the
 * return address itself (out->emulated false). The caller checks that no
 * branch lands between the return address and out->offset. 0, -EINVAL
 * (nothing decodes there) or -ENOMEM. */
int placement_after_call(const uint8_t *code, size_t size, struct placement *out);

/* The same for the function at file_offset (size bytes) of the file at path;
 * size 0 (an assembler symbol without a size) yields the entry. */
int placement_file(const char *path, uint64_t file_offset, uint64_t size, struct placement *out);

/* The same for a function found by name in the ELF file at path (.symtab, then
 * .dynsym). sym may be NULL. 0, -ENOENT, -ENOEXEC or -errno. */
int placement_symbol(const char *path, const char *name, struct elfsym *sym, struct placement *out);

/* Whether the kernel emulates the instruction at code (len bytes available),
 * rather than single-stepping it. False also where it refuses a probe. */
bool placement_insn_emulated(const uint8_t *code, size_t len);

#endif
