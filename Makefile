# wsgate. The README's two commands need no make; this builds the rest.
#
#   make              the daemon (build/wsgate), its man pages (build/man) and
#                     mod_wsgate (build/apache: mod_wsgate.so, libwsgate.so,
#                     plugins/)
#   make install      install them under DESTDIR/PREFIX (see the variables)
#   make apachews     libapachews (apache-ws's producer library API), its header
#                     and apachews.pc in build/apachews; install-apachews
#                     installs them under DESTDIR/PREFIX
#   make packages     Debian packages and the Python SDK's wheel in dist/
#   make test         every test, as the README's test command
#   make bench        the benchmark matrix against the peer libraries, five
#                     rounds (about 80 minutes on 2 cores): docs/BENCHMARKS.md,
#                     docs/benchmarks.png
#   make bench-quick  the harness's smoke test (under a minute)
#   make clean
VERSION    ?= $(shell cat VERSION)
PREFIX     ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= /lib/systemd/system
DESTDIR    ?=
GO         ?= go
OUT        ?= build
# The commit and the build date, for builds without a VCS stamp (packages
# build with -buildvcs=false); SOURCE_DATE_EPOCH keeps packages
# reproducible.
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null)
DIRTY      ?= $(shell test -n "$$(git status --porcelain 2>/dev/null)" && echo true)
BUILD_DATE ?= $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} +%Y-%m-%dT%H:%M:%SZ)
V          := github.com/wsgate/wsgate/internal/version
GO_LDFLAGS := -X $(V).Release=$(VERSION) -X $(V).Commit=$(COMMIT) -X $(V).Dirty=$(DIRTY) -X $(V).BuildDate=$(BUILD_DATE)
# Flags for the external linker (the packages pass Debian's hardening
# flags: relro, bindnow).
EXTLDFLAGS ?=
ifneq ($(strip $(EXTLDFLAGS)),)
GO_LDFLAGS += -linkmode=external -extldflags '$(EXTLDFLAGS)'
endif
# frontdoor/apache's Makefile builds libwsgate.so with the same flags.
export GO_LDFLAGS

.PHONY: all wsgate man apache apachews install install-apachews install-systemd packages test bench bench-quick install-apache clean

all: wsgate man apache

wsgate:
	@mkdir -p $(OUT)
	$(GO) build -buildmode=pie -trimpath -ldflags "$(GO_LDFLAGS)" -o $(OUT)/wsgate ./cmd/wsgate

# The man pages are the README's sections, converted (scripts/man.sh).
man:
	./scripts/man.sh $(OUT)/man $(VERSION)

apache:
	$(MAKE) -C frontdoor/apache OUT=$(abspath $(OUT))/apache PREFIX=$(PREFIX)

# apache-ws's producer library: the Go SDK behind apache-ws's C names, a
# shared library (sdk/apachews).
apachews:
	@mkdir -p $(OUT)/apachews/include $(OUT)/apachews/pkgconfig
	$(GO) build -buildmode=c-shared -trimpath -ldflags "$(GO_LDFLAGS)" -o $(OUT)/apachews/libapachews.so ./sdk/apachews
	rm -f $(OUT)/apachews/libapachews.h
	cp sdk/apachews/include/apache-ws-common.h $(OUT)/apachews/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PREFIX)/lib|' -e 's|@INCLUDEDIR@|$(PREFIX)/include|' \
	    -e 's|@VERSION@|$(VERSION)|' sdk/apachews/apachews.pc.in > $(OUT)/apachews/pkgconfig/apachews.pc

install-apachews: apachews
	install -D -m 0644 $(OUT)/apachews/libapachews.so $(DESTDIR)$(PREFIX)/lib/libapachews.so
	install -D -m 0644 $(OUT)/apachews/include/apache-ws-common.h $(DESTDIR)$(PREFIX)/include/apache-ws-common.h
	install -D -m 0644 $(OUT)/apachews/pkgconfig/apachews.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/apachews.pc

install: all
	install -D -m 0755 $(OUT)/wsgate $(DESTDIR)$(PREFIX)/bin/wsgate
	install -D -m 0644 config/default.yaml $(DESTDIR)$(SYSCONFDIR)/wsgate/wsgate.yaml
	install -D -m 0644 $(OUT)/man/wsgate.1 $(DESTDIR)$(PREFIX)/share/man/man1/wsgate.1
	install -D -m 0644 $(OUT)/man/wsgate.yaml.5 $(DESTDIR)$(PREFIX)/share/man/man5/wsgate.yaml.5
	$(MAKE) -C frontdoor/apache install-apache OUT=$(abspath $(OUT))/apache DESTDIR=$(DESTDIR) PREFIX=$(PREFIX)

# The systemd units, for installs that are not the Debian package (which
# installs the same files with dh_installsystemd).
install-systemd:
	install -D -m 0644 packaging/systemd/wsgate.service $(DESTDIR)$(UNITDIR)/wsgate.service
	install -D -m 0644 packaging/systemd/wsgate.socket $(DESTDIR)$(UNITDIR)/wsgate.socket

# dpkg-buildpackage with debhelper, into dist/; the Go modules come from
# the module cache (go mod download), with no network during the build.
packages:
	./scripts/packages.sh dist

test:
	./scripts/test.sh

bench:
	cd bench && go run ./cmd/bench -out ../docs
	cd bench/plot && go run . ../../docs

bench-quick:
	cd bench && go run ./cmd/bench -quick

install-apache:
	$(MAKE) -C frontdoor/apache install-apache

clean:
	rm -rf $(OUT) dist
	$(MAKE) -C frontdoor/apache clean
