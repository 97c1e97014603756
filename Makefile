# drover - a service master for Linux.
#
#   make                build droverd, drover and libdrover into build/
#   make run            build, then run droverd on examples/drover.conf
#   make check          install test dependencies (apt-get) and run every test:
#                       unit tests, integration tests, and the integration
#                       tests again against an ASan+UBSan build
#   make layers         check that no #include in src/daemon goes up a layer
#                       (src/daemon/LAYERS, tools/layercheck.py); part of check
#   make install PREFIX=/usr/local DESTDIR=
#   make fuzz           build the libFuzzer targets (clang) and run each for
#                       FUZZ_TIME seconds; see tests/fuzz/README.md
#
# Variables: BUILD (output directory), SAN=1 (sanitizer build), WERROR=0.

CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
PYTHON  ?= /usr/bin/python3
WERROR  ?= 1
VERSION := 0.1.0

WARN     = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-format-nonliteral
ifeq ($(WERROR),1)
WARN    += -Werror
endif
# -Os: droverd is a control plane that waits on system calls; smaller code
# is fewer resident pages (bench/run.py measures its RSS).
CFLAGS  ?= -Os -g
# droverd's layers, one directory each (src/daemon/LAYERS, doc/ARCHITECTURE.md).
DAEMON_DIRS := runtime mech policy top
DAEMON_INC  := $(addprefix -Isrc/daemon/,$(DAEMON_DIRS))
CPPFLAGS_ALL = -D_GNU_SOURCE -DDROVER_VERSION='"$(VERSION)"' -Isrc/lib -Isrc/libdrover
ifeq ($(SAN),1)
CFLAGS_ALL = -std=c11 $(WARN) $(CFLAGS) -fno-omit-frame-pointer \
             -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS_ALL = -fsanitize=address,undefined $(LDFLAGS)
else
# No .eh_frame: C without exceptions never unwinds at run time, and the
# tables are pages every process of ours would map (-g keeps .debug_frame
# for debuggers). The sanitizer build keeps them for its stack traces.
CFLAGS_ALL = -std=c11 $(WARN) $(CFLAGS) -fstack-protector-strong -fPIE -D_FORTIFY_SOURCE=2 \
             -fno-asynchronous-unwind-tables
LDFLAGS_ALL = -pie -Wl,-z,relro,-z,now $(LDFLAGS)
endif

LIB_SRC     := $(wildcard src/lib/*.c)
DAEMON_SRC  := $(foreach d,$(DAEMON_DIRS),$(wildcard src/daemon/$(d)/*.c))
CLIENT_SRC  := $(wildcard src/client/*.c)
LIBD_SRC    := $(wildcard src/libdrover/*.c)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ    := $(call obj,$(LIB_SRC))
DAEMON_OBJ := $(call obj,$(DAEMON_SRC))
CLIENT_OBJ := $(call obj,$(CLIENT_SRC))
LIBD_OBJ   := $(call obj,$(LIBD_SRC))
LIBD_PIC   := $(patsubst %.o,%.pic.o,$(LIBD_OBJ))
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

PROGRAMS := $(BUILD)/droverd $(BUILD)/drover $(BUILD)/libdrover.a $(BUILD)/libdrover.so \
            $(BUILD)/drover.pc $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

.PHONY: all run run-web check check-deps unit integration integration-asan install clean lint layers
all: $(PROGRAMS)

$(BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# spawn.c's child may call no library function (see the warning there):
# gcc must not turn its loops into calls to strlen or memcpy.
# droverd's sources find each other's headers across its layer directories.
$(DAEMON_OBJ): CPPFLAGS_ALL += $(DAEMON_INC)

$(BUILD)/obj/src/daemon/runtime/spawn.o: CFLAGS_ALL += -fno-tree-loop-distribute-patterns

$(BUILD)/obj/%.pic.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $< (pic)"
	@$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -fPIC -MMD -MP -c $< -o $@

$(BUILD)/libshared.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

# Everything of droverd but main(): unit tests link the pieces they test.
$(BUILD)/libdaemon.a: $(filter-out %/main.o,$(DAEMON_OBJ))
	rm -f $@ && ar rcs $@ $^

$(BUILD)/droverd: $(BUILD)/obj/src/daemon/top/main.o $(BUILD)/libdaemon.a $(BUILD)/libshared.a
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^

$(BUILD)/drover: $(CLIENT_OBJ) $(BUILD)/libshared.a
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^

$(BUILD)/libdrover.a: $(LIBD_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libdrover.so: $(LIBD_PIC)
	$(CC) $(CFLAGS_ALL) -shared -fPIC -Wl,-soname,libdrover.so.0 $(filter-out -pie,$(LDFLAGS_ALL)) -o $@ $^

$(BUILD)/drover.pc: src/libdrover/drover.pc.in
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(BUILD)/examples/%: examples/%.c $(BUILD)/libdrover.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libdrover.a

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libdaemon.a $(BUILD)/libshared.a $(BUILD)/libdrover.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_ALL) $(DAEMON_INC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ -lcmocka

# The service policy alone, on the fake mechanisms of tests/unit/fake_mech.c
# (never libdaemon.a: it would bring the real ones): test_policy_*.c.
POLICY_SRC := $(wildcard src/daemon/policy/*.c)
POLICY_OBJ := $(call obj,$(POLICY_SRC) src/daemon/runtime/schedule.c)

$(BUILD)/tests/test_policy_%: tests/unit/test_policy_%.c tests/unit/fake_mech.c tests/unit/fake_mech.h \
		$(POLICY_OBJ) $(BUILD)/libshared.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_ALL) $(DAEMON_INC) -Itests/unit $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $(filter-out %.h,$^) -lcmocka

# As root droverd reads only a configuration whose whole path is root's
# alone (drover.conf(5)), which a checkout in /tmp or in a home directory is
# not: root's `make run` runs a copy kept in /run/drover-example.
ROOT_RUN := $(filter 0,$(shell id -u))
RUN_CONF = $(if $(ROOT_RUN),/run/drover-example/$(notdir $(1)),$(1))
define run_conf
	@if [ -n "$(ROOT_RUN)" ]; then install -d -m 755 /run/drover-example && \
	  install -m 644 $(1) $(call RUN_CONF,$(1)) && \
	  echo "droverd: running as root on a copy of $(1): $(call RUN_CONF,$(1)) (edit that one)"; fi
endef

run: all
	@mkdir -p run
	$(call run_conf,examples/drover.conf)
	@echo "droverd: control socket $(CURDIR)/run/control.sock"
	@echo "         in another terminal: $(BUILD)/drover -S run/control.sock status"
	exec $(BUILD)/droverd -c $(call RUN_CONF,examples/drover.conf) -S $(CURDIR)/run/control.sock

# The example workers behind droverd: a prefork HTTP pool on 8080 and an
# inetd-style echo service on 8081 (examples/web.conf.in).
run-web: all
	@mkdir -p run
	sed 's|@TOP@|$(CURDIR)|g' examples/web.conf.in > run/web.conf
	$(call run_conf,run/web.conf)
	@echo "droverd: control socket $(CURDIR)/run/web.sock; try: curl http://127.0.0.1:8080/"
	exec $(BUILD)/droverd -c $(call RUN_CONF,run/web.conf) -S $(CURDIR)/run/web.sock

check-deps:
	@scripts/deps.sh test

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: all
	DROVER_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

integration-asan:
	$(MAKE) BUILD=build-asan SAN=1 all
	DROVER_BUILD=$(abspath build-asan) DROVER_SANITIZED=1 $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

check: check-deps
	$(MAKE) all
	$(MAKE) lint
	$(MAKE) layers
	$(MAKE) unit
	$(MAKE) fuzz-replay
	$(MAKE) integration
	$(MAKE) soak
	$(MAKE) integration-asan

# Static analysis; part of `make check`. .clang-tidy says which checks.
LINT_FLAGS = -D_GNU_SOURCE -DDROVER_VERSION='"lint"' -Isrc/lib -Isrc/libdrover $(DAEMON_INC)
lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
	  --inline-suppr $(LINT_FLAGS) src
	@set -e; for f in $(LIB_SRC) $(DAEMON_SRC) $(CLIENT_SRC) $(LIBD_SRC); do \
	  out=$$(clang-tidy -quiet $$f -- -std=c11 $(LINT_FLAGS) 2>/dev/null); \
	  if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; done; echo "lint: clean"

# droverd's layers (src/daemon/LAYERS): no #include goes up a layer, no
# include cycle of more than three modules; part of `make check`.
layers:
	$(PYTHON) tools/layercheck.py src/daemon
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/tools

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man3 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(BUILD)/droverd $(DESTDIR)$(PREFIX)/sbin/droverd
	install -m 755 $(BUILD)/drover $(DESTDIR)$(PREFIX)/bin/drover
	install -m 644 $(BUILD)/libdrover.a $(DESTDIR)$(PREFIX)/lib/libdrover.a
	install -m 755 $(BUILD)/libdrover.so $(DESTDIR)$(PREFIX)/lib/libdrover.so.0
	ln -sf libdrover.so.0 $(DESTDIR)$(PREFIX)/lib/libdrover.so
	install -m 644 src/libdrover/drover.h $(DESTDIR)$(PREFIX)/include/drover.h
	install -m 644 $(BUILD)/drover.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/drover.pc
	install -m 644 man/drover.1 $(DESTDIR)$(PREFIX)/share/man/man1/drover.1
	install -m 644 man/libdrover.3 $(DESTDIR)$(PREFIX)/share/man/man3/libdrover.3
	install -m 644 man/drover.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/drover.conf.5
	install -m 644 man/droverd.8 $(DESTDIR)$(PREFIX)/share/man/man8/droverd.8

clean:
	rm -rf build build-asan build-fuzz run

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# Fuzzing (tests/fuzz/README.md). The library and droverd's objects (not
# main) are built again with clang, ASan, UBSan and libFuzzer's coverage into
# $(FUZZ_BUILD); one target per input droverd or drover decodes.
#   make fuzz-build     the targets
#   make fuzz           run each for FUZZ_TIME seconds on its corpus and
#                       dictionary; new inputs go to $(FUZZ_BUILD)/corpus/NAME,
#                       crashes to $(FUZZ_BUILD)/artifacts/ (never the repo)
#   make fuzz-replay    run each target once over every file of its corpus in
#                       tests/fuzz/corpus/ (part of `make check`)
# FUZZ_TARGETS=conf picks targets; FUZZ_ARGS adds libFuzzer options.
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= $(BUILD)-fuzz
FUZZ_TIME    ?= 60
FUZZ_TARGETS ?= conf proto notify state probe
FUZZ_ARGS    ?=
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  = -std=c11 $(WARN) -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN)
fuzz_obj = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(1))
FUZZ_BIN := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))

$(FUZZ_BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fuzz)"
	@$(FUZZ_CC) $(CPPFLAGS_ALL) $(DAEMON_INC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libshared.a: $(call fuzz_obj,$(LIB_SRC))
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/libdaemon.a: $(call fuzz_obj,$(filter-out %/main.c,$(DAEMON_SRC)))
	rm -f $@ && ar rcs $@ $^

# fuzz_conf confines the parser's open() and glob() to its temporary directory.
$(FUZZ_BUILD)/fuzz_conf: FUZZ_LDFLAGS = -Wl,--wrap=open,--wrap=glob
$(FUZZ_BUILD)/fuzz_conf $(FUZZ_BUILD)/fuzz_proto: $(FUZZ_BUILD)/fuzz_%: \
		$(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/libshared.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_LDFLAGS) -o $@ $^

$(FUZZ_BUILD)/fuzz_notify $(FUZZ_BUILD)/fuzz_state $(FUZZ_BUILD)/fuzz_probe: $(FUZZ_BUILD)/fuzz_%: \
		$(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/libdaemon.a $(FUZZ_BUILD)/libshared.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^

.PHONY: fuzz fuzz-build fuzz-replay
fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts; \
	  dict=; [ ! -f tests/fuzz/$$t.dict ] || dict=-dict=tests/fuzz/$$t.dict; \
	  echo "== fuzz_$$t for $(FUZZ_TIME) s"; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=10 $$dict \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- $(FUZZ_ARGS) \
	    $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t; done

fuzz-replay: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  log=$(FUZZ_BUILD)/replay-$$t.log; \
	  if ! $(FUZZ_BUILD)/fuzz_$$t tests/fuzz/corpus/$$t/* >$$log 2>&1; then \
	    cat $$log; echo "fuzz-replay: fuzz_$$t failed on an input above"; exit 1; fi; \
	  echo "fuzz-replay: fuzz_$$t: $$(ls tests/fuzz/corpus/$$t | wc -l) inputs, no finding"; done

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)

# Benchmark against runit and s6 (installed by scripts/deps.sh bench); prints
# figures and ratios, asserts nothing. BENCH_ARGS=--quick for a short run.
.PHONY: bench
bench: all
	@scripts/deps.sh bench
	$(PYTHON) bench/run.py --build $(BUILD) $(BENCH_ARGS)

# Serving benchmark: accept mode against xinetd (ab), prefork against
# hello-worker alone (wrk), prefork pool growth and shrink. Peers from
# scripts/deps.sh bench; prints figures and ratios, asserts nothing.
# BENCH_ARGS=--quick for a short run.
.PHONY: bench-serve
bench-serve: all
	@scripts/deps.sh bench
	$(PYTHON) bench/serve.py --build $(BUILD) $(BENCH_ARGS)

# Health-probe benchmark: droverd's CPU and RSS with 1000 services probed every
# second (none, tcp, http, exec:/bin/true; probe server on 127.0.0.1); prints
# figures, asserts nothing. BENCH_ARGS='--services 200 --only none,exec' etc.
.PHONY: bench-health
bench-health: all
	$(PYTHON) bench/health.py --build $(BUILD) $(BENCH_ARGS)

# Zero-downtime soak test, short mode (about 65 s of load): configuration
# reloads, rolling restarts, in-place and handover upgrades of droverd
# (alternating between two builds) under keep-alive and open-loop load; fails
# on any refused, reset or truncated connection. See tests/soak/README.md.
# Build A is $(BUILD); build B, $(BUILD)-soak-b, differs only by its flags.
# SOAK_ARGS=--long for the benchmark run (about 11 minutes).
.PHONY: soak
soak: all
	@scripts/deps.sh test
	$(MAKE) BUILD=$(BUILD)-soak-b CFLAGS='$(CFLAGS) -frecord-gcc-switches -DSOAK_BUILD_B' all
	$(PYTHON) tests/soak/soak.py --build $(BUILD) --build-b $(BUILD)-soak-b $(SOAK_ARGS)
