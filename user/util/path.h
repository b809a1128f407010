/* Source paths as debug information spells them, made readable. */
#ifndef TRACER_PATH_H
#define TRACER_PATH_H

/* Normalises a source path in place, removing only what is redundant:
 * - every "." component ("./a", "a/./b", "a/.") and repeated '/';
 * - in a relative path (a build directory mapped away, as Debian builds
 *   glibc: "./libio/./libio/filedoalloc.c"), also "D/.." pairs
 *   ("./csu/../csu/libc-start.c" -> "csu/libc-start.c"), lexically, as
 *   no file system holds it to resolve a link against;
 * - in a relative path that began "./", a leading directory given twice
 *   ("libio/libio/x.c" -> "libio/x.c": the compilation directory and the
 *   source's own, joined).
 * An absolute path keeps its ".." (a symbolic link may stand before one).
 * The result is never empty: "." stays ".". */
void path_normalise_source(char *path);

#endif
