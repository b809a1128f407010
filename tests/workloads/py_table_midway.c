/* A program embedding CPython whose raw allocator table's calloc slot points
 * where no function starts: two instructions of its own without CFI (so no
 * FDE), the slot at the second, a jump to the calloc the table held. What a
 * process could write there to make a tracer probe inside an instruction;
 * the tracer must leave it unprobed and say so.
 *
 *   py_table_midway   print "ready", wait for a line (a tracer attaches),
 *                     run Python code that allocates (at line 2 of
 *                     "<string>"), print "done", wait for a line
 *
 * Built by the test against pyenv's libpython (python3.12-config --embed). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>

void *(*saved_calloc)(void *ctx, size_t nelem, size_t elsize);
void *table_midway(void *ctx, size_t nelem, size_t elsize);

__asm__(".text\n"
	"table_before_midway:\n"
	"	nop\n"
	".globl table_midway\n"
	"table_midway:\n"
	"	jmp *saved_calloc(%rip)\n");

static int wait_line(void)
{
	char line[64];

	return fgets(line, sizeof(line), stdin) != NULL;
}

int main(void)
{
	PyMemAllocatorEx raw;

	Py_Initialize();
	PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &raw);
	saved_calloc = raw.calloc;
	raw.calloc = table_midway;
	PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &raw);
	printf("ready\n");
	fflush(stdout);
	wait_line();
	/* in a function, whose code object stays: the module's is freed once
	 * run, before the tracer could read it */
	PyRun_SimpleString("def make():\n"
			   "    return [bytearray(1000) for _ in range(100)]\n"
			   "keep = make()\n");
	printf("done\n");
	fflush(stdout);
	wait_line();
	return Py_FinalizeEx() < 0;
}
