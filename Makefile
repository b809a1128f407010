# tracer: BPF object -> skeleton header -> user binary build/tracer.
# Every user/*.c is part of the binary; every tests/unit/test_*.c is one
# cmocka test program linked against the user objects (minus main.o).

CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= gcc
ARCH     := x86

BUILD    := build
CFLAGS   ?= -O2 -g
CFLAGS   += -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
            -std=gnu11 -D_GNU_SOURCE -I$(BUILD) -Ibpf -Iuser
LDLIBS   := -lbpf -ldw -lelf -lcapstone -lz -lpthread -lstdc++

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(BUILD)/user/%.o,$(USER_SRCS))
LIB_OBJS  := $(filter-out $(BUILD)/user/main.o,$(USER_OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
# py_embed.c links a libpython that only the tests' chroot has: they build it
WL_C      := $(filter-out tests/workloads/py_embed.c,$(wildcard tests/workloads/*.c))
WL_CXX    := $(wildcard tests/workloads/*.cc)
WL_BINS   := $(patsubst tests/workloads/%.c,$(BUILD)/workloads/%,$(WL_C)) \
             $(patsubst tests/workloads/%.cc,$(BUILD)/workloads/%,$(WL_CXX)) \
             $(BUILD)/workloads/native-static

.PHONY: all test unit integration fuzz demo bench snapshot-perf clean deps
.SECONDARY:
all: $(BUILD)/tracer $(WL_BINS)

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) | $(BUILD)
	$(CLANG) -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) \
		-Ivmlinux -Ibpf -Wall -Werror -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(BUILD)/user/%.o: user/%.c $(wildcard user/*.h) $(wildcard bpf/*.h) $(SKELS) | $(BUILD)/user
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tracer: $(USER_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(LIB_OBJS) -o $@ $(LDLIBS) -lcmocka

# Workloads keep frame pointers and debug info so that their call sites
# and deeper frames are exact.
WL_FLAGS := -O1 -g -fno-omit-frame-pointer -fno-inline -fno-optimize-sibling-calls -pthread
$(BUILD)/workloads/%: tests/workloads/%.c | $(BUILD)/workloads
	$(CC) $(WL_FLAGS) $< -o $@
# the allocator lives in the executable itself
$(BUILD)/workloads/native-static: tests/workloads/native.c | $(BUILD)/workloads
	$(CC) $(WL_FLAGS) -static $< -o $@
$(BUILD)/workloads/%: tests/workloads/%.cc | $(BUILD)/workloads
	g++ $(WL_FLAGS) $< -o $@

$(BUILD) $(BUILD)/user $(BUILD)/tests $(BUILD)/workloads $(BUILD)/fuzz:
	mkdir -p $@

# The snapshot loader under libFuzzer with ASan and UBSan; `make fuzz` runs it
# for FUZZ_SECONDS from a corpus of valid files.
FUZZ_SECONDS ?= 30
FUZZ_SRCS    := user/snapfile.c user/snapshot.c user/stats.c
FUZZ_FLAGS   := -g -O1 -std=gnu11 -D_GNU_SOURCE -Iuser -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
$(BUILD)/fuzz/fuzz_snapfile: tests/fuzz/fuzz_snapfile.c $(FUZZ_SRCS) $(wildcard user/*.h) | $(BUILD)/fuzz
	$(CLANG) $(FUZZ_FLAGS) $< $(FUZZ_SRCS) -o $@ -lz
$(BUILD)/fuzz/seed_snapfile: tests/fuzz/seed_snapfile.c $(FUZZ_SRCS) | $(BUILD)/fuzz
	$(CC) $(CFLAGS) $< user/snapfile.c user/snapshot.c -o $@ -lz

fuzz: $(BUILD)/fuzz/fuzz_snapfile $(BUILD)/fuzz/seed_snapfile
	rm -rf $(BUILD)/fuzz/corpus && mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/seed_snapfile $(BUILD)/fuzz/corpus
	@$(BUILD)/fuzz/fuzz_snapfile -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-artifact_prefix=$(BUILD)/fuzz/ -print_final_stats=1 $(BUILD)/fuzz/corpus \
		> $(BUILD)/fuzz/log 2>&1 || { tail -n 40 $(BUILD)/fuzz/log; exit 1; }
	@grep -E '^stat::number_of_executed_units|^Done' $(BUILD)/fuzz/log

deps:
	bash scripts/install-deps.sh

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: all
	/usr/bin/python3 -m pytest -q tests/integration

test: deps
	$(MAKE) all $(UNIT_BINS)
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) integration

demo: deps
	$(MAKE) all
	$(BUILD)/tracer -n 3 -t 5 -- $(BUILD)/workloads/demo

snapshot-perf: $(LIB_OBJS)
	$(CC) $(CFLAGS) scripts/snapshot_perf.c $(LIB_OBJS) -o $(BUILD)/snapshot_perf $(LDLIBS)
	$(BUILD)/snapshot_perf

bench: deps
	$(MAKE) all
	bash scripts/bench.sh

clean:
	rm -rf $(BUILD)
