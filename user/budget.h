/* --budget PCT: the tracer's cost on each traced process kept under PCT of
 * that process's own CPU time, by attaching the allocation probes in time
 * windows (README.md, "Overhead budget", says what the figures then mean).
 *
 * The cost is probe hits (BPF counts them per process: proc_hits) times
 * what one hit costs: the trap, calibrated at start on a helper process of
 * the tracer's own (its libc's malloc and free, probed as a target's are),
 * plus what the BPF programs ran, from the kernel's BPF run-time
 * statistics. Each period (BUDGET_PERIOD_S) the window's length is set so
 * that the cost since tracing began stays within the budget of the CPU
 * time the process spent on its own work (its CPU time less that cost).
 *
 * The frees (and reallocs) stay attached, so that blocks allocated within
 * windows leave the live set when freed; when even they cost more than the
 * budget, they go in windows too, and then each window starts with an
 * empty live set (its figures are the window's). */
#ifndef TRACER_BUDGET_H
#define TRACER_BUDGET_H

#include <stdbool.h>
#include <sys/types.h>

#include "model/snapshot.h"
#include "probes.h"

#define BUDGET_PERIOD_S 1.0	   /* one window per period at most */
#define BUDGET_MIN_WINDOW_S 0.005 /* shorter windows are skipped (their debt carries) */

struct budget;

/* Calibrates, before the session attaches its probes (skel loaded).
 * ratio is the budget (0.05 for 5 %). 0, or a negative errno after one
 * line on stderr. */
int budget_open(struct budget **out, double ratio, struct tracer_bpf *skel, struct probes *p,
		bool follow, bool verbose);
/* Starts the windows once the probes in p are attached: pid the target
 * (with follow, the processes are those of traced_pids). */
void budget_start(struct budget *b, pid_t pid);
/* From the session loop (every poll): opens and closes windows, and at the
 * end of each period measures and sets the next window. */
void budget_tick(struct budget *b);
/* The snapshot's budget header (struct snapshot_budget); nothing when b is NULL. */
void budget_describe(const struct budget *b, struct snapshot *snap);
/* What one probe hit was calibrated at, in seconds. */
double budget_hit_cost(const struct budget *b);
void budget_close(struct budget *b);

/* The CPU time of process pid's threads so far, in seconds, or -1. */
double budget_process_cpu(pid_t pid);

#endif
