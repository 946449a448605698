# wsgate. The README's two commands need no make; this builds the rest.
#
#   make           the daemon (./wsgate) and mod_wsgate (apache/build/)
#   make test      every test, as the README's test command
#   make install-apache
#   make clean
.PHONY: all wsgate apache test install-apache clean

all: wsgate apache

wsgate:
	go build -o wsgate ./cmd/wsgate

apache:
	$(MAKE) -C apache

test:
	./scripts/test.sh

install-apache:
	$(MAKE) -C apache install-apache

clean:
	rm -f wsgate
	$(MAKE) -C apache clean
