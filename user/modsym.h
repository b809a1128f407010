/* Lookup indexes for one module of a symbolizer, built on first use:
 *
 * - its function symbols sorted by address (dwfl_module_addrname scans
 *   the whole symbol table at every call: 200 us an address in libpython);
 * - for each compilation unit, its functions' address ranges sorted, so
 *   that the DIE of the function holding an address is found by binary
 *   search, not by walking the unit's DIEs.
 *
 * Addresses are the module's as dwfl reports them (bias applied). */
#ifndef TRACER_MODSYM_H
#define TRACER_MODSYM_H

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

struct modsym;

struct modsym *modsym_new(Dwfl_Module *mod);
void modsym_free(struct modsym *m);

/* The name of the function symbol covering addr (as the symbol table
 * has it, mangled), or NULL. */
const char *modsym_function(struct modsym *m, Dwarf_Addr addr);

/* The DW_TAG_subprogram DIE of cu (a DIE of this module) whose ranges hold
 * pc (a DWARF address: without the bias), into *out. 0 or -ENOENT. */
int modsym_subprogram(struct modsym *m, Dwarf_Die *cu, Dwarf_Addr pc, Dwarf_Die *out);

#endif
