/* Unwind tables: programs built here (without and with frame pointers,
 * without PLT CFI, with .debug_frame only for their own code), compared row
 * for row with what `readelf --debug-dump=frames-interp` makes of the same
 * CFI; functions of a known shape written with .cfi directives; CFI bytes
 * written by hand, hostile ones included; the machine's libc, python3.11
 * and libLLVM; files that are not what they claim. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "elfsym.h"
#include "unwind/cfi.h"
#include "unwind/table.h"

#define LIBC "/lib/x86_64-linux-gnu/libc.so.6"
#define PYTHON311 "/usr/bin/python3.11"
#define LIBLLVM "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"

static const uint32_t NONE = UNWIND_NONE; /* unwind_rule(NONE, SAME, 0, 0) */

static uint32_t rsp(uint32_t off)
{
	return unwind_rule(UNWIND_CFA_RSP, UNWIND_RBP_SAME, 0, off);
}

static uint32_t rsp_rbp(uint32_t off, int rbp_off)
{
	return unwind_rule(UNWIND_CFA_RSP, UNWIND_RBP_AT_CFA, rbp_off, off);
}

static uint32_t rbp(uint32_t off, int rbp_off)
{
	return unwind_rule(UNWIND_CFA_RBP, UNWIND_RBP_AT_CFA, rbp_off, off);
}

static uint32_t cannot(unsigned why)
{
	return unwind_rule(UNWIND_CANNOT, UNWIND_RBP_SAME, 0, why);
}

static uint32_t plt(unsigned thr)
{
	return unwind_rule(UNWIND_PLT, UNWIND_RBP_SAME, 0, thr);
}

static const uint32_t STOP = UNWIND_STOP;

static const char *describe(uint32_t rule, char *buf, size_t len)
{
	struct unwind_row r = {0, rule};
	unsigned kind = unwind_row_kind(&r);

	if (kind == UNWIND_CANNOT)
		snprintf(buf, len, "cannot(%s)", unwind_why_name(unwind_row_cfa_off(&r)));
	else
		snprintf(buf, len, "%s+%u rbp=%s%+d", unwind_kind_name(kind),
			 unwind_row_cfa_off(&r),
			 unwind_row_rbp(&r) == UNWIND_RBP_SAME	   ? "same"
			 : unwind_row_rbp(&r) == UNWIND_RBP_AT_CFA ? "cfa"
								   : "lost",
			 unwind_row_rbp_off(&r));
	return buf;
}

/* The rule at vaddr, NONE where no row is */
static uint32_t rule_at(const struct unwind_table *t, uint64_t vaddr)
{
	const struct unwind_row *r = unwind_table_find(t, vaddr);

	return r ? r->rule : NONE;
}

static void expect_rule(const struct unwind_table *t, uint64_t vaddr, uint32_t want)
{
	char a[64], b[64];
	uint32_t got = rule_at(t, vaddr);

	if (got != want)
		fail_msg("at %#lx: %s, want %s", (unsigned long)vaddr, describe(got, a, sizeof(a)),
			 describe(want, b, sizeof(b)));
}

/* A temporary directory for the programs built here */
static char tmpdir[] = "/tmp/test_unwind.XXXXXX";

static const char *tmp_path(const char *name)
{
	static char buf[8][256];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* C functions for gcc to shape, and functions of a known shape in
 * assembly; the byte offsets in the comments are what test_shapes checks */
/* clang-format off: one line per instruction */
static const char program[] =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "__attribute__((noinline)) long leaf(long a) { return a * 3 + 1; }\n"
    "__attribute__((noinline)) long saver(long *v, int n) {\n"
    "	long s = 0;\n"
    "	for (int i = 0; i < n; i++) s += leaf(v[i]) ^ (long)strlen((char *)&v[i]);\n"
    "	return s;\n"
    "}\n"
    "__attribute__((noinline)) long big(int n) {\n"
    "	char buf[100000];\n"
    "	memset(buf, n, sizeof(buf));\n"
    "	return saver((long *)buf, n) + buf[n];\n"
    "}\n"
    "int main(int argc, char **argv) {\n"
    "	long v[4] = {argc, 2, 3, 4};\n"
    "	char *p = malloc(10);\n"
    "	printf(\"%ld %ld %p\\n\", saver(v, 4), big(argc), (void *)p);\n"
    "	return 0;\n"
    "}\n"
    "__asm__(\".text\\n\"\n"
    /* 0 push rbp; 1 mov rsp,rbp; 4 push rbx; 5 sub $40,rsp; 9 call; 14 test;
     * 16 je; 18 add; 22 pop rbx; 23 pop rbp; 24 ret; 25 leave; 26 ret */
    "	\".globl t_shaped\\n.type t_shaped,@function\\nt_shaped:\\n.cfi_startproc\\n\"\n"
    "	\"push %rbp\\n.cfi_def_cfa_offset 16\\n.cfi_offset %rbp,-16\\n\"\n"
    "	\"mov %rsp,%rbp\\n.cfi_def_cfa_register %rbp\\n\"\n"
    "	\"push %rbx\\n.cfi_offset %rbx,-24\\nsub $40,%rsp\\ncall leaf\\n\"\n"
    "	\"test %eax,%eax\\nje 1f\\n.cfi_remember_state\\n\"\n"
    "	\"add $40,%rsp\\npop %rbx\\npop %rbp\\n.cfi_def_cfa %rsp,8\\n.cfi_restore %rbp\\nret\\n\"\n"
    "	\".cfi_restore_state\\n1: leave\\n.cfi_def_cfa %rsp,8\\n.cfi_restore %rbp\\nret\\n\"\n"
    "	\".cfi_endproc\\n.size t_shaped,.-t_shaped\\n\"\n"
    /* 0 nop; 1 CFA = *(rsp + 8): an expression that is not the PLT's */
    "	\".globl t_expr\\n.type t_expr,@function\\nt_expr:\\n.cfi_startproc\\nnop\\n\"\n"
    "	\".cfi_escape 0x0f,0x03,0x77,0x08,0x06\\nnop\\nret\\n.cfi_endproc\\n\"\n"
    /* 0 nop; 1 CFA = r10 */
    "	\".globl t_reg\\n.type t_reg,@function\\nt_reg:\\n.cfi_startproc\\nnop\\n\"\n"
    "	\".cfi_def_cfa %r10,0\\nnop\\nret\\n.cfi_endproc\\n\"\n"
    /* 0 nop; 1 the return address in rdx */
    "	\".globl t_ra\\n.type t_ra,@function\\nt_ra:\\n.cfi_startproc\\nnop\\n\"\n"
    "	\".cfi_register %rip,%rdx\\nnop\\nret\\n.cfi_endproc\\n\"\n"
    /* the outermost frame */
    "	\".globl t_stop\\n.type t_stop,@function\\nt_stop:\\n.cfi_startproc\\n\"\n"
    "	\".cfi_undefined %rip\\nnop\\nret\\n.cfi_endproc\\n\"\n"
    /* 0 sub $0x300000,rsp (7 bytes); 7 add (7 bytes); 14 ret: 3 MiB frame */
    "	\".globl t_big\\n.type t_big,@function\\nt_big:\\n.cfi_startproc\\n\"\n"
    "	\"sub $0x300000,%rsp\\n.cfi_def_cfa_offset 0x300008\\n\"\n"
    "	\"add $0x300000,%rsp\\n.cfi_def_cfa_offset 8\\nret\\n.cfi_endproc\\n\"\n"
    /* a signal frame: its own CIE, augmentation "zRS" */
    "	\".globl t_signal\\n.type t_signal,@function\\nt_signal:\\n.cfi_startproc\\n\"\n"
    "	\".cfi_signal_frame\\nnop\\nret\\n.cfi_endproc\\n\"\n"
    /* 0 nop; 1 the caller's rbp in rbx */
    "	\".globl t_rbp_lost\\n.type "
    "t_rbp_lost,@function\\nt_rbp_lost:\\n.cfi_startproc\\nnop\\n\"\n"
    "	\".cfi_register %rbp,%rbx\\nnop\\nret\\n.cfi_endproc\\n\"\n"
    "	\".size t_rbp_lost,.-t_rbp_lost\\n\");\n";
/* clang-format on */

static int build_program(void)
{
	FILE *f = fopen(tmp_path("p.c"), "w");

	if (!f)
		return -1;
	fputs(program, f);
	fclose(f);
	/* nofp: gcc -O2 as distributions build; fp: frame pointers; noplt: ld
	 * leaves .plt without CFI; dbg: its own code's CFI in .debug_frame */
	return run("cd %s && gcc -O2 -fomit-frame-pointer p.c -o nofp && "
		   "gcc -O2 -fno-omit-frame-pointer p.c -o fp && "
		   "gcc -O2 -fomit-frame-pointer -Wl,--no-ld-generated-unwind-info p.c -o noplt && "
		   "gcc -O2 -g -fno-asynchronous-unwind-tables -fno-unwind-tables p.c -o dbg && "
		   "gcc -O2 -c p.c -o p.o",
		   tmpdir);
}

static int setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	if (run("gcc --version >/dev/null 2>&1 && readelf --version >/dev/null 2>&1"))
		return 0; /* the tests that need them skip */
	return build_program();
}

static int teardown(void **state)
{
	if (!getenv("TEST_UNWIND_KEEP"))
		run("rm -rf %s", tmpdir);
	return 0;
}

static bool have(const char *path)
{
	return !access(path, R_OK);
}

static void build(const char *path, struct unwind_table *t)
{
	int err = unwind_table_build(path, t);

	if (err)
		fail_msg("%s: %s", path, strerror(-err));
}

/* A section's range, from the section headers */
static bool section_range(const char *path, const char *want, uint64_t *lo, uint64_t *hi)
{
	int fd = open(path, O_RDONLY);
	bool found = false;
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	Elf *elf;

	*lo = *hi = 0;
	if (fd < 0)
		return false;
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (elf && !elf_getshdrstrndx(elf, &shstrndx)) {
		while (!found && (scn = elf_nextscn(elf, scn))) {
			GElf_Shdr sh;
			const char *name;

			if (gelf_getshdr(scn, &sh) &&
			    (name = elf_strptr(elf, shstrndx, sh.sh_name)) && !strcmp(name, want)) {
				*lo = sh.sh_addr;
				*hi = sh.sh_addr + sh.sh_size;
				found = true;
			}
		}
	}
	elf_end(elf);
	close(fd);
	return found;
}

/* ---- readelf's view of the same CFI, as the rows the table should hold */

struct re_row {
	uint64_t loc;
	char cfa[24], rbp[24], ra[24];
};

struct re_cie {
	int sec;
	uint64_t off;
	bool signal;
	unsigned ra;
	bool has_row;
	struct re_row row;
};

struct re_fde {
	int sec;
	uint64_t cie_off, lo, hi;
	size_t first, n; /* rows */
};

struct re {
	struct re_cie *cies;
	size_t ncies;
	struct re_fde *fdes;
	size_t nfdes;
	struct re_row *rows;
	size_t nrows;
	uint64_t plt_lo, plt_hi;
};

#define GROW(arr, n) ((arr) = realloc((arr), ((n) + 1) * sizeof(*(arr))), assert_non_null(arr))

/* Fills a row from readelf's columns: cols names them (CFA first) */
static void re_fill(struct re_row *r, char **cols, char **vals, int n)
{
	strcpy(r->rbp, "u");
	strcpy(r->ra, "u");
	strcpy(r->cfa, "?");
	for (int i = 0; i < n; i++) {
		char *dst = !strcmp(cols[i], "CFA")   ? r->cfa
			    : !strcmp(cols[i], "rbp") ? r->rbp
			    : !strcmp(cols[i], "ra")  ? r->ra
						      : NULL;

		if (dst)
			snprintf(dst, sizeof(r->cfa), "%s", vals[i]);
	}
}

/* Splits at blanks; readelf writes a register rule as "r3 (rbx)": a
 * "(name)" token is dropped, its register number is the value */
static int split(char *s, char **out, int max)
{
	int n = 0;

	for (char *tok = strtok(s, " \t\n"); tok && n < max; tok = strtok(NULL, " \t\n"))
		if (tok[0] != '(' || !n)
			out[n++] = tok;
	return n;
}

static void re_read(const char *path, struct re *re)
{
	char cmd[512], line[4096], hdr[4096] = "";
	int sec = -1;
	enum { NOTHING, IN_CIE, IN_FDE } in = NOTHING;
	FILE *p;

	memset(re, 0, sizeof(*re));
	section_range(path, ".plt", &re->plt_lo, &re->plt_hi);
	snprintf(cmd, sizeof(cmd), "readelf -W --debug-dump=frames-interp '%s' 2>/dev/null", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		unsigned long off, len, id, cie, lo, hi;
		char *quote;

		if (!strncmp(line, "Contents of the ", 16)) {
			sec = strstr(line, ".debug_frame") ? 1 : 0;
			in = NOTHING;
		} else if (sscanf(line, "%lx %lx %lx FDE cie=%lx pc=%lx..%lx", &off, &len, &id,
				  &cie, &lo, &hi) == 6) {
			GROW(re->fdes, re->nfdes);
			re->fdes[re->nfdes++] = (struct re_fde){sec, cie, lo, hi, re->nrows, 0};
			in = IN_FDE;
		} else if (sscanf(line, "%lx %lx %lx CIE", &off, &len, &id) == 3 &&
			   strstr(line, " CIE \"") && (quote = strchr(line, '"'))) {
			char *end = strchr(quote + 1, '"');
			char *ra = strstr(line, " ra=");

			assert_non_null(end);
			assert_non_null(ra);
			GROW(re->cies, re->ncies);
			re->cies[re->ncies++] = (struct re_cie){
			    .sec = sec,
			    .off = off,
			    .signal = memchr(quote, 'S', (size_t)(end - quote)) != NULL,
			    .ra = (unsigned)strtoul(ra + 4, NULL, 10)};
			in = IN_CIE;
		} else if (!strncmp(line, "   LOC", 6)) {
			snprintf(hdr, sizeof(hdr), "%s", line + 6);
		} else if (in != NOTHING && strlen(line) > 17 && line[16] == ' ' &&
			   strspn(line, "0123456789abcdef") == 16) {
			char hcopy[4096], *cols[64], *vals[65];
			int nc, nv;
			struct re_row r;

			snprintf(hcopy, sizeof(hcopy), "%s", hdr);
			nc = split(hcopy, cols, 64);
			nv = split(line, vals, 65);
			if (nv < 2)
				continue;
			r.loc = strtoull(vals[0], NULL, 16);
			re_fill(&r, cols, vals + 1, nv - 1 < nc ? nv - 1 : nc);
			if (in == IN_CIE) {
				struct re_cie *c = &re->cies[re->ncies - 1];

				if (!c->has_row)
					c->row = r;
				c->has_row = true;
			} else {
				GROW(re->rows, re->nrows);
				re->rows[re->nrows++] = r;
				re->fdes[re->nfdes - 1].n++;
			}
		}
	}
	pclose(p); /* its status is 1 for some files it reads whole (libc) */
	assert_true(re->nfdes > 0);
}

static const struct re_cie *re_cie_of(const struct re *re, const struct re_fde *f)
{
	for (size_t i = 0; i < re->ncies; i++)
		if (re->cies[i].sec == f->sec && re->cies[i].off == f->cie_off)
			return &re->cies[i];
	fail_msg("FDE at %#lx: no CIE %#lx", (unsigned long)f->lo, (unsigned long)f->cie_off);
	return NULL;
}

/* What a readelf row means in the table's terms: its own reading of the
 * rules table.h states */
static uint32_t re_rule(const struct re *re, const struct re_cie *cie, const struct re_row *r)
{
	unsigned kind, rbp_how = UNWIND_RBP_SAME;
	long off, rbp_off = 0;
	char reg[16];
	int used = 0;

	if (cie->ra != 16)
		return cannot(UNWIND_WHY_RA);
	if (!strcmp(r->ra, "u"))
		return STOP;
	if (cie->signal)
		return cannot(UNWIND_WHY_SIGNAL);
	if (!strcmp(r->cfa, "exp")) {
		if (r->loc < re->plt_lo || r->loc >= re->plt_hi)
			return cannot(UNWIND_WHY_CFA_EXPR);
		kind = UNWIND_PLT;
		off = 11; /* GNU ld's .plt expression */
	} else {
		if (sscanf(r->cfa, "%15[a-z0-9]%ld%n", reg, &off, &used) != 2 || !used)
			fail_msg("readelf CFA column '%s'", r->cfa);
		if (!strcmp(reg, "rsp"))
			kind = UNWIND_CFA_RSP;
		else if (!strcmp(reg, "rbp"))
			kind = UNWIND_CFA_RBP;
		else
			return cannot(UNWIND_WHY_CFA_REG);
		if (off < 0 || off > (long)UNWIND_CFA_OFF_MAX)
			return cannot(UNWIND_WHY_CFA_RANGE);
	}
	if (strcmp(r->ra, "c-8"))
		return cannot(UNWIND_WHY_RA);
	if (r->rbp[0] == 'c' && sscanf(r->rbp + 1, "%ld", &rbp_off) == 1 && rbp_off % 8 == 0 &&
	    rbp_off >= UNWIND_RBP_OFF_MIN && rbp_off <= UNWIND_RBP_OFF_MAX)
		rbp_how = UNWIND_RBP_AT_CFA;
	else if (strcmp(r->rbp, "u") && strcmp(r->rbp, "s"))
		rbp_how = UNWIND_RBP_LOST;
	else
		rbp_off = 0;
	return unwind_rule(kind, rbp_how, (int)rbp_off, (uint32_t)off);
}

static int cmp_re_fde(const void *a, const void *b)
{
	const struct re_fde *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->sec != y->sec)
		return x->sec - y->sec;
	return x->hi > y->hi ? -1 : x->hi < y->hi;
}

struct want {
	struct unwind_row *rows;
	size_t n;
};

static void want_add(struct want *w, uint64_t base, uint64_t vaddr, uint32_t rule)
{
	if (w->n && w->rows[w->n - 1].rule == rule)
		return;
	GROW(w->rows, w->n);
	w->rows[w->n++] = (struct unwind_row){(uint32_t)(vaddr - base), rule};
}

/* The table readelf's rows make, built as table.h says: FDEs in address
 * order, NONE between them and after the last, equal neighbours merged */
static void re_expect(struct re *re, uint64_t base, struct want *w)
{
	uint64_t covered = 0;
	bool any = false;

	memset(w, 0, sizeof(*w));
	qsort(re->fdes, re->nfdes, sizeof(*re->fdes), cmp_re_fde);
	for (size_t i = 0; i < re->nfdes; i++) {
		const struct re_fde *f = &re->fdes[i];
		const struct re_cie *cie;

		if (f->lo == f->hi || f->lo < base || f->hi - base > UINT32_MAX ||
		    (any && f->lo < covered))
			continue;
		cie = re_cie_of(re, f);
		if (any && f->lo > covered)
			want_add(w, base, covered, NONE);
		if (!f->n) { /* no instructions: the CIE's row */
			struct re_row r = cie->row;

			assert_true(cie->has_row);
			r.loc = f->lo;
			want_add(w, base, f->lo, re_rule(re, cie, &r));
		}
		for (size_t j = 0; j < f->n; j++) {
			const struct re_row *r = &re->rows[f->first + j];

			if (r->loc < f->hi)
				want_add(w, base, r->loc, re_rule(re, cie, r));
		}
		covered = f->hi;
		any = true;
	}
	if (any)
		want_add(w, base, covered, NONE);
}

static void re_free(struct re *re)
{
	free(re->cies);
	free(re->fdes);
	free(re->rows);
}

/* Every row of the table is the one readelf's rows give */
static void check_against_readelf(const char *path, const struct unwind_table *t)
{
	struct re re;
	struct want w;
	char a[64], b[64];

	re_read(path, &re);
	re_expect(&re, t->base, &w);
	for (size_t i = 0; i < w.n && i < t->n; i++)
		if (w.rows[i].start != t->rows[i].start || w.rows[i].rule != t->rows[i].rule)
			fail_msg("%s: row %zu: %#lx %s, readelf says %#lx %s", path, i,
				 (unsigned long)(t->base + t->rows[i].start),
				 describe(t->rows[i].rule, a, sizeof(a)),
				 (unsigned long)(t->base + w.rows[i].start),
				 describe(w.rows[i].rule, b, sizeof(b)));
	assert_int_equal(t->n, w.n);
	free(w.rows);
	re_free(&re);
}

/* ---- programs built here */

static uint64_t sym(const char *path, const char *name)
{
	struct elfsym_file *f;
	struct elfsym s;

	assert_int_equal(elfsym_open(path, &f), 0);
	assert_int_equal(elfsym_lookup(f, name, &s), 0);
	elfsym_close(f);
	return s.vaddr;
}

static void need_toolchain(void)
{
	if (!have(tmp_path("nofp")))
		skip();
}

static void test_programs_match_readelf(void **state)
{
	static const char *const builds[] = {"nofp", "fp", "noplt", "dbg"};

	need_toolchain();
	for (size_t i = 0; i < sizeof(builds) / sizeof(builds[0]); i++) {
		struct unwind_table t;

		build(tmp_path(builds[i]), &t);
		assert_int_equal(t.base, 0); /* PIE */
		if (t.stats.bad_entries)
			fail_msg("%s: %u bad CFI entries", builds[i], t.stats.bad_entries);
		if (strcmp(builds[i], "noplt"))
			check_against_readelf(tmp_path(builds[i]), &t);
		unwind_table_free(&t);
	}
}

static void test_shapes(void **state)
{
	const char *path;
	struct unwind_table t;
	uint64_t f;

	need_toolchain();
	path = tmp_path("nofp");
	build(path, &t);

	f = sym(path, "t_shaped");
	expect_rule(&t, f + 0, rsp(8));
	expect_rule(&t, f + 1, rsp_rbp(16, -16));
	expect_rule(&t, f + 3, rsp_rbp(16, -16));
	expect_rule(&t, f + 4, rbp(16, -16));
	expect_rule(&t, f + 23, rbp(16, -16));
	expect_rule(&t, f + 24, rsp(8));       /* after pop %rbp */
	expect_rule(&t, f + 25, rbp(16, -16)); /* restore_state */
	expect_rule(&t, f + 26, rsp(8));       /* after leave */

	f = sym(path, "t_expr");
	expect_rule(&t, f, rsp(8));
	expect_rule(&t, f + 1, cannot(UNWIND_WHY_CFA_EXPR));
	f = sym(path, "t_reg");
	expect_rule(&t, f + 1, cannot(UNWIND_WHY_CFA_REG));
	f = sym(path, "t_ra");
	expect_rule(&t, f, rsp(8));
	expect_rule(&t, f + 1, cannot(UNWIND_WHY_RA));
	expect_rule(&t, sym(path, "t_stop"), STOP);
	f = sym(path, "t_big");
	expect_rule(&t, f + 6, rsp(8));
	expect_rule(&t, f + 7, cannot(UNWIND_WHY_CFA_RANGE));
	expect_rule(&t, f + 14, rsp(8));
	expect_rule(&t, sym(path, "t_signal"), cannot(UNWIND_WHY_SIGNAL));
	f = sym(path, "t_rbp_lost");
	expect_rule(&t, f + 1, unwind_rule(UNWIND_CFA_RSP, UNWIND_RBP_LOST, 0, 8));

	/* gcc's own: leaf touches no stack; big has a 100000-byte frame */
	expect_rule(&t, sym(path, "leaf"), rsp(8));
	assert_true(t.stats.cannot[UNWIND_WHY_CFA_EXPR] == 1 &&
		    t.stats.cannot[UNWIND_WHY_SIGNAL] == 1);
	assert_int_equal(t.stats.rbp_lost, 1);
	unwind_table_free(&t);

	/* with frame pointers, saver's body has CFA = rbp + 16, rbp at CFA-16 */
	path = tmp_path("fp");
	build(path, &t);
	f = sym(path, "saver");
	expect_rule(&t, f, rsp(8));
	{
		bool seen = false;

		for (uint64_t a = f; a < f + 64 && !seen; a++)
			seen = rule_at(&t, a) == rbp(16, -16);
		assert_true(seen);
	}
	unwind_table_free(&t);
}

/* .plt with CFI (GNU ld's expression) and without (rows made from its
 * layout) come out the same */
static void test_plt(void **state)
{
	struct unwind_table with, without;
	uint64_t lo, hi, glo, ghi;

	need_toolchain();
	build(tmp_path("nofp"), &with);
	build(tmp_path("noplt"), &without);
	assert_true(section_range(tmp_path("noplt"), ".plt", &lo, &hi));
	assert_true(section_range(tmp_path("noplt"), ".plt.got", &glo, &ghi));
	assert_int_equal(without.stats.plt_synthesized, 2);
	assert_int_equal(with.stats.plt_synthesized, 0);
	expect_rule(&without, lo, rsp(16));
	expect_rule(&without, lo + 5, rsp(16));
	expect_rule(&without, lo + 6, rsp(24));
	expect_rule(&without, lo + 16, plt(11));
	expect_rule(&without, hi - 1, plt(11));
	expect_rule(&without, glo, rsp(8));
	for (uint64_t a = lo; a < ghi; a++)
		assert_int_equal(rule_at(&with, a), rule_at(&without, a));
	unwind_table_free(&with);
	unwind_table_free(&without);
}

/* -fno-asynchronous-unwind-tables -g: the program's functions are in
 * .debug_frame, crt's and the PLT's in .eh_frame; both are read */
static void test_debug_frame(void **state)
{
	struct unwind_table t;
	const char *path;

	need_toolchain();
	path = tmp_path("dbg");
	build(path, &t);
	assert_true(t.stats.eh_frame && t.stats.debug_frame);
	expect_rule(&t, sym(path, "leaf"), rsp(8));
	expect_rule(&t, sym(path, "t_shaped") + 4, rbp(16, -16));
	unwind_table_free(&t);
}

/* ---- CFI written by hand */

struct bytes {
	uint8_t b[8192];
	size_t n;
};

static void put(struct bytes *x, const void *p, size_t n)
{
	assert_true(x->n + n <= sizeof(x->b));
	memcpy(x->b + x->n, p, n);
	x->n += n;
}

static void put_le(struct bytes *x, uint64_t v, int n)
{
	for (int i = 0; i < n; i++) {
		uint8_t c = (uint8_t)(v >> (8 * i));

		put(x, &c, 1);
	}
}

static void patch_len(struct bytes *x, size_t at)
{
	uint32_t len = (uint32_t)(x->n - at - 4);

	memcpy(x->b + at, &len, 4);
}

/* A CIE with no augmentation (FDE addresses absolute, 8 bytes), code
 * alignment 1, data alignment -8, return address column ra: CFA = rsp+8,
 * return address at CFA-8, then extra instructions */
static size_t cie(struct bytes *x, unsigned ra, const void *extra, size_t n)
{
	const uint8_t head[] = {1, 0, 1, 0x78, (uint8_t)ra, 0x0c, 7, 8, 0x80 | 16, 1};
	size_t at = x->n;

	put_le(x, 0, 4);
	put_le(x, 0, 4); /* CIE id */
	put(x, head, sizeof(head));
	put(x, extra, n);
	patch_len(x, at);
	return at;
}

static void fde(struct bytes *x, size_t cie_at, uint64_t lo, uint64_t range, const void *insn,
		size_t n)
{
	size_t at = x->n;

	put_le(x, 0, 4);
	put_le(x, x->n - cie_at, 4); /* back from this field to the CIE */
	put_le(x, lo, 8);
	put_le(x, range, 8);
	put(x, insn, n);
	patch_len(x, at);
}

static void build_cfi(const struct bytes *x, struct unwind_table *t)
{
	assert_int_equal(unwind_table_build_cfi(x->b, x->n, 0x100, true, 0, t), 0);
}

/* Every CFA instruction the reader handles, row by row */
static void test_cfi_instructions(void **state)
{
	/* clang-format off */
	static const uint8_t insn[] = {
	    0x41, 0x0e, 16, 0x86, 2,	       /* +1: CFA rsp+16, rbp at CFA-16 */
	    0x02, 3, 0x0d, 6,		       /* +3: CFA register rbp */
	    0x03, 0x10, 0, 0x0a, 0x0c, 7, 8, 0xc6, /* +16: remember; CFA rsp+8; restore rbp */
	    0x04, 1, 0, 0, 0, 0x0b,	       /* +1: restore_state */
	    0x41, 0x14, 6, 2,		       /* +1: val_offset rbp: lost */
	    0x41, 0x2f, 6, 2,		       /* +1: rbp at CFA+16 */
	    0x41, 0x11, 6, 2,		       /* +1: rbp at CFA-16 (sf) */
	    0x41, 0x12, 7, 0x7d,	       /* +1: CFA rsp + (-3 * -8) */
	    0x41, 0x13, 0x7c,		       /* +1: CFA offset -4 * -8 */
	    0x41, 0x08, 6, 0x2e, 16, 0,	       /* +1: rbp same value; args_size; nop */
	    0x41, 0x0f, 11, 0x77, 8, 0x80, 0, 0x3f, 0x1a, 0x39, 0x2a, 0x33, 0x24, 0x22, /* PLT, lit9 */
	    0x41, 0x10, 6, 2, 0x77, 0, 0x0c, 7, 8, /* +1: rbp from an expression; CFA rsp+8 */
	    0x05, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, /* a register number no x86 has: ignored */
	    0x41, 0x07, 16,		       /* +1: return address undefined */
	};
	/* clang-format on */
	struct bytes x = {0};
	struct unwind_table t;
	size_t c = cie(&x, 16, NULL, 0);

	fde(&x, c, 0x1000, 0x100, insn, sizeof(insn));
	build_cfi(&x, &t);
	expect_rule(&t, 0x1000, rsp(8));
	expect_rule(&t, 0x1001, rsp_rbp(16, -16));
	expect_rule(&t, 0x1004, rbp(16, -16));
	expect_rule(&t, 0x1014, rsp(8));
	expect_rule(&t, 0x1015, rbp(16, -16));
	expect_rule(&t, 0x1016, unwind_rule(UNWIND_CFA_RBP, UNWIND_RBP_LOST, 0, 16));
	expect_rule(&t, 0x1017, rbp(16, 16));
	expect_rule(&t, 0x1018, rbp(16, -16));
	expect_rule(&t, 0x1019, rsp_rbp(24, -16));
	expect_rule(&t, 0x101a, rsp_rbp(32, -16));
	expect_rule(&t, 0x101b, rsp(32));
	expect_rule(&t, 0x101c, plt(9));
	expect_rule(&t, 0x101d, unwind_rule(UNWIND_CFA_RSP, UNWIND_RBP_LOST, 0, 8));
	expect_rule(&t, 0x101e, STOP);
	expect_rule(&t, 0x10ff, STOP);
	expect_rule(&t, 0x1100, NONE);
	assert_int_equal(t.n, 15);
	assert_int_equal(t.stats.rows[UNWIND_NONE], 1);
	assert_int_equal(t.stats.bytes[UNWIND_STOP], 0x100 - 0x1e);

	/* lookups outside the table */
	assert_null(unwind_table_find(&t, 0xfff));
	assert_null(unwind_table_find(&t, (uint64_t)1 << 33));
	assert_int_equal(unwind_row_end(&t, unwind_table_find(&t, 0x1000)), 0x1001);
	assert_int_equal(unwind_row_end(&t, unwind_table_find(&t, 0x5000)), (uint64_t)1 << 32);
	unwind_table_free(&t);
}

/* Gaps, overlaps, ranges out of reach, merging across FDEs */
static void test_cfi_layout(void **state)
{
	static const uint8_t push[] = {0x41, 0x0e, 16}; /* +1: CFA rsp+16 */
	struct bytes x = {0};
	struct unwind_table t;
	size_t c = cie(&x, 16, NULL, 0);

	fde(&x, c, 0x2000, 0x10, push, sizeof(push));
	fde(&x, c, 0x1000, 0x10, NULL, 0);	/* FDEs come in any order */
	fde(&x, c, 0x1010, 0x10, NULL, 0);	/* merges with the one before */
	fde(&x, c, 0x2008, 0x10, NULL, 0);	/* inside the first: left out */
	fde(&x, c, 0x3000, 0, NULL, 0);		/* empty */
	fde(&x, c, 0x80, 0x10, NULL, 0);	/* below the base */
	fde(&x, c, 0x100000100, 0x10, NULL, 0); /* beyond base + 4 GiB */
	assert_int_equal(unwind_table_build_cfi(x.b, x.n, 0, true, 0x100, &t), 0);
	assert_int_equal(t.stats.fdes, 7);
	assert_int_equal(t.stats.fdes_overlap, 1);
	assert_int_equal(t.stats.fdes_empty, 1);
	assert_int_equal(t.stats.fdes_outside, 2);
	assert_int_equal(t.n, 5);
	expect_rule(&t, 0x1000, rsp(8));
	assert_int_equal(t.rows[0].start, 0x1000 - 0x100);
	expect_rule(&t, 0x101f, rsp(8));
	expect_rule(&t, 0x1020, NONE);
	expect_rule(&t, 0x2000, rsp(8));
	expect_rule(&t, 0x2001, rsp(16));
	expect_rule(&t, 0x2010, NONE);
	assert_null(unwind_table_find(&t, 0xfff));
	unwind_table_free(&t);
}

/* What a hostile file may write: each bad FDE becomes one CANNOT row (or,
 * where not even its range is known, a bad entry), and nothing else is
 * harmed */
static void test_cfi_hostile(void **state)
{
	uint8_t deep[CFI_MAX_STATE_DEPTH + 2];
	/* clang-format off */
	static const uint8_t back[] = {0x41, 0x01, 0, 0x10, 0, 0, 0, 0, 0, 0}; /* set_loc 0x1000 */
	static const uint8_t window[] = {0x41, 0x2d};			    /* SPARC only */
	static const uint8_t pop[] = {0x0b};				    /* nothing remembered */
	static const uint8_t trunc[] = {0x41, 0x05, 0x86};		    /* operand cut */
	static const uint8_t expr_off[] = {0x0f, 1, 0x06, 0x0e, 8};	    /* offset of an expr */
	static const uint8_t ok[] = {0x41, 0x0e, 16};
	/* clang-format on */
	struct bytes x = {0};
	struct unwind_table t;
	size_t c, c5;

	memset(deep, 0x0a, sizeof(deep)); /* remember_state, one too many */
	deep[0] = 0x41;
	c = cie(&x, 16, NULL, 0);
	c5 = cie(&x, 5, NULL, 0); /* the return address in another column */
	fde(&x, c, 0x1000, 0x10, deep, sizeof(deep));
	fde(&x, c, 0x1010, 0x10, back, sizeof(back));
	fde(&x, c, 0x1020, 0x10, window, sizeof(window));
	fde(&x, c, 0x1030, 0x10, pop, sizeof(pop));
	fde(&x, c, 0x1040, 0x10, trunc, sizeof(trunc));
	fde(&x, c, 0x1050, 0x10, expr_off, sizeof(expr_off));
	fde(&x, c5, 0x1060, 0x10, NULL, 0);
	fde(&x, c, 0x1070, 0x10, ok, sizeof(ok));
	fde(&x, x.n + 64, 0x1080, 0x10, NULL, 0); /* no CIE there */
	build_cfi(&x, &t);
	for (uint64_t a = 0x1000; a < 0x1060; a += 0x10)
		expect_rule(&t, a + 0xf, cannot(UNWIND_WHY_BAD_CFI));
	expect_rule(&t, 0x1060, cannot(UNWIND_WHY_RA));
	expect_rule(&t, 0x1070, rsp(8));
	expect_rule(&t, 0x1071, rsp(16));
	expect_rule(&t, 0x1080, NONE);
	assert_int_equal(t.stats.cannot[UNWIND_WHY_BAD_CFI], 1); /* one merged row */
	assert_int_equal(t.stats.cannot_bytes[UNWIND_WHY_BAD_CFI], 0x60);
	assert_int_equal(t.stats.bad_entries, 1);
	unwind_table_free(&t);

	/* a section cut inside an entry: what came before stays */
	x.n = 0;
	c = cie(&x, 16, NULL, 0);
	fde(&x, c, 0x1000, 0x10, ok, sizeof(ok));
	fde(&x, c, 0x2000, 0x10, ok, sizeof(ok));
	x.n -= 5;
	build_cfi(&x, &t);
	assert_int_equal(t.stats.bad_entries, 1);
	expect_rule(&t, 0x1001, rsp(16));
	expect_rule(&t, 0x2000, NONE);
	unwind_table_free(&t);

	/* "eh" augmentation, an unknown version, a DWARF64 length */
	x.n = 0;
	{
		static const uint8_t eh_aug[] = {1, 'e', 'h', 0, 1, 0x78, 16};
		static const uint8_t v9[] = {9, 0, 1, 0x78, 16};
		size_t at = x.n;

		put_le(&x, 0, 4);
		put_le(&x, 0, 4);
		put(&x, eh_aug, sizeof(eh_aug));
		patch_len(&x, at);
		fde(&x, at, 0x1000, 0x10, NULL, 0);
		at = x.n;
		put_le(&x, 0, 4);
		put_le(&x, 0, 4);
		put(&x, v9, sizeof(v9));
		patch_len(&x, at);
		put_le(&x, 0xffffffff, 4);
		put_le(&x, 8, 8);
	}
	build_cfi(&x, &t);
	assert_int_equal(t.n, 0);
	assert_int_equal(t.stats.bad_entries, 4); /* two CIEs, the FDE, the rest */
	assert_null(unwind_table_find(&t, 0x1000));
	unwind_table_free(&t);

	/* nothing at all, and garbage */
	assert_int_equal(unwind_table_build_cfi(x.b, 0, 0, true, 0, &t), 0);
	assert_int_equal(t.n, 0);
	for (size_t i = 0; i < sizeof(x.b); i++)
		x.b[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(unwind_table_build_cfi(x.b, sizeof(x.b), 0, true, 0, &t), 0);
	unwind_table_free(&t);
	assert_int_equal(unwind_table_build_cfi(x.b, sizeof(x.b), 0, false, 0, &t), 0);
	unwind_table_free(&t);
}

/* ---- files that are not what they claim */

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void copy_prefix(const char *from, const char *to, size_t n)
{
	char *buf = malloc(n);
	FILE *f = fopen(from, "r");

	assert_non_null(buf);
	assert_non_null(f);
	n = fread(buf, 1, n, f);
	fclose(f);
	write_file(to, buf, n);
	free(buf);
}

static void test_bad_files(void **state)
{
	struct unwind_table t;
	uint8_t junk[4096];
	struct stat st;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 17);
	write_file(tmp_path("junk"), junk, sizeof(junk));
	assert_int_equal(unwind_table_build(tmp_path("junk"), &t), -ENOEXEC);
	write_file(tmp_path("text"), "#!/bin/sh\necho hi\n", 18);
	assert_int_equal(unwind_table_build(tmp_path("text"), &t), -ENOEXEC);
	write_file(tmp_path("empty"), "", 0);
	assert_int_equal(unwind_table_build(tmp_path("empty"), &t), -ENOEXEC);
	assert_int_equal(unwind_table_build("/dev/null", &t), -ENOEXEC);
	assert_int_equal(unwind_table_build(tmpdir, &t), -ENOEXEC);
	assert_int_equal(unwind_table_build(tmp_path("does-not-exist"), &t), -ENOENT);
	assert_int_equal(t.n, 0);
	assert_null(t.rows);

	if (!have(tmp_path("nofp")))
		return;
	/* a relocatable object: its addresses are not final */
	assert_int_equal(unwind_table_build(tmp_path("p.o"), &t), -ENOEXEC);
	/* cut before its section headers */
	assert_int_equal(stat(tmp_path("nofp"), &st), 0);
	copy_prefix(tmp_path("nofp"), tmp_path("cut"), (size_t)st.st_size / 2);
	assert_true(unwind_table_build(tmp_path("cut"), &t) < 0);
	/* the .eh_frame overwritten with junk: a table, with the bad counted */
	{
		uint64_t lo, hi, off;
		FILE *f;
		char line[256];

		assert_true(section_range(tmp_path("nofp"), ".eh_frame", &lo, &hi));
		run("cp %s %s", tmp_path("nofp"), tmp_path("junked"));
		snprintf(line, sizeof(line),
			 "readelf -W -S %s | sed -n 's/.*\\] \\.eh_frame  *[A-Z]*  *[0-9a-f]* "
			 "\\([0-9a-f]*\\) .*/\\1/p'",
			 tmp_path("nofp"));
		f = popen(line, "r");
		assert_non_null(f);
		assert_non_null(fgets(line, sizeof(line), f));
		pclose(f);
		off = strtoull(line, NULL, 16);
		f = fopen(tmp_path("junked"), "r+");
		assert_non_null(f);
		assert_int_equal(fseek(f, (long)off + 24, SEEK_SET), 0);
		assert_int_equal(fwrite(junk, 1, hi - lo - 24, f), hi - lo - 24);
		fclose(f);
		assert_int_equal(unwind_table_build(tmp_path("junked"), &t), 0);
		assert_true(t.stats.bad_entries >= 1);
		unwind_table_free(&t);
	}
}

/* ---- the machine's own binaries */

static double build_timed(const char *path, struct unwind_table *t)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	build(path, t);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

static void report(const char *path, const struct unwind_table *t, double ms)
{
	const struct unwind_stats *s = &t->stats;
	uint32_t cannot_rows = s->rows[UNWIND_CANNOT];

	print_message("%s: %u rows (%u KiB) in %.1f ms from %u FDEs; stop %u, cannot %u "
		      "(%lu bytes), rbp lost %u\n",
		      path, t->n, t->n * 8 / 1024, ms, s->fdes, s->rows[UNWIND_STOP], cannot_rows,
		      (unsigned long)s->bytes[UNWIND_CANNOT], s->rbp_lost);
	for (unsigned w = 0; w < UNWIND_WHY_COUNT; w++)
		if (s->cannot[w])
			print_message("    cannot: %s: %u rows, %lu bytes\n", unwind_why_name(w),
				      s->cannot[w], (unsigned long)s->cannot_bytes[w]);
}

/* A file of the machine's: built, reported, every row as readelf has it,
 * none of its CFI refused, few rows that cannot be unwound */
static bool machine_file(const char *path, uint32_t min_rows, struct unwind_table *t)
{
	double ms;

	if (!have(path))
		return false;
	ms = build_timed(path, t);
	report(path, t, ms);
	assert_true(t->n > min_rows && t->n < UNWIND_MAX_ROWS);
	assert_int_equal(t->stats.bad_entries, 0);
	assert_true(t->stats.rows[UNWIND_CANNOT] <= 16);
	check_against_readelf(path, t);
	return true;
}

/* Debian 12's libc 2.36: 28274 rows from 3713 FDEs. Six (202 bytes)
 * cannot be unwound, all hand-written assembly past the point where it
 * switches stacks: CFA in rdi (the ends of __longjmp, __longjmp_cancel and
 * ____longjmp_chk) or rdx (setcontext), the return address in rdi (vfork),
 * and the signal trampoline (__restore_rt, unnamed in this libc); two STOP
 * rows (clone's and clone3's child). The bounds leave room for another
 * glibc build. */
static void test_libc(void **state)
{
	struct elfsym_file *f;
	struct elfsym s;
	struct unwind_table t;

	if (!machine_file(LIBC, 10000, &t))
		skip();
	assert_true(t.n < 100000);
	assert_true(t.stats.bytes[UNWIND_CANNOT] < 1024);
	assert_true(t.stats.rows[UNWIND_STOP] >= 1 && t.stats.rows[UNWIND_STOP] <= 8);
	assert_true(t.stats.rows[UNWIND_PLT] >= 1);
	assert_int_equal(elfsym_open(LIBC, &f), 0);
	assert_int_equal(elfsym_lookup(f, "malloc", &s), 0);
	expect_rule(&t, s.vaddr, rsp(8));
	elfsym_close(f);
	unwind_table_free(&t);
}

/* Debian's python3.11: not PIE, LTO, 10221 FDEs, none that cannot be unwound */
static void test_python(void **state)
{
	struct unwind_table t;

	if (!machine_file(PYTHON311, 20000, &t))
		skip();
	assert_int_equal(t.base, 0x400000);
	unwind_table_free(&t);
}

/* A big one: ~95000 FDEs, ~950000 rows */
static void test_libllvm(void **state)
{
	struct unwind_table t;

	if (!machine_file(LIBLLVM, 100000, &t))
		skip();
	unwind_table_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_programs_match_readelf),
	    cmocka_unit_test(test_shapes),
	    cmocka_unit_test(test_plt),
	    cmocka_unit_test(test_debug_frame),
	    cmocka_unit_test(test_cfi_instructions),
	    cmocka_unit_test(test_cfi_layout),
	    cmocka_unit_test(test_cfi_hostile),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_libc),
	    cmocka_unit_test(test_python),
	    cmocka_unit_test(test_libllvm),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
