// C++ as it is built for production, -O2 without frame pointers: a
// std::vector grown by push_back, std::strings, a new. libstdc++'s
// allocator and growth code is inlined into these functions; the
// statistics by line must land on the lines here.
#include <cstdio>
#include <string>
#include <vector>

std::vector<long> *grown;
std::vector<std::string> *names;
int *block;

__attribute__((noinline)) void grow(int n)
{
	grown = new std::vector<long>(); // SITE:new_vector
	for (int i = 0; i < n; i++)
		grown->push_back(i); // SITE:push_back
}

__attribute__((noinline)) void make_names(int n)
{
	names = new std::vector<std::string>(); // SITE:new_names
	names->reserve(n);			 // SITE:reserve
	for (int i = 0; i < n; i++)
		names->emplace_back(100, 'x'); // SITE:string
}

__attribute__((noinline)) void make_block()
{
	block = new int[1000]; // SITE:new_array
}

int main()
{
	grow(100000);
	make_names(200);
	make_block();
	std::printf("%zu %zu %d\n", grown->size(), names->size(), block[0]);
	return 0;
}
