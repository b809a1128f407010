/* A program that embeds CPython through its shared library and runs like
 * the python command (tests build it against the forky chroot's
 * libpython3.14.so to trace a shared-library 3.14). */
int Py_BytesMain(int argc, char **argv);

int main(int argc, char **argv)
{
	return Py_BytesMain(argc, argv);
}
