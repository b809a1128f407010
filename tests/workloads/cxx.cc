// C++ allocations: operator new and new[] reach malloc through libstdc++;
// the traceback must start at these lines, not inside libstdc++.
#include <cstdio>
#include <string>
#include <vector>

struct Node {
	long payload[12]; // 96 bytes
};

Node *nodes[300];
int *arrays[50];

__attribute__((noinline)) static void make_nodes()
{
	for (int i = 0; i < 300; i++)
		nodes[i] = new Node(); // SITE:new
}

__attribute__((noinline)) static void make_arrays()
{
	for (int i = 0; i < 50; i++)
		arrays[i] = new int[1000]; // SITE:new_array
}

__attribute__((noinline)) static void make_and_delete()
{
	for (int i = 0; i < 100; i++)
		delete new Node(); // SITE:deleted
}

int main()
{
	make_nodes();
	make_arrays();
	make_and_delete();
	return 0;
}
