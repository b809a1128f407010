/* Measures what one uprobe hit costs on this kernel for each kind of probed
 * instruction, next to what user/placement.c predicts (emulated or
 * single-stepped). The probes are plain perf uprobe events on this program's
 * own functions: no BPF program, so the figure is the kernel's trap alone.
 *
 *   build: cc -O2 -Iuser scripts/uprobe_cost.c user/placement.c user/elfsym.c \
 *              -lcapstone -lelf -o build/uprobe_cost
 *   run (root): build/uprobe_cost [calls]
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "placement.h"

/* Each function: the instruction under test at the probed offset, then ret. */
__asm__(".text\n"
	".globl uc_push\n uc_push: push %rbp\n pop %rbp\n ret\n"
	".globl uc_push_r12\n uc_push_r12: push %r12\n pop %r12\n ret\n"
	".globl uc_nop1\n uc_nop1: nop\n ret\n"
	".globl uc_nop66\n uc_nop66: .byte 0x66,0x90\n ret\n"
	".globl uc_nop5\n uc_nop5: nopl 0x0(%rax,%rax,1)\n ret\n"
	".globl uc_je\n uc_je: test %rdi,%rdi\n je 1f\n 1: ret\n"
	".globl uc_jmp\n uc_jmp: jmp 1f\n 1: ret\n"
	".globl uc_call\n uc_call: call uc_ret\n ret\n"
	".globl uc_ret\n uc_ret: ret\n"
	".globl uc_test\n uc_test: test %rdi,%rdi\n ret\n"
	".globl uc_mov\n uc_mov: mov %rdi,%rax\n ret\n"
	".globl uc_mov_self\n uc_mov_self: mov %rdi,%rdi\n ret\n"
	".globl uc_lea0\n uc_lea0: .byte 0x48,0x8d,0x7f,0x00\n ret\n"
	".globl uc_endbr\n uc_endbr: endbr64\n ret\n"
	".globl uc_sub_rsp\n uc_sub_rsp: sub $8,%rsp\n add $8,%rsp\n ret\n"
	".globl uc_cmpb_rip\n uc_cmpb_rip: cmpb $0x0,uc_data(%rip)\n ret\n"
	".data\n uc_data: .byte 0\n .text\n");

void uc_push(void), uc_push_r12(void), uc_nop1(void), uc_nop66(void), uc_nop5(void), uc_je(void),
    uc_jmp(void), uc_call(void), uc_ret(void), uc_test(void), uc_mov(void), uc_mov_self(void),
    uc_lea0(void), uc_endbr(void), uc_sub_rsp(void), uc_cmpb_rip(void);

static const struct {
	const char *name;
	void (*fn)(void);
	unsigned off; /* probed offset in the function */
} cases[] = {
    {"push %rbp", uc_push, 0},
    {"push %r12", uc_push_r12, 0},
    {"nop", uc_nop1, 0},
    {"xchg %ax,%ax (66 90)", uc_nop66, 0},
    {"nop5 (nopl 0(%rax,%rax))", uc_nop5, 0},
    {"je (after test)", uc_je, 3},
    {"jmp rel8", uc_jmp, 0},
    {"call rel32", uc_call, 0},
    {"test %rdi,%rdi", uc_test, 0},
    {"mov %rdi,%rax", uc_mov, 0},
    {"mov %rdi,%rdi", uc_mov_self, 0},
    {"lea 0(%rdi),%rdi", uc_lea0, 0},
    {"endbr64", uc_endbr, 0},
    {"sub $8,%rsp", uc_sub_rsp, 0},
    {"cmpb $0,x(%rip)", uc_cmpb_rip, 0},
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double per_call_ns(void (*volatile fn)(void), long calls)
{
	uint64_t t0 = now_ns();
	long i;

	for (i = 0; i < calls; i++)
		fn();
	return (double)(now_ns() - t0) / (double)calls;
}

/* File offset of a code address of this program, from /proc/self/maps. */
static int file_offset(const void *addr, char *path, size_t pathlen, uint64_t *off)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		uint64_t lo, hi, foff;
		char perms[8], p[256] = "";

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %*s %*s %255s", &lo, &hi,
			   perms, &foff, p) < 4)
			continue;
		if ((uint64_t)addr < lo || (uint64_t)addr >= hi)
			continue;
		*off = (uint64_t)addr - lo + foff;
		snprintf(path, pathlen, "%s", p);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

static int uprobe_pmu_type(void)
{
	FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "r");
	int t = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &t) != 1)
		t = -1;
	fclose(f);
	return t;
}

int main(int argc, char **argv)
{
	long calls = argc > 1 ? atol(argv[1]) : 200000;
	int type = uprobe_pmu_type();
	size_t i;

	if (calls <= 0) {
		fprintf(stderr, "uprobe_cost: calls must be a positive number\n");
		return 2;
	}
	if (type < 0) {
		fprintf(stderr,
			"uprobe_cost: no uprobe PMU (/sys/bus/event_source/devices/uprobe)\n");
		return 2;
	}
	printf("%-26s %-10s %-10s %10s %10s\n", "probed instruction", "placement", "hits",
	       "ns/call", "ns/hit");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const uint8_t *code = (const uint8_t *)cases[i].fn + cases[i].off;
		struct perf_event_attr attr;
		char path[256];
		uint64_t off = 0, hits = 0;
		double base, probed;
		int fd;

		if (file_offset(code, path, sizeof(path), &off)) {
			fprintf(stderr, "uprobe_cost: cannot map %s\n", cases[i].name);
			return 1;
		}
		base = per_call_ns(cases[i].fn, calls);
		memset(&attr, 0, sizeof(attr));
		attr.size = sizeof(attr);
		attr.type = (uint32_t)type;
		attr.config1 = (uint64_t)(uintptr_t)path;
		attr.config2 = off;
		fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			printf("%-26s %-10s cannot probe: %s\n", cases[i].name,
			       placement_insn_emulated(code, 15) ? "emulated" : "stepped",
			       strerror(errno));
			continue;
		}
		probed = per_call_ns(cases[i].fn, calls);
		if (read(fd, &hits, sizeof(hits)) != sizeof(hits))
			hits = 0;
		close(fd);
		printf("%-26s %-10s %-10" PRIu64 " %10.1f %10.1f\n", cases[i].name,
		       placement_insn_emulated(code, 15) ? "emulated" : "stepped", hits, probed,
		       probed - base);
	}
	return 0;
}
