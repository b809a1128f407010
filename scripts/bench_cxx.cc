// A C++ translation unit for `make bench`'s clang++ row: the standard
// library's heavier templates instantiated, so that the compiler allocates
// a few million times (clang++ -O2 -c, about 2 s untraced).
#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

template <int N> struct Node {
	std::map<std::string, std::vector<Node<N - 1>>> children;
	std::variant<int, double, std::string> value;
	std::string describe() const
	{
		std::ostringstream os;
		os << N << ":" << children.size();
		for (const auto &kv : children)
			for (const auto &c : kv.second)
				os << kv.first << c.describe();
		return os.str();
	}
};

template <> struct Node<0> {
	std::string describe() const { return "."; }
};

int main(int argc, char **argv)
{
	std::regex words("([a-z]+)\\s*=\\s*([0-9]+)");
	std::unordered_map<std::string, std::set<int>> index;
	std::vector<std::function<int(int)>> fs;
	for (int i = 0; i < argc; i++) {
		std::string s = argv[i];
		std::smatch m;
		if (std::regex_search(s, m, words))
			index[m[1]].insert(std::stoi(m[2]));
		fs.push_back([i](int x) { return x * i; });
	}
	Node<6> root;
	std::sort(fs.begin(), fs.end(), [](auto &a, auto &b) { return a(1) < b(1); });
	std::cout << root.describe() << index.size() << fs.size() << std::endl;
	auto p = std::make_shared<Node<5>>();
	std::cout << p->describe() << std::endl;
	return 0;
}
