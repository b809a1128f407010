/* CPython seen from the probes: which file of a process holds the
 * interpreter, its version, and the layout the BPF frame walker
 * (bpf/python.h) needs to read the allocating thread's frames. */
#ifndef TRACER_PYTHON_BPF_H_USER
#define TRACER_PYTHON_BPF_H_USER

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "tracer.h"

struct python_target {
	int major, minor, micro;
	uint64_t runtime; /* address of _PyRuntime in the process */
	uint64_t bias;	  /* load bias of the interpreter's file */
	char path[PATH_MAX + 64];
};

/* 0, -ENOENT when the process runs no CPython, -EPROTONOSUPPORT for a
 * version without a layout table (out->minor says which). */
int python_find(pid_t pid, struct python_target *out);

/* The walker's configuration for this interpreter. 0 or -EPROTONOSUPPORT. */
int python_bpf_config(pid_t pid, const struct python_target *t, struct tracer_py_config *cfg);

/* Reads len bytes of the process's memory at addr (no ptrace, no writes). */
int python_read(pid_t pid, uint64_t addr, void *buf, size_t len);

#endif
