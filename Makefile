# tracer: BPF object -> skeleton header -> user binary build/tracer.
#
# user/*.c, user/python/*.c and user/unwind/*.c are the tracing side: they see the BPF
# contract and the skeleton. user/model, user/report and user/util know
# nothing of BPF: they build without -Ibpf and -I$(BUILD), so an include of
# the BPF side from there is a compile error. Every tests/unit/test_*.c is one
# cmocka program; those in MODEL_TESTS link the model, report and util
# objects only, test_resolve resolve.o beside them, the others everything
# but main.o.

CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= gcc
ARCH     := x86

BUILD    := build
CFLAGS   ?= -O2 -g
CFLAGS   += -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
            -std=gnu11 -D_GNU_SOURCE -Iuser
TRACE_CFLAGS := -I$(BUILD) -Ibpf
LDLIBS   := -lbpf -ldw -ldebuginfod -lelf -lcapstone -liberty -lmicrohttpd -lncursesw -lz -lpthread \
            -lstdc++
# the version: VERSION, and git describe when the tree is a git checkout
VERSION  := 0.1.0
GIT_DESCRIBE := $(shell git describe --always --dirty 2>/dev/null)

BPF_SRCS    := $(wildcard bpf/*.bpf.c)
SKELS       := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
TRACE_SRCS  := $(wildcard user/*.c user/python/*.c user/unwind/*.c user/serve/*.c user/live/*.c)
PURE_SRCS   := $(wildcard user/model/*.c user/report/*.c user/util/*.c)
TRACE_OBJS  := $(patsubst user/%.c,$(BUILD)/user/%.o,$(TRACE_SRCS))
PURE_SRC_OBJS := $(patsubst user/%.c,$(BUILD)/user/%.o,$(PURE_SRCS))
# the HTML report's page, style and script, embedded (xxd -i) as C arrays
HTML_ASSETS := user/report/html/page.html user/report/html/style.css user/report/html/flame.js
HTML_ASSETS_C := $(BUILD)/user/report/html_assets.c
PURE_OBJS   := $(PURE_SRC_OBJS) $(BUILD)/user/report/html_assets.o
LIB_OBJS    := $(filter-out $(BUILD)/user/main.o,$(TRACE_OBJS)) $(PURE_OBJS)
USER_HDRS   := $(wildcard user/*.h user/*/*.h)
PURE_HDRS   := $(wildcard user/model/*.h user/report/*.h user/util/*.h)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
MODEL_TESTS := test_stats test_filter test_report test_export test_snapfile test_hash \
               test_outfile test_metrics test_path test_progress test_html test_processes
MODEL_BINS  := $(patsubst %,$(BUILD)/tests/%,$(MODEL_TESTS))
# resolve.c with the test's own symbolizer in place of symbolize.o
RESOLVE_BIN := $(BUILD)/tests/test_resolve
TRACE_BINS  := $(filter-out $(MODEL_BINS) $(RESOLVE_BIN),$(UNIT_BINS))
# py_embed.c links a libpython that only the tests' chroot has, py_table_midway.c
# pyenv's: the tests build them
# native.c linked against musl's C library (and dynamic linker), where
# musl-gcc is installed
MUSL_BINS := $(if $(shell command -v musl-gcc),$(BUILD)/workloads/native-musl)
# linked against jemalloc, where its headers are installed: its own API, and
# C++'s new and (sized) delete served by it
JEMALLOC_BINS := $(if $(wildcard /usr/include/jemalloc/jemalloc.h),\
                 $(BUILD)/workloads/jemalloc_api $(BUILD)/workloads/cxx-jemalloc)
# linked against mimalloc, where its headers are installed: its own API
MIMALLOC_BINS := $(if $(wildcard /usr/include/mimalloc.h),$(BUILD)/workloads/mimalloc_api)
# Rust workloads, where rustc is installed
RUSTC     ?= rustc
RUST_BINS := $(if $(shell command -v $(RUSTC)),$(patsubst tests/workloads/%.rs,$(BUILD)/workloads/%,\
             $(wildcard tests/workloads/*.rs)))
# nofp.c is built as distributions build: -O2 without frame pointers
WL_C      := $(filter-out tests/workloads/py_embed.c tests/workloads/py_table_midway.c \
             tests/workloads/nofp.c \
             tests/workloads/jemalloc_api.c tests/workloads/mimalloc_api.c,\
             $(wildcard tests/workloads/*.c))
WL_CXX    := $(filter-out tests/workloads/cxx_o2.cc,$(wildcard tests/workloads/*.cc))
WL_BINS   := $(patsubst tests/workloads/%.c,$(BUILD)/workloads/%,$(WL_C)) \
             $(patsubst tests/workloads/%.cc,$(BUILD)/workloads/%,$(WL_CXX)) \
             $(BUILD)/workloads/native-static $(BUILD)/workloads/inline-O2 \
             $(BUILD)/workloads/nofp $(BUILD)/workloads/nofp-nodebug \
             $(BUILD)/workloads/bench_mix-nofp $(BUILD)/workloads/cxx_o2 \
             $(RUST_BINS) $(MUSL_BINS) $(JEMALLOC_BINS) $(MIMALLOC_BINS)

.PHONY: all test unit integration fuzz fuzz-quick fuzz-run fuzz-corpus demo bench snapshot-perf \
	clean deps install deb deb-chroot soak
.SECONDARY:
all: $(BUILD)/tracer $(WL_BINS)

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) | $(BUILD)
	$(CLANG) -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) \
		-Ivmlinux -Ibpf -Wall -Werror -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(PURE_SRC_OBJS): $(BUILD)/user/%.o: user/%.c $(PURE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(HTML_ASSETS_C): $(HTML_ASSETS)
	@mkdir -p $(@D)
	{ for f in $^; do xxd -i -n html_$$(basename $$f | tr . _) $$f; done; } > $@.tmp
	mv $@.tmp $@

$(BUILD)/user/report/html_assets.o: $(HTML_ASSETS_C)
	$(CC) $(CFLAGS) -c $< -o $@

$(filter-out $(PURE_OBJS),$(TRACE_OBJS)): $(BUILD)/user/%.o: user/%.c $(USER_HDRS) \
		$(wildcard bpf/*.h) $(SKELS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(TRACE_CFLAGS) -c $< -o $@

$(BUILD)/user/main.o: CFLAGS += -DTRACER_VERSION='"$(VERSION)"' \
	$(if $(GIT_DESCRIBE),-DTRACER_GIT='"$(GIT_DESCRIBE)"')
$(BUILD)/user/main.o: Makefile

$(BUILD)/tracer: $(TRACE_OBJS) $(PURE_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(MODEL_BINS): $(BUILD)/tests/%: tests/unit/%.c $(PURE_OBJS) $(PURE_HDRS) | $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(PURE_OBJS) -o $@ -lz -lcmocka -lutil

$(RESOLVE_BIN): tests/unit/test_resolve.c $(BUILD)/user/resolve.o $(PURE_OBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(TRACE_CFLAGS) $< $(BUILD)/user/resolve.o $(PURE_OBJS) -o $@ -lz -lcmocka

$(TRACE_BINS): $(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(TRACE_CFLAGS) $< $(LIB_OBJS) -o $@ $(LDLIBS) -lcmocka

# Workloads keep frame pointers and debug info so that their call sites
# and deeper frames are exact.
WL_FLAGS := -O1 -g -fno-omit-frame-pointer -fno-inline -fno-optimize-sibling-calls -pthread
$(BUILD)/workloads/%: tests/workloads/%.c | $(BUILD)/workloads
	$(CC) $(WL_FLAGS) $< -o $@ -ldl
# the allocator lives in the executable itself
$(BUILD)/workloads/native-static: tests/workloads/native.c | $(BUILD)/workloads
	$(CC) $(WL_FLAGS) -static $< -o $@
$(BUILD)/workloads/jemalloc_api: tests/workloads/jemalloc_api.c | $(BUILD)/workloads
	$(CC) $(WL_FLAGS) $< -o $@ -ljemalloc
$(BUILD)/workloads/mimalloc_api: tests/workloads/mimalloc_api.c | $(BUILD)/workloads
	$(CC) $(WL_FLAGS) $< -o $@ -lmimalloc
$(BUILD)/workloads/cxx-jemalloc: tests/workloads/cxx.cc | $(BUILD)/workloads
	g++ $(WL_FLAGS) $< -o $@ -ljemalloc
$(BUILD)/workloads/native-musl: tests/workloads/native.c | $(BUILD)/workloads
	musl-gcc $(WL_FLAGS) $< -o $@
# no frame pointers, with and without debug information
$(BUILD)/workloads/nofp: tests/workloads/nofp.c | $(BUILD)/workloads
	$(CC) -O2 -g -fomit-frame-pointer $< -o $@
$(BUILD)/workloads/nofp-nodebug: tests/workloads/nofp.c | $(BUILD)/workloads
	$(CC) -O2 -fomit-frame-pointer $< -o $@
$(BUILD)/workloads/bench_mix-nofp: tests/workloads/bench_mix.c | $(BUILD)/workloads
	$(CC) -O2 -g -fomit-frame-pointer $< -o $@
$(BUILD)/workloads/cxx_o2: tests/workloads/cxx_o2.cc | $(BUILD)/workloads
	g++ -O2 -g $< -o $@
$(BUILD)/workloads/%: tests/workloads/%.cc | $(BUILD)/workloads
	g++ $(WL_FLAGS) $< -o $@
# optimised as released code is (inlining on), frame pointers kept
$(BUILD)/workloads/%-O2: tests/workloads/%.c | $(BUILD)/workloads
	$(CC) -O2 -g -fno-omit-frame-pointer $< -o $@
# Rust, as cargo's release profile builds it (no frame pointers: CFI)
$(BUILD)/workloads/%: tests/workloads/%.rs | $(BUILD)/workloads
	$(RUSTC) -O -g $< -o $@

$(BUILD) $(BUILD)/tests $(BUILD)/workloads $(BUILD)/fuzz:
	mkdir -p $@

# Parsers of what targets control, under libFuzzer with ASan and UBSan:
# the snapshot loader (seeded with valid files), the /proc/PID/maps
# parser (seeded with real maps), the unwind table builder (seeded with
# small executables and their .eh_frame), the ELF symbol reader, and
# CPython's code objects and line tables (seeded from real interpreters), and
# pymalloc's pools (seeded with a pool in use). `make fuzz` runs each for FUZZ_SECONDS;
# `make test` runs them briefly (FUZZ_QUICK_SECONDS).
FUZZ_SECONDS       ?= 300
FUZZ_QUICK_SECONDS ?= 15
FUZZ_TARGETS := snapfile maps unwind symbols pycode pools
FUZZ_BINS    := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_TARGETS))
FUZZ_SRCS    := $(wildcard user/model/*.c user/report/*.c user/util/*.c) $(HTML_ASSETS_C)
FUZZ_FLAGS   := -g -O1 -std=gnu11 -D_GNU_SOURCE -Iuser -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
$(BUILD)/fuzz/fuzz_snapfile: tests/fuzz/fuzz_snapfile.c $(FUZZ_SRCS) $(PURE_HDRS) | $(BUILD)/fuzz
	$(CLANG) $(FUZZ_FLAGS) $< $(FUZZ_SRCS) -o $@ -lz
$(BUILD)/fuzz/fuzz_maps: tests/fuzz/fuzz_maps.c user/target.c user/target.h | $(BUILD)/fuzz
	$(CLANG) $(FUZZ_FLAGS) $< user/target.c -o $@
UNWIND_SRCS  := user/unwind/cfi.c user/unwind/table.c user/util/util.c
$(BUILD)/fuzz/fuzz_unwind: tests/fuzz/fuzz_unwind.c $(UNWIND_SRCS) $(wildcard user/unwind/*.h) \
		| $(BUILD)/fuzz
	$(CLANG) $(FUZZ_FLAGS) -Ibpf $< $(UNWIND_SRCS) -o $@ -lelf
$(BUILD)/fuzz/fuzz_symbols: tests/fuzz/fuzz_symbols.c user/modsym.c user/util/hash.c user/util/path.c \
		user/modsym.h user/symbolize.h | $(BUILD)/fuzz
	$(CLANG) $(FUZZ_FLAGS) $< user/modsym.c user/util/hash.c user/util/path.c -o $@ -ldw -lelf \
		-liberty -lstdc++
PYCODE_SRCS  := user/python/code.c user/python/layout.c user/util/hash.c
$(BUILD)/fuzz/fuzz_pycode: tests/fuzz/fuzz_pycode.c $(PYCODE_SRCS) user/python/code.h \
		user/python/layout.h | $(BUILD)/fuzz
	$(CLANG) $(FUZZ_FLAGS) -Ibpf $< $(PYCODE_SRCS) -o $@
$(BUILD)/fuzz/fuzz_pools: tests/fuzz/fuzz_pools.c user/python/pools.c user/python/pools.h \
		| $(BUILD)/fuzz
	$(CLANG) $(FUZZ_FLAGS) $< user/python/pools.c -o $@
$(BUILD)/fuzz/seed_snapfile: tests/fuzz/seed_snapfile.c $(FUZZ_SRCS) | $(BUILD)/fuzz
	$(CC) $(CFLAGS) $< $(FUZZ_SRCS) -o $@ -lz

# one corpus per target, made afresh: valid snapshot files; -O2 -g builds of
# small workloads (symbols, with inlined calls); the maps of
# this shell, of init-like and of CPython processes; small executables
# (with and without frame pointers, PLT CFI, .eh_frame) and, behind the
# fuzz target's one-byte mode prefix, their .eh_frame sections alone; the
# line tables and code objects of every CPython here (seed_pycode.sh)
fuzz-corpus: $(BUILD)/fuzz/seed_snapfile
	rm -rf $(BUILD)/fuzz/corpus-* && mkdir -p $(BUILD)/fuzz/corpus-snapfile $(BUILD)/fuzz/corpus-maps \
		$(BUILD)/fuzz/corpus-unwind $(BUILD)/fuzz/corpus-symbols $(BUILD)/fuzz/corpus-pycode \
		$(BUILD)/fuzz/corpus-pools
	for f in inline native demo; do $(CC) -O2 -g -fno-omit-frame-pointer tests/workloads/$$f.c \
		-pthread -o $(BUILD)/fuzz/corpus-symbols/$$f; done
	bash tests/fuzz/seed_unwind.sh $(CC) $(BUILD)/fuzz/corpus-unwind
	$(BUILD)/fuzz/seed_snapfile $(BUILD)/fuzz/corpus-snapfile
	cat /proc/self/maps > $(BUILD)/fuzz/corpus-maps/self
	for p in $$(pgrep -d ' ' -f 'python|systemd|sshd' | cut -d' ' -f1-8); do \
		cat /proc/$$p/maps > $(BUILD)/fuzz/corpus-maps/$$p 2>/dev/null || true; done
	bash tests/fuzz/seed_pycode.sh $(BUILD)/fuzz/corpus-pycode
	python3 tests/fuzz/seed_pools.py $(BUILD)/fuzz/corpus-pools

fuzz-run: $(FUZZ_BINS) fuzz-corpus
	@set -e; for t in $(FUZZ_TARGETS); do \
		$(BUILD)/fuzz/fuzz_$$t -max_total_time=$(SECONDS_EACH) -max_len=65536 \
			-artifact_prefix=$(BUILD)/fuzz/$$t- -print_final_stats=1 \
			$(BUILD)/fuzz/corpus-$$t > $(BUILD)/fuzz/$$t.log 2>&1 || \
			{ tail -n 40 $(BUILD)/fuzz/$$t.log; exit 1; }; \
		printf 'fuzz %s: ' $$t; grep -E '^stat::number_of_executed_units' $(BUILD)/fuzz/$$t.log; \
	done

fuzz:
	$(MAKE) fuzz-run SECONDS_EACH=$(FUZZ_SECONDS)

fuzz-quick:
	$(MAKE) fuzz-run SECONDS_EACH=$(FUZZ_QUICK_SECONDS)

deps:
	bash scripts/install-deps.sh

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: all
	/usr/bin/python3 -m pytest -q tests/integration

test: deps
	$(MAKE) all $(UNIT_BINS)
	$(MAKE) unit
	$(MAKE) fuzz-quick
	$(MAKE) integration

demo: deps
	$(MAKE) all
	$(BUILD)/tracer -n 3 -t 5 -- $(BUILD)/workloads/demo

snapshot-perf: $(PURE_OBJS)
	$(CC) $(CFLAGS) scripts/snapshot_perf.c $(PURE_OBJS) -o $(BUILD)/snapshot_perf -lz
	$(BUILD)/snapshot_perf

bench: deps
	$(MAKE) all
	bash scripts/bench.sh

# tracer serve -a for SOAK_SECONDS (600) under process churn: memory bounded,
# scrapes valid, a long-lived process exact (scripts/soak.py). Not a test.
soak: deps
	$(MAKE) all
	flock /tmp/tracer-integration.lock /usr/bin/python3 scripts/soak.py --seconds $(or $(SOAK_SECONDS),600)

# Installing: the binary, its man page, the systemd unit (tracer serve with
# $$TRACER_ARGS from $(SYSCONFDIR)/default/tracer, installed only where none
# is, so that an upgrade keeps the one edited) and bash completion.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
DESTDIR    ?=

install: $(BUILD)/tracer
	install -D -m 0755 $(BUILD)/tracer $(DESTDIR)$(BINDIR)/tracer
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR)
	sed 's/@VERSION@/$(VERSION)/' docs/tracer.1 > $(DESTDIR)$(MANDIR)/man1/tracer.1
	sed -e 's|@BINDIR@|$(BINDIR)|' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|' \
		packaging/tracer.service.in > $(DESTDIR)$(UNITDIR)/tracer.service
	chmod 0644 $(DESTDIR)$(MANDIR)/man1/tracer.1 $(DESTDIR)$(UNITDIR)/tracer.service
	install -D -m 0644 packaging/tracer.bash-completion $(DESTDIR)$(COMPLETIONDIR)/tracer
	test -e $(DESTDIR)$(SYSCONFDIR)/default/tracer || \
		install -D -m 0644 packaging/default-tracer $(DESTDIR)$(SYSCONFDIR)/default/tracer

# A Debian package of what `make install PREFIX=/usr` installs, built with
# dpkg-deb; Depends from dpkg-shlibdeps (the packages that hold the
# libraries the binary needs), the defaults file a conffile.
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB      := $(BUILD)/tracer_$(VERSION)_$(DEB_ARCH).deb
DEB_ROOT := $(BUILD)/deb/root
deb: $(DEB)
$(DEB): $(BUILD)/tracer docs/tracer.1 packaging/tracer.service.in packaging/default-tracer \
		packaging/tracer.bash-completion Makefile
	rm -rf $(BUILD)/deb && mkdir -p $(DEB_ROOT)/DEBIAN $(BUILD)/deb/debian
	$(MAKE) --no-print-directory install PREFIX=/usr DESTDIR=$(abspath $(DEB_ROOT)) \
		BUILD=$(BUILD)
	strip --strip-debug --preserve-dates -o $(DEB_ROOT)/usr/bin/tracer $(BUILD)/tracer
	gzip -9n $(DEB_ROOT)/usr/share/man/man1/tracer.1
	printf 'Source: tracer\n\nPackage: tracer\nArchitecture: any\n' > $(BUILD)/deb/debian/control
	cd $(BUILD)/deb && dpkg-shlibdeps -O -eroot/usr/bin/tracer 2>/dev/null | \
		sed -n 's/^shlibs:Depends=//p' > depends
	test -s $(BUILD)/deb/depends
	echo /etc/default/tracer > $(DEB_ROOT)/DEBIAN/conffiles
	{ echo 'Package: tracer'; echo 'Version: $(VERSION)'; echo 'Architecture: $(DEB_ARCH)'; \
	  echo 'Maintainer: tracer developers <tracer@localhost>'; \
	  echo "Depends: $$(cat $(BUILD)/deb/depends)"; \
	  echo 'Section: devel'; echo 'Priority: optional'; \
	  echo "Installed-Size: $$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)"; \
	  echo 'Description: tracemalloc for any process, from outside (eBPF)'; \
	  echo ' Traces the live allocations of a running process or a launched command'; \
	  echo ' with uprobes and BPF, reports them as Python'"'"'s tracemalloc does, and'; \
	  echo ' serves heap profiles (pprof) and Prometheus metrics with tracer serve.'; \
	} > $(DEB_ROOT)/DEBIAN/control
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $@

# The .deb in a fresh Debian 12 made with debootstrap (slow the first time:
# the chroot is downloaded; later runs copy it, ~20 s).
deb-chroot: $(DEB)
	bash scripts/deb_chroot_test.sh $(DEB)

clean:
	rm -rf $(BUILD)
