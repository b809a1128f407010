/* One module (a mapped file, through libdwfl) of a symbolizer: the frames
 * of an address in it, inlined calls expanded, from two lookup indexes
 * built on first use:
 *
 * - its function symbols sorted by address (dwfl_module_addrname scans
 *   the whole symbol table at every call: 200 us an address in libpython);
 * - for each compilation unit, its functions' address ranges sorted, so
 *   that the DIE of the function holding an address is found by binary
 *   search, not by walking the unit's DIEs.
 *
 * The DWARF may be hostile: every walk is bounded in depth. Addresses are
 * the module's as dwfl reports them (bias applied). */
#ifndef TRACER_MODSYM_H
#define TRACER_MODSYM_H

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include "symbolize.h"

struct modsym;

struct modsym *modsym_new(Dwfl_Module *mod);
void modsym_free(struct modsym *m);

/* The name of the function symbol covering addr (as the symbol table
 * has it, mangled), or NULL. */
const char *modsym_function(struct modsym *m, Dwarf_Addr addr);
/* The same, with the symbol's address in *start (when not NULL). */
const char *modsym_function_at(struct modsym *m, Dwarf_Addr addr, Dwarf_Addr *start);

/* The DW_TAG_subprogram DIE of cu (a DIE of this module) whose ranges hold
 * pc (a DWARF address: without the bias), into *out. 0 or -ENOENT. */
int modsym_subprogram(struct modsym *m, Dwarf_Die *cu, Dwarf_Addr pc, Dwarf_Die *out);

/* The frames of the module address pc, innermost first, into f (room for
 * SYMBOLIZE_MAX_INLINE): the functions inlined there, then the function
 * the symbol table names. Strings are malloc'd; f[0].filename is NULL when
 * pc has no line, an inlined call's when its line is unknown. Returns
 * their number (>= 1). */
size_t modsym_frames(struct modsym *m, Dwarf_Addr pc, struct symbolize_frame *f);

#endif
