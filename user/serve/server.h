/* tracer serve's HTTP side (libmicrohttpd, a thread per connection):
 * /debug/pprof/heap, /metrics and /snapshot from snapshots that the session
 * loop builds when asked (server_wants_snapshot, server_publish). A handler
 * never makes the loop wait: it asks, the loop builds between its polls,
 * and the handler waits for it on its own thread; a snapshot younger than
 * SERVER_MAX_AGE_NS is shared (refcounted) by every request that comes
 * meanwhile. Nothing is ever read from disk to be served. */
#ifndef TRACER_SERVER_H
#define TRACER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "model/snapshot.h"

#define SERVER_DEFAULT_LISTEN "127.0.0.1:6060"
#define SERVER_MAX_AGE_NS 1000000000ull /* a snapshot this fresh is served again */
#define SERVER_MAX_CONNECTIONS 128	/* more are refused (memory stays bounded) */
#define SERVER_MAX_DELTA_SECONDS 600	/* ?seconds=N, 1..600 */
#define SERVER_TOKEN_MAX 4096

struct server_options {
	const char *listen;	/* ADDR:PORT; NULL for SERVER_DEFAULT_LISTEN */
	const char *token_file; /* bearer token required when set */
	const char *version;	/* tracer_build_info's */
	const char *log_file;	/* --log: a line per request appended there, or NULL */
};

struct server;

/* Checks the options (the address, the token file) without binding:
 * 0, or -EINVAL with one line in why. */
int server_check(const struct server_options *o, char *why, size_t why_len);

/* Binds and starts serving (every request waits for the first snapshot).
 * 0, or a negative errno with one line in why. */
int server_start(const struct server_options *o, struct server **out, char *why,
		 size_t why_len);
/* The address it listens on, as "127.0.0.1:6060" (the port chosen with :0). */
const char *server_address(const struct server *srv);

/* The session loop's side: true when a request waits for a snapshot; then
 * it builds one and gives it (ownership passes; NULL when it could not). */
bool server_wants_snapshot(struct server *srv);
void server_publish(struct server *srv, struct snapshot *snap, double build_seconds);

/* SIGHUP: the log file opened again by its name (after a rotation); the
 * old one stays when it cannot be. 0, or a negative errno with why. */
int server_reopen_log(struct server *srv, char *why, size_t why_len);

/* Stops serving: waiting requests get 503, connections are closed. */
void server_stop(struct server *srv);

#endif
