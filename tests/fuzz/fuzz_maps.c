/* libFuzzer target: /proc/PID/maps text is written by the kernel but holds
 * names the target chose (spaces, escapes, lengths up to PATH_MAX); the
 * parser must take any bytes without a crash, a leak or an out-of-bounds
 * access, and what it returns must be searchable. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct target_maps maps;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (!target_parse_maps(text, size, &maps)) {
		for (size_t i = 0; i < maps.n; i++) {
			const struct target_mapping *m = &maps.m[i];

			if (m->path && strlen(m->path) >= 65536)
				abort();
			target_maps_find(&maps, m->start);
			target_maps_find(&maps, m->end - 1);
		}
		target_maps_free(&maps);
	}
	free(text);
	return 0;
}
