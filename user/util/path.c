#include <stdbool.h>
#include <string.h>

#include "util/path.h"

#define MAX_COMPONENTS 512

void path_normalise_source(char *path)
{
	char *comp[MAX_COMPONENTS], *p, *out;
	size_t n = 0, i, len[MAX_COMPONENTS];
	bool absolute = path[0] == '/';
	bool dotted = path[0] == '.' && path[1] == '/';

	/* split, dropping "." and empty components */
	for (p = path; *p;) {
		size_t l;

		while (*p == '/')
			p++;
		l = strcspn(p, "/");
		if (!l)
			break;
		if (n == MAX_COMPONENTS)
			return; /* too deep to be a source path: left as it is */
		if (!(l == 1 && p[0] == '.')) {
			comp[n] = p;
			len[n++] = l;
		}
		p += l;
	}
	if (!absolute) {
		/* "D/.." pairs */
		size_t k = 0;

		for (i = 0; i < n; i++) {
			bool up = len[i] == 2 && !strncmp(comp[i], "..", 2);

			if (up && k && !(len[k - 1] == 2 && !strncmp(comp[k - 1], "..", 2))) {
				k--;
				continue;
			}
			comp[k] = comp[i];
			len[k++] = len[i];
		}
		n = k;
		/* "D/D/..." of a path that began "./" */
		if (dotted && n >= 3 && len[0] == len[1] && !strncmp(comp[0], comp[1], len[0]) &&
		    !(len[0] == 2 && !strncmp(comp[0], "..", 2))) {
			memmove(comp, comp + 1, (n - 1) * sizeof(*comp));
			memmove(len, len + 1, (n - 1) * sizeof(*len));
			n--;
		}
	}
	/* join: every component starts at or after where it is written */
	out = path;
	if (absolute)
		*out++ = '/';
	for (i = 0; i < n; i++) {
		if (i)
			*out++ = '/';
		memmove(out, comp[i], len[i]);
		out += len[i];
	}
	if (out == path)
		*out++ = '.';
	*out = '\0';
}
