/* The unwind tables in the BPF maps the walker reads (bpf/unwind.bpf.h):
 * each mapped file's rows (user/unwind/table.c) once, however many
 * processes map it, found again by device and inode; and per process the
 * sorted table of its executable mappings, each with its file's page index
 * and load bias.
 *
 * The maps are sized at load (an array cannot grow): the files a target
 * maps, or a command will map, are built first (unwind_maps_prepare_*),
 * their sum with a quarter more and UNWIND_MAPS_HEADROOM more rows
 * decides the size; files mapped later (dlopen) take from that room, and
 * one that finds no room is counted (files_no_room) and unwinds no frame.
 *
 * Files are what targets control: a table is built only from a regular
 * file opened as the very file mapped (target_file_path), within
 * table.c's bounds; a mapping whose offset lies in no PT_LOAD, or beyond
 * TRACER_UNWIND_MAX_MAPPINGS in one process, is counted and left out. */
#ifndef TRACER_UNWIND_MAPS_H
#define TRACER_UNWIND_MAPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define UNWIND_MAPS_HEADROOM (512u << 10) /* rows (4 MiB), beyond 5/4 of the prepared */

struct unwind_maps;

/* What the tables hold and what could not be tabled. */
struct unwind_maps_stats {
	uint32_t files;		 /* files with a table */
	uint32_t files_no_cfi;	 /* files without CFI: frame pointers only */
	uint32_t files_bad;	 /* files that could not be read or are not x86-64 ELF */
	uint32_t files_no_room;	 /* files left out: the maps were full */
	uint32_t mappings_left_out; /* beyond TRACER_UNWIND_MAX_MAPPINGS, or outside any PT_LOAD */
	uint64_t rows, rows_cap;
	uint64_t pages, pages_cap;
	uint32_t installs;	 /* process tables written */
	uint32_t files_unpublished; /* tabled, but not in unwind_files (full) */
};

int unwind_maps_new(struct unwind_maps **out);
void unwind_maps_free(struct unwind_maps *u);

/* Before the maps exist: build the table of a file a command will map, or
 * of every file a process maps now. 0 or -ENOMEM (a file that cannot be
 * tabled is counted, not an error). Once they exist, prepare_file writes
 * the file's table into them at once (a program about to map it). */
int unwind_maps_prepare_file(struct unwind_maps *u, const char *path);
int unwind_maps_prepare_process(struct unwind_maps *u, pid_t pid);
/* The sizes the maps need: what is prepared, and room for more. */
void unwind_maps_capacity(const struct unwind_maps *u, uint32_t *rows, uint32_t *pages);

/* Once loaded: maps the row and page arrays (rows_cap and pages_cap
 * entries, as sized) and writes every prepared table into them. procs_fd
 * is unwind_procs, files_fd unwind_files. 0 or -errno. */
int unwind_maps_bind(struct unwind_maps *u, int rows_fd, uint32_t rows_cap, int pages_fd,
		     uint32_t pages_cap, int procs_fd, int files_fd);

/* Reads pid's mappings and writes its table, building the tables of files
 * not seen before; nothing is written when the mappings are those of the
 * last install. 0, or -errno (the process is gone, the map refused it). */
int unwind_maps_install(struct unwind_maps *u, pid_t pid);
/* Drops pid's table from the maps (it exited); what was installed stays
 * known to unwind_maps_rule. */
void unwind_maps_forget(struct unwind_maps *u, pid_t pid);

/* The rule of the row the walker used for pc in pid's table as last
 * installed, for explaining where a walk ended: 0, or -ENOENT. */
int unwind_maps_rule(const struct unwind_maps *u, pid_t pid, uint64_t pc, uint32_t *rule);

void unwind_maps_get_stats(const struct unwind_maps *u, struct unwind_maps_stats *st);

#endif
