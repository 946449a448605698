# wsgate. The README's two commands need no make; this builds the rest.
#
#   make           the daemon (./wsgate) and mod_wsgate (frontdoor/apache/build/)
#   make test      every test, as the README's test command
#   make bench     the benchmark matrix against the peer libraries (about 15
#                  minutes): docs/BENCHMARKS.md, docs/benchmarks.png
#   make bench-quick  the harness's smoke test (under a minute)
#   make install-apache
#   make clean
.PHONY: all wsgate apache test bench bench-quick install-apache clean

all: wsgate apache

wsgate:
	go build -o wsgate ./cmd/wsgate

apache:
	$(MAKE) -C frontdoor/apache

test:
	./scripts/test.sh

bench:
	cd bench && go run ./cmd/bench -out ../docs

bench-quick:
	cd bench && go run ./cmd/bench -quick

install-apache:
	$(MAKE) -C frontdoor/apache install-apache

clean:
	rm -f wsgate
	$(MAKE) -C frontdoor/apache clean
