/* Probe placement on hand-assembled prologues, on functions assembled into
 * this test binary, and on the machine's libc. */
#include <asm/perf_regs.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <linux/perf_event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "elfsym.h"
#include "placement.h"

/* Two functions in this binary's .symtab: free's prologue shape, and one
 * where a later branch lands on the would-be probe point. */
__asm__(".text\n"
	".globl tp_free_like\n .type tp_free_like,@function\n"
	"tp_free_like:\n test %rdi,%rdi\n je 1f\n push %rbx\n pop %rbx\n 1: ret\n"
	".size tp_free_like, .-tp_free_like\n"
	".globl tp_loop_to_je\n .type tp_loop_to_je,@function\n"
	"tp_loop_to_je:\n test %rdi,%rdi\n 2: je 1f\n dec %rdi\n jmp 2b\n 1: ret\n"
	".size tp_loop_to_je, .-tp_loop_to_je\n"
	".globl tp_push_imm\n .type tp_push_imm,@function\n"
	"tp_push_imm:\n .byte 0x68,0,0,0,0\n jmp 1f\n 1: add $8,%rsp\n ret\n"
	".size tp_push_imm, .-tp_push_imm\n"
	".globl tp_memalign_like\n .type tp_memalign_like,@function\n"
	"tp_memalign_like:\n cmpb $0,tp_flag(%rip)\n je 1f\n 1: lea 1(%rdi),%rax\n ret\n"
	".size tp_memalign_like, .-tp_memalign_like\n"
	".data\n tp_flag: .byte 0\n .text\n");

void tp_free_like(void *p);
void tp_push_imm(long a, long b);
long tp_memalign_like(long a);

static struct placement place(const uint8_t *code, size_t size)
{
	struct placement pl;

	assert_int_equal(placement_decode(code, size, &pl), 0);
	return pl;
}

#define PLACE(...)                                                                                 \
	({                                                                                         \
		static const uint8_t c_[] = {__VA_ARGS__};                                         \
		place(c_, sizeof(c_));                                                             \
	})

static void test_free_shape(void **state)
{
	/* test %rdi,%rdi; je +1; push %rbx; ret; ret */
	struct placement pl = PLACE(0x48, 0x85, 0xff, 0x74, 0x02, 0x53, 0xc3, 0xc3);

	assert_int_equal(pl.offset, 3);
	assert_int_equal(pl.insn_len, 2);
	assert_true(pl.emulated);
	assert_false(pl.entry_emulated);
	assert_int_equal(pl.stack_adjust, 0);
	assert_string_equal(pl.insn, "je 7");
}

static void test_push_at_entry(void **state)
{
	/* push %r12; push %rbp: the entry is emulated already */
	struct placement pl = PLACE(0x41, 0x54, 0x55, 0xc3);

	assert_int_equal(pl.offset, 0);
	assert_true(pl.emulated);
	assert_true(pl.entry_emulated);
	assert_string_equal(pl.insn, "push r12");
}

static void test_endbr64_then_push(void **state)
{
	struct placement pl = PLACE(0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5, 0xc3);

	assert_int_equal(pl.offset, 4);
	assert_string_equal(pl.insn, "push rbp");
	assert_false(pl.entry_emulated);
}

static void test_argument_written_first(void **state)
{
	/* mov %rsi,%rdi; push %rbp: rdi changed before the push */
	struct placement pl = PLACE(0x48, 0x89, 0xf7, 0x55, 0xc3);

	assert_int_equal(pl.offset, 0);
	assert_false(pl.emulated);
	assert_string_equal(pl.insn, "mov rdi, rsi");
	/* xor %edx,%edx (rdx is the third argument) */
	pl = PLACE(0x31, 0xd2, 0x55, 0xc3);
	assert_int_equal(pl.offset, 0);
	/* mul %rdx writes rdx implicitly (libc reallocarray) */
	pl = PLACE(0x48, 0x89, 0xf0, 0x48, 0xf7, 0xe2, 0x55, 0xc3);
	assert_int_equal(pl.offset, 0);
	/* each argument register and its parts */
	pl = PLACE(0x41, 0x89, 0xc1, 0x55, 0xc3); /* mov %eax,%r9d */
	assert_int_equal(pl.offset, 0);
	pl = PLACE(0x88, 0xc1, 0x55, 0xc3); /* mov %al,%cl */
	assert_int_equal(pl.offset, 0);
}

/* Debian python3.11's stripped allocators, byte for byte (objdump of
 * /usr/bin/python3.11; their sizes from their FDEs). */
static void test_follow_python311_allocators(void **state)
{
	/* _PyMem_RawCalloc(ctx, nelem, elsize): mov %rsi,%rdi; mov %rdx,%rsi;
	 * test %rdi,%rdi; je; test %rdx,%rdx; je; jmp calloc; mov $1,%esi;
	 * mov $1,%edi; jmp back */
	static const uint8_t raw_calloc[] = {
	    0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6, 0x48, 0x85, 0xff, 0x74, 0x0a, 0x48,
	    0x85, 0xd2, 0x74, 0x05, 0xe9, 0xbb, 0x90, 0xf2, 0xff, 0xbe, 0x01, 0x00,
	    0x00, 0x00, 0xbf, 0x01, 0x00, 0x00, 0x00, 0xeb, 0xef};
	/* _PyMem_RawRealloc(ctx, ptr, size): test %rdx,%rdx; mov $1,%eax;
	 * mov %rsi,%rdi; cmovne %rdx,%rax; mov %rax,%rsi; jmp realloc */
	static const uint8_t raw_realloc[] = {0x48, 0x85, 0xd2, 0xb8, 0x01, 0x00, 0x00, 0x00,
					      0x48, 0x89, 0xf7, 0x48, 0x0f, 0x45, 0xc2, 0x48,
					      0x89, 0xc6, 0xe9, 0x99, 0x95, 0xf2, 0xff};
	/* _PyMem_RawMalloc(ctx, size): test %rsi,%rsi; mov $1,%eax; cmovne
	 * %rsi,%rax; mov %rax,%rdi; jmp malloc */
	static const uint8_t raw_malloc[] = {0x48, 0x85, 0xf6, 0xb8, 0x01, 0x00, 0x00,
					     0x00, 0x48, 0x0f, 0x45, 0xc6, 0x48, 0x89,
					     0xc7, 0xe9, 0xac, 0x82, 0xf2, 0xff};
	struct placement pl;

	/* nelem moved to rdi, elsize still in rdx: the first je */
	assert_int_equal(placement_decode_follow(raw_calloc, sizeof(raw_calloc),
						 PLACEMENT_RSI | PLACEMENT_RDX, &pl),
			 0);
	assert_int_equal(pl.offset, 9);
	assert_true(pl.emulated);
	assert_true(pl.args_moved);
	assert_int_equal(pl.arg_reg[1], 0); /* rsi's value is in rdi */
	assert_int_equal(pl.arg_reg[2], 2);
	/* without following, the mov to rsi stops it at the entry */
	assert_int_equal(placement_decode_keep(raw_calloc, sizeof(raw_calloc),
					       PLACEMENT_RSI | PLACEMENT_RDX, &pl),
			 0);
	assert_int_equal(pl.offset, 0);
	assert_false(pl.args_moved);
	/* ptr moved to rdi, size in rdx: the jmp realloc */
	assert_int_equal(placement_decode_follow(raw_realloc, sizeof(raw_realloc),
						 PLACEMENT_RSI | PLACEMENT_RDX, &pl),
			 0);
	assert_int_equal(pl.offset, 18);
	assert_int_equal(pl.arg_reg[1], 0);
	assert_int_equal(pl.arg_reg[2], 2);
	/* size stays in rsi (rdi, ctx, is not read): the jmp malloc */
	assert_int_equal(placement_decode_follow(raw_malloc, sizeof(raw_malloc), PLACEMENT_RSI,
						 &pl),
			 0);
	assert_int_equal(pl.offset, 15);
	assert_false(pl.args_moved);
	assert_int_equal(pl.arg_reg[1], 1);
	/* ... where keeping rdi too leaves it at the entry */
	assert_int_equal(placement_decode_follow(raw_malloc, sizeof(raw_malloc),
						 PLACEMENT_RDI | PLACEMENT_RSI, &pl),
			 0);
	assert_int_equal(pl.offset, 0);
}

static void test_follow_copy_lost(void **state)
{
	/* mov %rsi,%rdi; xor %edi,%edi; push %rbp: the only copy of rsi's
	 * value (rsi is overwritten by mov %rdx,%rsi first) is gone */
	static const uint8_t code[] = {0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6,
				       0x31, 0xff, 0x55, 0xc3};
	struct placement pl;

	assert_int_equal(placement_decode_follow(code, sizeof(code), PLACEMENT_RSI, &pl), 0);
	assert_int_equal(pl.offset, 0);
	/* a 32-bit mov is no copy of a 64-bit argument */
	static const uint8_t code32[] = {0x89, 0xf7, 0x48, 0x89, 0xd6, 0x55, 0xc3};
	assert_int_equal(placement_decode_follow(code32, sizeof(code32), PLACEMENT_RSI, &pl), 0);
	assert_int_equal(pl.offset, 0);
}

static void test_scratch_register_written(void **state)
{
	/* mov %rdi,%rbx and xor %eax,%eax leave the arguments alone */
	struct placement pl = PLACE(0x48, 0x89, 0xfb, 0x31, 0xc0, 0x55, 0xc3);

	assert_int_equal(pl.offset, 5);
	assert_string_equal(pl.insn, "push rbp");
}

static void test_stack_and_frame_pointer(void **state)
{
	/* sub $8,%rsp; push %rbp */
	struct placement pl = PLACE(0x48, 0x83, 0xec, 0x08, 0x55, 0xc3);

	assert_int_equal(pl.offset, 0);
	/* mov %rsp,%rbp before any push: the frame-pointer walk would change */
	pl = PLACE(0x48, 0x89, 0xe5, 0x53, 0xc3);
	assert_int_equal(pl.offset, 0);
}

static void test_pushes_not_emulated_count(void **state)
{
	/* push $0 (68 imm32) and push %rax with REX.W are single-stepped pushes */
	struct placement pl = PLACE(0x68, 0x00, 0x00, 0x00, 0x00, 0x48, 0x50, 0x74, 0x00, 0xc3);

	assert_int_equal(pl.offset, 7);
	assert_int_equal(pl.stack_adjust, 16);
	assert_string_equal(pl.insn, "je 9");
	/* push 8(%rdi) */
	pl = PLACE(0xff, 0x77, 0x08, 0xeb, 0x00, 0xc3);
	assert_int_equal(pl.offset, 3);
	assert_int_equal(pl.stack_adjust, 8);
	assert_string_equal(pl.insn, "jmp 5");
}

static void test_branch_into_skipped_bytes(void **state)
{
	/* test; je +3; ret; jmp back to the je (offset 3): the probe would fire again */
	struct placement pl = PLACE(0x48, 0x85, 0xff, 0x74, 0x03, 0xc3, 0xeb, 0xfb, 0xc3);

	assert_int_equal(pl.offset, 0);
	/* the same jumping into the middle of the test */
	pl = PLACE(0x48, 0x85, 0xff, 0x74, 0x03, 0xc3, 0xeb, 0xf9, 0xc3);
	assert_int_equal(pl.offset, 0);
	/* a loop back to the entry itself does not matter */
	pl = PLACE(0x48, 0x85, 0xff, 0x74, 0x03, 0xc3, 0xeb, 0xf8, 0xc3);
	assert_int_equal(pl.offset, 3);
	/* nor a call or jump beyond the probe point */
	pl = PLACE(0x48, 0x85, 0xff, 0x74, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xc3);
	assert_int_equal(pl.offset, 3);
}

static struct placement place_keep(const uint8_t *code, size_t size, unsigned keep)
{
	struct placement pl;

	assert_int_equal(placement_decode_keep(code, size, keep, &pl), 0);
	return pl;
}

static void test_keep_only_read_arguments(void **state)
{
	/* _PyMem_RawFree: mov %rsi,%rdi; jmp free */
	static const uint8_t raw_free[] = {0x48, 0x89, 0xf7, 0xe9, 0x00, 0x00, 0x00, 0x00};
	/* _PyMem_RawMalloc: test %rsi,%rsi; mov $1,%eax; cmovne %rsi,%rax; mov %rax,%rdi; jmp */
	static const uint8_t raw_malloc[] = {0x48, 0x85, 0xf6, 0xb8, 0x01, 0x00, 0x00,
					     0x00, 0x48, 0x0f, 0x45, 0xc6, 0x48, 0x89,
					     0xc7, 0xe9, 0x00, 0x00, 0x00, 0x00};
	/* mov $1,%dh writes a part of rdx */
	static const uint8_t dh[] = {0xb6, 0x01, 0x55, 0xc3}; /* mov $1,%dh; push %rbp */
	struct placement pl;

	pl = place_keep(raw_free, sizeof(raw_free), PLACEMENT_RSI);
	assert_int_equal(pl.offset, 3);
	assert_string_equal(pl.insn, "jmp 8");
	pl = place_keep(raw_free, sizeof(raw_free), PLACEMENT_RSI | PLACEMENT_RDI);
	assert_int_equal(pl.offset, 0);
	assert_int_equal(place(raw_free, sizeof(raw_free)).offset, 0);
	pl = place_keep(raw_malloc, sizeof(raw_malloc), PLACEMENT_RSI);
	assert_int_equal(pl.offset, 15);
	pl = place_keep(dh, sizeof(dh), PLACEMENT_RDX);
	assert_int_equal(pl.offset, 0);
	pl = place_keep(dh, sizeof(dh), PLACEMENT_RDI);
	assert_int_equal(pl.offset, 2);
	/* rsp is kept whatever keep says */
	pl = PLACE(0x48, 0x83, 0xec, 0x08, 0x55, 0xc3);
	assert_int_equal(place_keep((const uint8_t[]){0x48, 0x83, 0xec, 0x08, 0x55}, 5, 0).offset,
			 pl.offset);
}

static void test_keep_pyenv_libpython(void **state)
{
	const char *home = getenv("HOME");
	char path[512];
	struct placement pl;
	struct elfsym sym;
	struct elfsym_file *f;

	snprintf(path, sizeof(path), "%s/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0",
		 home ? home : "/root");
	if (access(path, R_OK))
		skip();
	assert_int_equal(elfsym_open(path, &f), 0);
	assert_int_equal(elfsym_lookup(f, "_PyMem_RawFree", &sym), 0);
	elfsym_close(f);
	assert_int_equal(placement_file_keep(path, sym.file_offset, sym.size, PLACEMENT_RSI, &pl),
			 0);
	assert_int_equal(pl.offset, 3);
	assert_true(pl.emulated);
	assert_int_equal(placement_file(path, sym.file_offset, sym.size, &pl), 0);
	assert_int_equal(pl.offset, 0);
	assert_false(pl.emulated);
}

static void test_control_flow_ends_prologue(void **state)
{
	/* jmp *%rax; push %rbp */
	struct placement pl = PLACE(0xff, 0xe0, 0x55);

	assert_int_equal(pl.offset, 0);
	assert_false(pl.emulated);
	/* ret */
	pl = PLACE(0xc3, 0x55);
	assert_int_equal(pl.offset, 0);
	/* a jcc with a cs: hint prefix is refused by the kernel: not a probe point */
	pl = PLACE(0x48, 0x85, 0xff, 0x2e, 0x74, 0x00, 0x55, 0xc3);
	assert_int_equal(pl.offset, 0);
}

static void test_nops(void **state)
{
	/* pause is rep nop: single-stepped, changes nothing, so pass it */
	struct placement pl = PLACE(0xf3, 0x90, 0x55, 0xc3);

	assert_int_equal(pl.offset, 2);
	/* nopl (nop5) is single-stepped on 6.18; xchg %ax,%ax (66 90) is emulated */
	pl = PLACE(0x0f, 0x1f, 0x44, 0x00, 0x00, 0x66, 0x90, 0xc3);
	assert_int_equal(pl.offset, 5);
	assert_int_equal(pl.insn_len, 2);
	assert_false(pl.entry_emulated);
}

static void test_prologue_limit(void **state)
{
	uint8_t code[80];
	struct placement pl;
	int i;

	/* 31 x (xor %eax,%eax) then push: the 32nd instruction is still looked at */
	for (i = 0; i < 31; i++)
		code[2 * i] = 0x31, code[2 * i + 1] = 0xc0;
	code[62] = 0x55, code[63] = 0xc3;
	pl = place(code, 64);
	assert_int_equal(pl.offset, 62);
	/* 32 of them: the push is the 33rd, too far */
	code[62] = 0x31, code[63] = 0xc0, code[64] = 0x55, code[65] = 0xc3;
	pl = place(code, 66);
	assert_int_equal(pl.offset, 0);
}

static void test_end_of_bytes(void **state)
{
	/* the prologue runs off the function's end: stay at the entry */
	struct placement pl = PLACE(0x48, 0x85, 0xff);

	assert_int_equal(pl.offset, 0);
}

static void test_bad_input(void **state)
{
	static const uint8_t invalid[] = {0x06}; /* push %es: invalid in 64-bit mode */
	struct placement pl;

	assert_int_equal(placement_decode(invalid, 0, &pl), -EINVAL);
	assert_int_equal(placement_decode(invalid, sizeof(invalid), &pl), -EINVAL);
	assert_int_equal(placement_file("/nonexistent/x", 0, 16, &pl), -ENOENT);
	assert_int_equal(placement_symbol("/nonexistent/x", "f", NULL, &pl), -ENOENT);
}

static void test_insn_emulated(void **state)
{
	static const struct {
		uint8_t b[6];
		size_t n;
		bool emulated;
	} t[] = {
	    {{0x55}, 1, true},				/* push %rbp */
	    {{0x41, 0x57}, 2, true},			/* push %r15 */
	    {{0x48, 0x50}, 2, false},			/* rex.w push %rax */
	    {{0x90}, 1, true},				/* nop */
	    {{0xf3, 0x90}, 2, false},			/* pause */
	    {{0x0f, 0x1f, 0x44, 0x00, 0x00}, 5, false}, /* nop5 */
	    {{0xeb, 0x00}, 2, true},			/* jmp rel8 */
	    {{0xe9, 0, 0, 0, 0}, 5, true},		/* jmp rel32 */
	    {{0xe8, 0, 0, 0, 0}, 5, true},		/* call rel32 */
	    {{0x0f, 0x84, 0, 0, 0, 0}, 6, true},	/* je rel32 */
	    {{0x7f, 0x00}, 2, true},			/* jg rel8 */
	    {{0x2e, 0x74, 0x00}, 3, false},		/* cs: je */
	    {{0xff, 0xe0}, 2, false},			/* jmp *%rax */
	    {{0xc3}, 1, false},				/* ret */
	    {{0x48, 0x85, 0xff}, 3, false},		/* test %rdi,%rdi */
	    {{0xf3, 0x0f, 0x1e, 0xfa}, 4, false},	/* endbr64 */
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (placement_insn_emulated(t[i].b, t[i].n) != t[i].emulated)
			fail_msg("instruction %zu: expected emulated=%d", i, t[i].emulated);
	}
}

static void test_from_file(void **state)
{
	static const uint8_t fn[] = {0x48, 0x85, 0xff, 0x74, 0x02, 0x53, 0xc3, 0xc3};
	char path[] = "/tmp/test_placement.XXXXXX";
	uint8_t junk[100];
	struct placement pl;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	memset(junk, 0xcc, sizeof(junk));
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	assert_int_equal(write(fd, fn, sizeof(fn)), sizeof(fn));
	close(fd);
	assert_int_equal(placement_file(path, 100, sizeof(fn), &pl), 0);
	assert_int_equal(pl.offset, 3);
	/* a symbol without a size: the entry, as decoded */
	assert_int_equal(placement_file(path, 100, 0, &pl), 0);
	assert_int_equal(pl.offset, 0);
	assert_string_equal(pl.insn, "test rdi, rdi");
	/* past the end of the file */
	assert_int_equal(placement_file(path, 4096, 8, &pl), -EIO);
	unlink(path);
}

static void test_symbols_of_this_binary(void **state)
{
	struct placement pl;
	struct elfsym sym;

	assert_int_equal(placement_symbol("/proc/self/exe", "tp_free_like", &sym, &pl), 0);
	assert_int_equal(sym.size, 8);
	assert_int_equal(pl.offset, 3);
	assert_string_equal(pl.insn, "je 7");
	assert_int_equal(placement_symbol("/proc/self/exe", "tp_loop_to_je", &sym, &pl), 0);
	assert_int_equal(pl.offset, 0);
	assert_int_equal(placement_symbol("/proc/self/exe", "tp_no_such_function", NULL, &pl),
			 -ENOENT);
}

/* Debian 12's glibc 2.36 (libc6 2.36-9+deb12u*); other builds lay out their
 * prologues differently, so the exact figures are checked only there. */
#define LIBC "/lib/x86_64-linux-gnu/libc.so.6"

static void test_libc(void **state)
{
	static const struct {
		const char *name;
		uint64_t offset;
		const char *insn;
		bool entry_emulated;
	} want[] = {
	    {"malloc", 0, "push r12", true},
	    {"free", 3, "je 0xc8", false},
	    {"calloc", 0, "push r13", true},
	    {"realloc", 0, "push r15", true},
	    {"reallocarray", 0, "mov rax, rsi", false},
	    {"aligned_alloc", 7, "je 0x10", false},
	    {"memalign", 7, "je 0x10", false},
	    {"valloc", 7, "push rbx", false},
	    {"pvalloc", 7, "push rbx", false},
	    {"posix_memalign", 7, "push r12", false},
	};
	struct elfsym sym;
	struct placement pl;
	size_t i;

	if (strcmp(gnu_get_libc_version(), "2.36") || access(LIBC, R_OK) ||
	    placement_symbol(LIBC, "free", &sym, &pl) || sym.size != 257)
		skip();
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(placement_symbol(LIBC, want[i].name, &sym, &pl), 0);
		if (pl.offset != want[i].offset || strcmp(pl.insn, want[i].insn) ||
		    pl.entry_emulated != want[i].entry_emulated)
			fail_msg("%s: +%llu %s (entry emulated %d)", want[i].name,
				 (unsigned long long)pl.offset, pl.insn, pl.entry_emulated);
		assert_int_equal(pl.stack_adjust, 0);
		assert_int_equal(pl.emulated, strcmp(want[i].name, "reallocarray") != 0);
	}
}

/* The kernel's view: perf uprobe events at the entry and at the moved probe
 * point sample rdi, rsi and rsp at every hit; the moved probe must read the
 * same arguments, with rsp lower by exactly stack_adjust. */
#define RING_PAGES 16

struct sampler {
	int fd;
	struct perf_event_mmap_page *meta;
	size_t len;
};

/* Three sampled registers, in the order of their perf bit numbers. */
struct regs3 {
	uint64_t r[3];
};

#define ENTRY_REGS                                                                                 \
	((1ull << PERF_REG_X86_SI) | (1ull << PERF_REG_X86_DI) | (1ull << PERF_REG_X86_SP))
#define RETURN_REGS                                                                                \
	((1ull << PERF_REG_X86_AX) | (1ull << PERF_REG_X86_SP) | (1ull << PERF_REG_X86_IP))

static int uprobe_type(void)
{
	FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "r");
	int t = -1;

	if (f) {
		if (fscanf(f, "%d", &t) != 1)
			t = -1;
		fclose(f);
	}
	return t;
}

static int sampler_open(struct sampler *s, const char *path, uint64_t off, bool retprobe)
{
	struct perf_event_attr attr;
	long page = sysconf(_SC_PAGESIZE);
	int type = uprobe_type(), tries;

	if (type < 0)
		return -ENOENT;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = (uint32_t)type;
	attr.config1 = (uint64_t)(uintptr_t)path;
	attr.config = retprobe; /* format/retprobe: config:0 */
	attr.config2 = off;
	attr.sample_period = 1;
	attr.sample_type = PERF_SAMPLE_REGS_USER;
	attr.sample_regs_user = retprobe ? RETURN_REGS : ENTRY_REGS;
	attr.disabled = 1;
	/* EINVAL came back now and then while another tool (memleak-bpfcc)
	 * was attaching to the same library: try again for a while. */
	for (tries = 0; tries < 50; tries++) {
		s->fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
		if (s->fd >= 0 || errno != EINVAL)
			break;
		usleep(100000);
	}
	if (s->fd < 0)
		return -errno;
	s->len = (size_t)page * (RING_PAGES + 1);
	s->meta = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (s->meta == MAP_FAILED) {
		close(s->fd);
		return -errno;
	}
	return 0;
}

/* Reads up to max samples (regs in the order of their bit numbers). */
static size_t sampler_read(struct sampler *s, struct regs3 *out, size_t max)
{
	const uint8_t *data = (const uint8_t *)s->meta + s->meta->data_offset;
	uint64_t size = s->meta->data_size,
		 head = __atomic_load_n(&s->meta->data_head, __ATOMIC_ACQUIRE);
	uint64_t tail = s->meta->data_tail;
	size_t n = 0;

	while (tail < head) {
		struct perf_event_header h;
		uint64_t rec[6];
		size_t i;

		for (i = 0; i < sizeof(h); i++)
			((uint8_t *)&h)[i] = data[(tail + i) % size];
		if (h.type == PERF_RECORD_SAMPLE && h.size >= sizeof(h) + sizeof(uint64_t) * 4 &&
		    n < max) {
			for (i = 0; i < sizeof(uint64_t) * 4; i++)
				((uint8_t *)rec)[i] = data[(tail + sizeof(h) + i) % size];
			/* rec[0] is the regs ABI; then the three registers */
			out[n].r[0] = rec[1], out[n].r[1] = rec[2], out[n].r[2] = rec[3];
			n++;
		}
		tail += h.size;
	}
	__atomic_store_n(&s->meta->data_tail, tail, __ATOMIC_RELEASE);
	return n;
}

static void sampler_close(struct sampler *s)
{
	munmap(s->meta, s->len);
	close(s->fd);
}

/* Attaches at the entry and at the chosen point of name in path, runs call,
 * and compares what the two probes saw. */
static void check_same_args(const char *path, const char *name, void (*call)(void),
			    size_t want_hits, uint32_t want_adjust)
{
	struct regs3 a[256], b[256];
	struct sampler entry, moved;
	struct placement pl;
	struct elfsym sym;
	size_t na, nb, i;
	int err;

	assert_int_equal(placement_symbol(path, name, &sym, &pl), 0);
	assert_true(pl.offset > 0);
	assert_int_equal(pl.stack_adjust, want_adjust);
	err = sampler_open(&entry, path, sym.file_offset, false);
	if (err == -EACCES || err == -EPERM || err == -ENOENT || err == -EOPNOTSUPP)
		skip(); /* not root, or no uprobe PMU */
	assert_int_equal(err, 0);
	assert_int_equal(sampler_open(&moved, path, sym.file_offset + pl.offset, false), 0);
	ioctl(entry.fd, PERF_EVENT_IOC_ENABLE, 0);
	ioctl(moved.fd, PERF_EVENT_IOC_ENABLE, 0);
	call();
	ioctl(entry.fd, PERF_EVENT_IOC_DISABLE, 0);
	ioctl(moved.fd, PERF_EVENT_IOC_DISABLE, 0);
	na = sampler_read(&entry, a, 256);
	nb = sampler_read(&moved, b, 256);
	sampler_close(&entry);
	sampler_close(&moved);
	assert_int_equal(na, want_hits);
	assert_int_equal(nb, want_hits);
	for (i = 0; i < na; i++) {
		assert_int_equal(a[i].r[0], b[i].r[0]);		      /* rsi */
		assert_int_equal(a[i].r[1], b[i].r[1]);		      /* rdi */
		assert_int_equal(a[i].r[2] - b[i].r[2], want_adjust); /* rsp */
	}
}

static void call_free_like(void)
{
	uintptr_t i;

	for (i = 0; i < 100; i++)
		tp_free_like((void *)(i * 4096)); /* i = 0 takes the je */
}

static void call_push_imm(void)
{
	long i;

	for (i = 0; i < 50; i++)
		tp_push_imm(i * 3, -i);
}

static void test_moved_probe_reads_same_args(void **state)
{
	check_same_args("/proc/self/exe", "tp_free_like", call_free_like, 100, 0);
	check_same_args("/proc/self/exe", "tp_push_imm", call_push_imm, 50, 8);
}

/* A return probe may move with the entry probe where nothing was pushed:
 * the kernel takes the return address from [rsp], which is still the
 * caller's. The uretprobes at the entry and at the moved point must see the
 * same return values, return addresses and stack pointers. */
static void check_same_returns(const char *path, const char *name, void (*call)(void),
			       size_t want_hits)
{
	struct regs3 a[256], b[256];
	struct sampler entry, moved;
	struct placement pl;
	struct elfsym sym;
	size_t na, nb, i;
	int err;

	assert_int_equal(placement_symbol(path, name, &sym, &pl), 0);
	assert_true(pl.offset > 0);
	assert_int_equal(pl.stack_adjust, 0);
	err = sampler_open(&entry, path, sym.file_offset, true);
	if (err == -EACCES || err == -EPERM || err == -ENOENT || err == -EOPNOTSUPP)
		skip();
	assert_int_equal(err, 0);
	assert_int_equal(sampler_open(&moved, path, sym.file_offset + pl.offset, true), 0);
	ioctl(entry.fd, PERF_EVENT_IOC_ENABLE, 0);
	ioctl(moved.fd, PERF_EVENT_IOC_ENABLE, 0);
	call();
	ioctl(entry.fd, PERF_EVENT_IOC_DISABLE, 0);
	ioctl(moved.fd, PERF_EVENT_IOC_DISABLE, 0);
	na = sampler_read(&entry, a, 256);
	nb = sampler_read(&moved, b, 256);
	sampler_close(&entry);
	sampler_close(&moved);
	assert_int_equal(na, want_hits);
	assert_int_equal(nb, want_hits);
	for (i = 0; i < na; i++) {
		assert_int_equal(a[i].r[0], b[i].r[0]); /* rax: the return value */
		assert_int_equal(a[i].r[1], b[i].r[1]); /* rsp */
		assert_int_equal(a[i].r[2], b[i].r[2]); /* rip: the caller's return address */
	}
}

static void call_memalign_like(void)
{
	long i;

	for (i = 0; i < 40; i++)
		assert_int_equal(tp_memalign_like(i * 5), i * 5 + 1);
}

static void *volatile sink;

static void call_libc_free(void)
{
	int i;

	for (i = 0; i < 64; i++) {
		sink = malloc(32 + (size_t)i);
		free(sink);
	}
	sink = NULL;
	free(sink); /* free(NULL) passes the moved probe too */
}

static void call_libc_memalign(void)
{
	int i;

	for (i = 0; i < 30; i++) {
		sink = memalign(64, 100 + (size_t)i);
		free(sink);
	}
}

static void test_moved_return_probe(void **state)
{
	check_same_returns("/proc/self/exe", "tp_memalign_like", call_memalign_like, 40);
	if (!access(LIBC, R_OK))
		check_same_returns(LIBC, "memalign", call_libc_memalign, 30);
}

static void test_libc_free_moved_probe(void **state)
{
	if (access(LIBC, R_OK))
		skip();
	check_same_args(LIBC, "free", call_libc_free, 65, 0);
}

/* 3.11's _PyObject_Malloc: lea -0x1(%rsi),%rax; sub $0x18,%rsp;
 * cmp $0x1ff,%rax; ja: the entry and return probe stays on the lea, an
 * entry probe alone goes to the ja, told that rsp moved by 0x18. */
static void test_frame_for_entry_only(void **state)
{
	static const uint8_t c[] = {0x48, 0x8d, 0x46, 0xff, 0x48, 0x83, 0xec, 0x18, 0x48,
				    0x3d, 0xff, 0x01, 0x00, 0x00, 0x0f, 0x87, 0xca, 0x00,
				    0x00, 0x00, 0xc3};
	static const uint8_t big[] = {0x48, 0x81, 0xec, 0x08, 0x20, 0x00, 0x00, 0x74, 0x00, 0xc3};
	struct placement pl;

	assert_int_equal(placement_decode_follow(c, sizeof(c), PLACEMENT_RSI, &pl), 0);
	assert_int_equal(pl.offset, 0);
	assert_false(pl.emulated);
	assert_int_equal(placement_decode_frame(c, sizeof(c), PLACEMENT_RSI, &pl), 0);
	assert_int_equal(pl.offset, 14);
	assert_true(pl.emulated);
	assert_int_equal(pl.stack_adjust, 0x18);
	/* a frame larger than STACK_SUB_MAX keeps the entry */
	assert_int_equal(placement_decode_frame(big, sizeof(big), PLACEMENT_RSI, &pl), 0);
	assert_int_equal(pl.offset, 0);
}

/* After a call: test %rax,%rax; je -> the je; mov %rax,%r12; test; jne ->
 * the jne; mov %rax,%rbp; test; je -> the je (rbp is the function's own
 * there); a write of eax, or a ret, before any emulated instruction -> the
 * return address itself. */
static void test_after_call(void **state)
{
	static const uint8_t test_je[] = {0x48, 0x85, 0xc0, 0x74, 0x10};
	static const uint8_t mov_test_jne[] = {0x49, 0x89, 0xc4, 0x48, 0x85, 0xc0, 0x75, 0x10};
	static const uint8_t mov_rbp[] = {0x48, 0x89, 0xc5, 0x48, 0x85, 0xed, 0x74, 0x10};
	static const uint8_t xor_eax[] = {0x31, 0xc0, 0x74, 0x10};
	static const uint8_t jmp_first[] = {0xeb, 0x10};
	static const uint8_t ret_first[] = {0x48, 0x85, 0xc0, 0xc3, 0x74, 0x10};
	struct placement pl;

	assert_int_equal(placement_after_call(test_je, sizeof(test_je), &pl), 0);
	assert_int_equal(pl.offset, 3);
	assert_true(pl.emulated);
	assert_int_equal(placement_after_call(mov_test_jne, sizeof(mov_test_jne), &pl), 0);
	assert_int_equal(pl.offset, 6);
	assert_true(pl.emulated);
	assert_int_equal(placement_after_call(mov_rbp, sizeof(mov_rbp), &pl), 0);
	assert_int_equal(pl.offset, 6);
	assert_true(pl.emulated);
	assert_int_equal(placement_after_call(xor_eax, sizeof(xor_eax), &pl), 0);
	assert_int_equal(pl.offset, 0);
	assert_false(pl.emulated);
	assert_int_equal(placement_after_call(jmp_first, sizeof(jmp_first), &pl), 0);
	assert_int_equal(pl.offset, 0);
	assert_true(pl.emulated);
	assert_int_equal(placement_after_call(ret_first, sizeof(ret_first), &pl), 0);
	assert_int_equal(pl.offset, 0);
	assert_false(pl.emulated);
	assert_int_equal(placement_after_call(test_je, 0, &pl), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frame_for_entry_only),
	    cmocka_unit_test(test_after_call),
	    cmocka_unit_test(test_free_shape),
	    cmocka_unit_test(test_push_at_entry),
	    cmocka_unit_test(test_endbr64_then_push),
	    cmocka_unit_test(test_argument_written_first),
	    cmocka_unit_test(test_scratch_register_written),
	    cmocka_unit_test(test_stack_and_frame_pointer),
	    cmocka_unit_test(test_pushes_not_emulated_count),
	    cmocka_unit_test(test_branch_into_skipped_bytes),
	    cmocka_unit_test(test_keep_only_read_arguments),
	    cmocka_unit_test(test_keep_pyenv_libpython),
	    cmocka_unit_test(test_control_flow_ends_prologue),
	    cmocka_unit_test(test_nops),
	    cmocka_unit_test(test_prologue_limit),
	    cmocka_unit_test(test_end_of_bytes),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_insn_emulated),
	    cmocka_unit_test(test_from_file),
	    cmocka_unit_test(test_symbols_of_this_binary),
	    cmocka_unit_test(test_libc),
	    cmocka_unit_test(test_moved_probe_reads_same_args),
	    cmocka_unit_test(test_follow_python311_allocators),
	    cmocka_unit_test(test_follow_copy_lost),
	    cmocka_unit_test(test_libc_free_moved_probe),
	    cmocka_unit_test(test_moved_return_probe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
