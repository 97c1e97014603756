# drover - a service master for Linux.
#
#   make                build droverd, drover and libdrover into build/
#   make run            build, then run droverd on examples/drover.conf
#   make check          install test dependencies (apt-get) and run every test:
#                       unit tests, integration tests, and the integration
#                       tests again against an ASan+UBSan build
#   make install PREFIX=/usr/local DESTDIR=
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
DAEMON_SRC  := $(wildcard src/daemon/*.c)
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

.PHONY: all run run-web check check-deps unit integration integration-asan install clean lint
all: $(PROGRAMS)

$(BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.pic.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $< (pic)"
	@$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -fPIC -MMD -MP -c $< -o $@

$(BUILD)/libshared.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

# Everything of droverd but main(): unit tests link the pieces they test.
$(BUILD)/libdaemon.a: $(filter-out %/main.o,$(DAEMON_OBJ))
	rm -f $@ && ar rcs $@ $^

$(BUILD)/droverd: $(BUILD)/obj/src/daemon/main.o $(BUILD)/libdaemon.a $(BUILD)/libshared.a
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
	@$(CC) $(CPPFLAGS_ALL) -Isrc/daemon $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ -lcmocka

run: all
	@mkdir -p run
	@echo "droverd: control socket $(CURDIR)/run/control.sock"
	@echo "         in another terminal: $(BUILD)/drover -S run/control.sock status"
	exec $(BUILD)/droverd -c examples/drover.conf -S $(CURDIR)/run/control.sock

# The example workers behind droverd: a prefork HTTP pool on 8080 and an
# inetd-style echo service on 8081 (examples/web.conf.in).
run-web: all
	@mkdir -p run
	sed 's|@TOP@|$(CURDIR)|g' examples/web.conf.in > run/web.conf
	@echo "droverd: control socket $(CURDIR)/run/web.sock; try: curl http://127.0.0.1:8080/"
	exec $(BUILD)/droverd -c run/web.conf -S $(CURDIR)/run/web.sock

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
	$(MAKE) unit
	$(MAKE) integration
	$(MAKE) soak
	$(MAKE) integration-asan

# Static analysis; part of `make check`. .clang-tidy says which checks.
LINT_FLAGS = -D_GNU_SOURCE -DDROVER_VERSION='"lint"' -Isrc/lib -Isrc/libdrover -Isrc/daemon
lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
	  --inline-suppr $(LINT_FLAGS) src
	@set -e; for f in $(LIB_SRC) $(DAEMON_SRC) $(CLIENT_SRC) $(LIBD_SRC); do \
	  out=$$(clang-tidy -quiet $$f -- -std=c11 $(LINT_FLAGS) 2>/dev/null); \
	  if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; done; echo "lint: clean"

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
	rm -rf build build-asan run

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

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
