#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model/delta.h"
#include "model/snapfile.h"
#include "report/metrics.h"
#include "report/pprof.h"
#include "serve/server.h"
#include "util/outfile.h"

/* A published snapshot, shared by the requests that serve it; its encodings
 * are made once, by the first request that needs each. */
enum encoding { ENC_HEAP, ENC_SNAPFILE, NENCODINGS };

struct shared {
	struct server *srv;
	struct snapshot *snap;
	unsigned refs; /* under srv->lock */
	uint64_t built_ns;
	double build_seconds;
	pthread_mutex_t enc_lock;
	struct {
		bool done;
		int err;
		char *p;
		size_t n;
	} enc[NENCODINGS];
};

struct server {
	struct MHD_Daemon *daemon;
	int listen_fd;
	char address[INET6_ADDRSTRLEN + 16];
	char token[SERVER_TOKEN_MAX + 1];
	size_t token_len; /* 0: no token asked */
	const char *version;

	pthread_mutex_t lock;
	pthread_cond_t published;
	struct shared *latest;
	uint64_t generation; /* publications, failed ones too */
	uint64_t failures;   /* publications without a snapshot */
	int wanted;	     /* read by the session loop without the lock */
	bool stopping;

	/* --log: one line per request; replaced under log_lock at SIGHUP */
	const char *log_path;
	FILE *log;
	pthread_mutex_t log_lock;
};

/* What the handler's reply was, for the log line (a connection's thread
 * answers one request at a time). */
static __thread unsigned reply_status;
static __thread size_t reply_bytes;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* -- options ------------------------------------------------------------ */

/* "A.B.C.D:PORT", "[v6]:PORT" or "localhost:PORT"; numeric only, so that
 * no name is looked up. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *why,
			size_t why_len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h = spec, *port_s;
	size_t hlen;
	char *end;
	long port;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close[1] != ':')
			goto bad;
		h = spec + 1;
		hlen = (size_t)(close - h);
		port_s = close + 2;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || strchr(spec, ':') != colon)
			goto bad;
		hlen = (size_t)(colon - spec);
		port_s = colon + 1;
	}
	if (!hlen || hlen >= sizeof(host))
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(port_s, &end, 10);
	if (errno || end == port_s || *end || port < 0 || port > 65535 || port_s[0] == '+' ||
	    port_s[0] == '-')
		goto bad;
	memset(ss, 0, sizeof(*ss));
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (spec[0] != '[') {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			goto bad;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			goto bad;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
	}
	return 0;
bad:
	snprintf(why, why_len,
		 "invalid --listen '%.200s' (ADDR:PORT with a numeric address, e.g. "
		 "127.0.0.1:6060, [::1]:6060 or 0.0.0.0:6060 for every interface)",
		 spec);
	return -EINVAL;
}

/* The token file: a regular file (not through a link), not readable or
 * writable by others, holding one token of 16..4096 visible characters
 * (a final newline is allowed). */
static int read_token(const char *path, char *token, size_t *len, char *why, size_t why_len)
{
	char buf[SERVER_TOKEN_MAX + 2];
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		snprintf(why, why_len, "cannot read the token file %.256s: %s", path,
			 strerror(errno));
		return -EINVAL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(why, why_len, "the token file %.256s is not a regular file", path);
		goto bad;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(why, why_len,
			 "the token file %.256s is readable or writable by others (chmod 600 it)",
			 path);
		goto bad;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		snprintf(why, why_len, "cannot read the token file %.256s: %s", path,
			 strerror(errno));
		goto bad;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n < 16 || n > SERVER_TOKEN_MAX) {
		snprintf(why, why_len,
			 "the token file %.256s must hold one token of 16 to %d characters", path,
			 SERVER_TOKEN_MAX);
		goto bad;
	}
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] <= ' ' || buf[i] > '~') {
			snprintf(why, why_len,
				 "the token file %.256s must hold one token of visible ASCII "
				 "characters (no spaces)",
				 path);
			goto bad;
		}
	close(fd);
	memcpy(token, buf, (size_t)n);
	token[n] = '\0';
	*len = (size_t)n;
	return 0;
bad:
	close(fd);
	return -EINVAL;
}

int server_check(const struct server_options *o, char *why, size_t why_len)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char token[SERVER_TOKEN_MAX + 1];
	size_t n;
	int err;

	err = parse_listen(o->listen ? o->listen : SERVER_DEFAULT_LISTEN, &ss, &len, why, why_len);
	if (!err && o->token_file)
		err = read_token(o->token_file, token, &n, why, why_len);
	explicit_bzero(token, sizeof(token));
	return err;
}

/* -- snapshots ---------------------------------------------------------- */

static void shared_unref(struct shared *sh)
{
	struct server *srv = sh->srv;
	bool last;

	pthread_mutex_lock(&srv->lock);
	last = !--sh->refs;
	pthread_mutex_unlock(&srv->lock);
	if (!last)
		return;
	snapshot_free(sh->snap);
	for (int k = 0; k < NENCODINGS; k++)
		free(sh->enc[k].p);
	pthread_mutex_destroy(&sh->enc_lock);
	free(sh);
}

bool server_wants_snapshot(struct server *srv)
{
	return __atomic_load_n(&srv->wanted, __ATOMIC_ACQUIRE);
}

void server_publish(struct server *srv, struct snapshot *snap, double build_seconds)
{
	struct shared *sh = snap ? calloc(1, sizeof(*sh)) : NULL, *old = NULL;

	if (sh) {
		sh->srv = srv;
		sh->snap = snap;
		sh->refs = 1; /* the server's, as latest */
		sh->built_ns = mono_ns();
		sh->build_seconds = build_seconds;
		pthread_mutex_init(&sh->enc_lock, NULL);
	} else {
		snapshot_free(snap);
	}
	pthread_mutex_lock(&srv->lock);
	if (sh) {
		old = srv->latest;
		srv->latest = sh;
	} else {
		srv->failures++;
	}
	srv->generation++;
	__atomic_store_n(&srv->wanted, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&srv->published);
	pthread_mutex_unlock(&srv->lock);
	if (old)
		shared_unref(old);
}

/* A snapshot built at not_before_ns or later, asked of the session loop
 * when the latest is older; NULL when stopping, when the loop could not
 * build one, or after 30 s. */
static struct shared *get_snapshot(struct server *srv, uint64_t not_before_ns)
{
	struct shared *sh = NULL;
	uint64_t failures;
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 30;
	pthread_mutex_lock(&srv->lock);
	failures = srv->failures;
	while (!srv->stopping && srv->failures == failures) {
		if (srv->latest && srv->latest->built_ns >= not_before_ns) {
			sh = srv->latest;
			sh->refs++;
			break;
		}
		__atomic_store_n(&srv->wanted, 1, __ATOMIC_RELEASE);
		if (pthread_cond_timedwait(&srv->published, &srv->lock, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&srv->lock);
	return sh;
}

static int encode_to_memory(int (*write)(const struct snapshot *, const void *, FILE *),
			    const struct snapshot *s, const void *arg, char **p, size_t *n)
{
	FILE *f = open_memstream(p, n);
	int err;

	if (!f)
		return -ENOMEM;
	err = write(s, arg, f);
	if (fclose(f) && !err)
		err = -ENOMEM;
	if (err) {
		free(*p);
		*p = NULL;
	}
	return err;
}

static int write_heap(const struct snapshot *s, const void *arg, FILE *f)
{
	return pprof_write_with(s, arg, f);
}

static int write_metrics(const struct snapshot *s, const void *arg, FILE *f)
{
	return metrics_write(s, arg, f);
}

/* The shared snapshot's encoding, made now if no request made it before. */
static int encoding(struct shared *sh, enum encoding k, const char **p, size_t *n)
{
	pthread_mutex_lock(&sh->enc_lock);
	if (!sh->enc[k].done) {
		if (k == ENC_HEAP) {
			struct pprof_options o = {0};

			sh->enc[k].err = encode_to_memory(write_heap, sh->snap, &o, &sh->enc[k].p,
							  &sh->enc[k].n);
		} else {
			void *buf = NULL;

			sh->enc[k].err = snapfile_encode(sh->snap, &buf, &sh->enc[k].n);
			sh->enc[k].p = buf;
		}
		sh->enc[k].done = true;
	}
	pthread_mutex_unlock(&sh->enc_lock);
	*p = sh->enc[k].p;
	*n = sh->enc[k].n;
	return sh->enc[k].err;
}

/* ?seconds=N: the live set N seconds from now less the live set now, as
 * Go's delta heap profiles are (their inuse_* can be negative: blocks freed
 * in the window). */
static int delta_profile(struct server *srv, long seconds, int32_t *pid, char **p, size_t *n)
{
	struct shared *before, *after = NULL;
	struct snapshot *d = NULL;
	uint64_t until;
	int err = -EAGAIN;

	before = get_snapshot(srv, mono_ns());
	if (!before)
		return -EAGAIN;
	until = before->built_ns + (uint64_t)seconds * 1000000000ull;
	for (;;) {
		uint64_t now = mono_ns();
		struct timespec ts = {0, 100000000};

		if (__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE))
			goto out;
		if (now >= until)
			break;
		if (until - now < 100000000ull)
			ts.tv_nsec = (long)(until - now);
		nanosleep(&ts, NULL);
	}
	after = get_snapshot(srv, until);
	if (!after)
		goto out;
	d = snapshot_new();
	err = -ENOMEM;
	if (!d)
		goto out;
	{
		const struct snapshot *a = after->snap, *b = before->snap;
		const char *cmd = snapshot_string(a, a->target.command);
		const char *host = snapshot_string(a, a->target.host);
		int64_t c = snapshot_intern_string(d, cmd ? cmd : "");
		int64_t h = snapshot_intern_string(d, host ? host : "");
		struct pprof_options o = {.delta = true};

		if (c < 0 || h < 0)
			goto out;
		d->traceback_limit = a->traceback_limit;
		d->target = a->target;
		d->target.command = (uint32_t)c;
		d->target.host = (uint32_t)h;
		d->taken_at = a->taken_at;
		d->budget = a->budget;
		d->duration_ns = a->duration_ns > b->duration_ns ? a->duration_ns - b->duration_ns
								 : 0;
		*pid = a->target.pid;
		err = snapshot_import_traces(d, a);
		o.subtract_from = d->ntraces;
		if (!err)
			err = snapshot_import_traces(d, b);
		if (!err)
			err = encode_to_memory(write_heap, d, &o, p, n);
	}
out:
	snapshot_free(d);
	shared_unref(before);
	if (after)
		shared_unref(after);
	return err;
}

/* -- HTTP --------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     struct MHD_Response *r)
{
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	reply_status = status;
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(msg), (void *)msg, MHD_RESPMEM_MUST_COPY);

	reply_bytes = strlen(msg);
	if (r && status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"tracer\"");
	if (r && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	return reply(c, status, "text/plain; charset=utf-8", r);
}

static void unref_response(void *cls)
{
	shared_unref(cls);
}

/* The shared snapshot's bytes, sent from where they are; the response
 * holds a reference until it is done. */
static enum MHD_Result shared_bytes(struct MHD_Connection *c, struct shared *sh, enum encoding k,
				    const char *type)
{
	struct MHD_Response *r;
	const char *p;
	size_t n;

	if (encoding(sh, k, &p, &n)) {
		shared_unref(sh);
		return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot encode the snapshot\n");
	}
	reply_bytes = n;
	r = MHD_create_response_from_buffer_with_free_callback_cls(n, (void *)p, unref_response,
								   sh);
	if (!r) {
		shared_unref(sh);
		return MHD_NO;
	}
	if (k == ENC_HEAP)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION,
					"attachment; filename=\"heap\"");
	return reply(c, MHD_HTTP_OK, type, r);
}

/* Constant time in the token's length: a mismatch says nothing of where. */
static bool authorized(struct server *srv, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	unsigned char diff = 0;
	size_t n;

	if (!srv->token_len)
		return true;
	if (!h || strncasecmp(h, "Bearer ", 7))
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	n = strlen(h);
	if (n != srv->token_len)
		return false;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(h[i] ^ srv->token[i]);
	return !diff;
}

/* ?NAME=N, a decimal in [min, max]: 1 when there, 0 when not, -1 when bad */
static int number_arg(struct MHD_Connection *c, const char *name, long min, long max, long *v)
{
	const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	char *end;

	if (!s)
		return 0;
	errno = 0;
	*v = strtol(s, &end, 10);
	if (errno || end == s || *end || *v < min || *v > max)
		return -1;
	return 1;
}

static enum MHD_Result heap(struct server *srv, struct MHD_Connection *c)
{
	struct shared *sh;
	long seconds = 0, pid = 0;
	int has_seconds = number_arg(c, "seconds", 1, SERVER_MAX_DELTA_SECONDS, &seconds);
	int has_pid = number_arg(c, "pid", 1, INT32_MAX, &pid);

	if (has_seconds < 0)
		return text(c, MHD_HTTP_BAD_REQUEST, "seconds: a whole number from 1 to 600\n");
	if (has_pid < 0)
		return text(c, MHD_HTTP_BAD_REQUEST, "pid: a process id\n");
	if (has_seconds) {
		struct MHD_Response *r;
		int32_t target = 0;
		char *p = NULL;
		size_t n = 0;
		int err = delta_profile(srv, seconds, &target, &p, &n);

		if (err == -EAGAIN)
			return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no snapshot (stopping?)\n");
		if (err)
			return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot make the profile\n");
		if (has_pid && pid != target) {
			free(p);
			return text(c, MHD_HTTP_NOT_FOUND, "not a traced process\n");
		}
		r = MHD_create_response_from_buffer(n, p, MHD_RESPMEM_MUST_FREE);
		if (r)
			MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION,
						"attachment; filename=\"heap-delta\"");
		else
			free(p);
		return reply(c, MHD_HTTP_OK, "application/octet-stream", r);
	}
	sh = get_snapshot(srv, mono_ns() - SERVER_MAX_AGE_NS);
	if (!sh)
		return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no snapshot (stopping?)\n");
	if (has_pid && pid != sh->snap->target.pid) {
		shared_unref(sh);
		return text(c, MHD_HTTP_NOT_FOUND, "not a traced process\n");
	}
	return shared_bytes(c, sh, ENC_HEAP, "application/octet-stream");
}

static enum MHD_Result metrics(struct server *srv, struct MHD_Connection *c)
{
	struct shared *sh = get_snapshot(srv, mono_ns() - SERVER_MAX_AGE_NS);
	struct metrics_info info;
	char *p = NULL;
	size_t n = 0;
	int err;

	if (!sh)
		return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no snapshot (stopping?)\n");
	info = (struct metrics_info){.version = srv->version,
				     .snapshot_seconds = sh->build_seconds,
				     .snapshot_age_seconds = (mono_ns() - sh->built_ns) / 1e9};
	err = encode_to_memory(write_metrics, sh->snap, &info, &p, &n);
	shared_unref(sh);
	if (err)
		return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot write the metrics\n");
	reply_bytes = n;
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
		     MHD_create_response_from_buffer(n, p, MHD_RESPMEM_MUST_FREE));
}

/* A URL or method as the log shows it: printable ASCII only, bounded. */
static void log_safe(char *out, size_t len, const char *in)
{
	size_t n = 0;

	for (; in && *in && n + 1 < len; in++)
		out[n++] = *in > ' ' && *in < 0x7f ? *in : '?';
	out[n] = '\0';
}

/* --log: "2026-12-01T19:20:00Z 127.0.0.1 GET /metrics 200 1234 0.003" (the
 * client, the request, the status, the body's bytes when known, seconds). */
static void log_request(struct server *srv, struct MHD_Connection *c, const char *method,
			const char *url, uint64_t started)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char client[INET6_ADDRSTRLEN] = "?", m[16], u[256], when[32];
	time_t now = time(NULL);
	struct tm tm;

	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;

		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, client,
				  sizeof(client));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, client,
				  sizeof(client));
	}
	log_safe(m, sizeof(m), method);
	log_safe(u, sizeof(u), url);
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	pthread_mutex_lock(&srv->log_lock);
	if (srv->log)
		fprintf(srv->log, "%s %s %s %s %u %zu %.3f\n", when, client, m, u, reply_status,
			reply_bytes, (mono_ns() - started) / 1e9);
	pthread_mutex_unlock(&srv->log_lock);
}

static enum MHD_Result dispatch(struct server *srv, struct MHD_Connection *c, const char *url,
				const char *method);

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	static int first_call;
	struct server *srv = cls;
	enum MHD_Result ret;
	uint64_t started = mono_ns();

	if (!*req_cls) { /* the headers: answer once the request is whole */
		*req_cls = &first_call;
		return MHD_YES;
	}
	if (*upload_data_size) { /* a body: not wanted, dropped as it comes */
		*upload_data_size = 0;
		return MHD_YES;
	}
	reply_status = 0;
	reply_bytes = 0;
	ret = dispatch(srv, c, url, method);
	if (srv->log_path)
		log_request(srv, c, method, url, started);
	return ret;
}

static enum MHD_Result dispatch(struct server *srv, struct MHD_Connection *c, const char *url,
				const char *method)
{
	if (!authorized(srv, c))
		return text(c, MHD_HTTP_UNAUTHORIZED, "a bearer token is required\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET or HEAD\n");
	if (!strcmp(url, "/debug/pprof/heap"))
		return heap(srv, c);
	if (!strcmp(url, "/metrics"))
		return metrics(srv, c);
	if (!strcmp(url, "/snapshot")) {
		struct shared *sh = get_snapshot(srv, mono_ns() - SERVER_MAX_AGE_NS);

		if (!sh)
			return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no snapshot (stopping?)\n");
		return shared_bytes(c, sh, ENC_SNAPFILE, "application/octet-stream");
	}
	return text(c, MHD_HTTP_NOT_FOUND,
		    "not found: tracer serves /debug/pprof/heap, /metrics and /snapshot\n");
}

/* -- lifecycle ---------------------------------------------------------- */

int server_start(const struct server_options *o, struct server **out, char *why,
		 size_t why_len)
{
	struct server *srv = calloc(1, sizeof(*srv));
	struct sockaddr_storage ss, bound;
	socklen_t len, blen = sizeof(bound);
	sigset_t all, old;
	char host[INET6_ADDRSTRLEN];
	int one = 1, err;

	if (!srv) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	srv->listen_fd = -1;
	srv->version = o->version;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->log_lock, NULL);
	pthread_cond_init(&srv->published, NULL);
	err = parse_listen(o->listen ? o->listen : SERVER_DEFAULT_LISTEN, &ss, &len, why,
			   why_len);
	if (!err && o->token_file)
		err = read_token(o->token_file, srv->token, &srv->token_len, why, why_len);
	if (!err && o->log_file) {
		char reason[4400];

		err = outfile_append(o->log_file, &srv->log, reason, sizeof(reason));
		if (err)
			snprintf(why, why_len, "cannot open the log: %.400s", reason);
		srv->log_path = o->log_file;
	}
	if (err)
		goto fail;
	srv->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv->listen_fd < 0 ||
	    setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(srv->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) ||
	    bind(srv->listen_fd, (struct sockaddr *)&ss, len) ||
	    listen(srv->listen_fd, 64) ||
	    getsockname(srv->listen_fd, (struct sockaddr *)&bound, &blen)) {
		err = -errno;
		snprintf(why, why_len, "cannot listen on %.200s: %s",
			 o->listen ? o->listen : SERVER_DEFAULT_LISTEN, strerror(errno));
		goto fail;
	}
	if (bound.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&bound;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(srv->address, sizeof(srv->address), "%s:%u", host, ntohs(in->sin_port));
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bound;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(srv->address, sizeof(srv->address), "[%s]:%u", host,
			 ntohs(in6->sin6_port));
	}
	/* the daemon's threads take no signal: the session loop gets them all */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	srv->daemon = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
		(ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, handle, srv, MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVER_MAX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)65536, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024), MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!srv->daemon) {
		err = -EIO;
		snprintf(why, why_len, "cannot start the HTTP server on %s", srv->address);
		goto fail;
	}
	*out = srv;
	return 0;
fail:
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->log)
		fclose(srv->log);
	explicit_bzero(srv->token, sizeof(srv->token));
	free(srv);
	return err;
}

const char *server_address(const struct server *srv)
{
	return srv->address;
}

int server_reopen_log(struct server *srv, char *why, size_t why_len)
{
	char reason[4400];
	FILE *f, *old;
	int err;

	if (!srv->log_path)
		return 0;
	err = outfile_append(srv->log_path, &f, reason, sizeof(reason));
	if (err) {
		snprintf(why, why_len, "cannot open the log again: %.400s", reason);
		return err;
	}
	pthread_mutex_lock(&srv->log_lock);
	old = srv->log;
	srv->log = f;
	pthread_mutex_unlock(&srv->log_lock);
	if (old)
		fclose(old);
	return 0;
}

void server_stop(struct server *srv)
{
	if (!srv)
		return;
	pthread_mutex_lock(&srv->lock);
	__atomic_store_n(&srv->stopping, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&srv->published);
	pthread_mutex_unlock(&srv->lock);
	/* joins every connection's thread, and closes the listening socket */
	MHD_stop_daemon(srv->daemon);
	if (srv->latest)
		shared_unref(srv->latest);
	pthread_cond_destroy(&srv->published);
	pthread_mutex_destroy(&srv->lock);
	if (srv->log)
		fclose(srv->log);
	pthread_mutex_destroy(&srv->log_lock);
	explicit_bzero(srv->token, sizeof(srv->token));
	free(srv);
}
