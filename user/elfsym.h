/* Symbols of an ELF file on disk: where a function lives, as a file offset
 * (what uprobes take) and as a link-time address. */
#ifndef TRACER_ELFSYM_H
#define TRACER_ELFSYM_H

#include <stdbool.h>
#include <stdint.h>

struct elfsym_file;

struct elfsym {
	uint64_t vaddr;	      /* st_value */
	uint64_t file_offset; /* where the code is in the file */
	uint64_t size;
};

/* Opens path; returns 0 or a negative errno (-ENOEXEC: not an ELF file). */
int elfsym_open(const char *path, struct elfsym_file **out);
void elfsym_close(struct elfsym_file *f);

/* A function defined in the file (.symtab first, then .dynsym; symbol
 * versions ignored). Returns 0 or -ENOENT. */
int elfsym_lookup(struct elfsym_file *f, const char *name, struct elfsym *out);

/* The same for a data object (STT_OBJECT). */
int elfsym_lookup_object(struct elfsym_file *f, const char *name, struct elfsym *out);

/* Reads size bytes of the file at a link-time address. 0 or -errno. */
int elfsym_read(struct elfsym_file *f, uint64_t vaddr, void *buf, uint64_t size);

/* The link-time address of the first PT_LOAD segment (0 for PIE and DSOs). */
uint64_t elfsym_first_load_vaddr(struct elfsym_file *f);
bool elfsym_has_interp(struct elfsym_file *f);

/* The DT_NEEDED names and the DT_RUNPATH/DT_RPATH string (NULL if none) of
 * a dynamic object, from its dynamic section. Calls cb once per name. */
int elfsym_needed(struct elfsym_file *f, void (*cb)(const char *name, void *arg), void *arg,
		  char *runpath, size_t runpath_len);

/* The link-time addresses of the GOT slots the dynamic linker fills with
 * the address of the imported function name (its R_X86_64_JUMP_SLOT and
 * R_X86_64_GLOB_DAT relocations): up to max of them in slots. Returns how
 * many. */
int elfsym_import_slots(struct elfsym_file *f, const char *name, uint64_t *slots, int max);

/* The file offsets [lo, hi) of the executable segment (PT_LOAD, PF_X)
 * that holds offset off; 0, or -ENOENT. */
int elfsym_exec_segment(struct elfsym_file *f, uint64_t off, uint64_t *lo, uint64_t *hi);

/* The link-time address of file offset off in the executable segment that
 * holds it; 0, or -ENOENT. */
int elfsym_exec_vaddr(struct elfsym_file *f, uint64_t off, uint64_t *vaddr);

/* Calls cb for every section of code (SHT_PROGBITS, SHF_EXECINSTR) with its
 * name, link-time address and bytes, which stay valid until elfsym_close,
 * until cb returns non-zero; returns that, or 0. */
int elfsym_code_sections(struct elfsym_file *f,
			 int (*cb)(const char *name, uint64_t vaddr, const uint8_t *code,
				   size_t size, void *arg),
			 void *arg);

#endif
