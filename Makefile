# banger — build, install, test and benchmark.
# `make help` lists the targets.

PREFIX  ?= /usr/local
DESTDIR ?=
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X banger/internal/buildinfo.Version=$(VERSION)
BINS    := banger bangerd banger-vmm-qemu banger-helper
# The whole test suite: unit tests everywhere; as root also the host tier
# (network namespaces) and the end-to-end tier (real guests under QEMU),
# whose build of the default image alone takes 5-10 minutes under TCG.
TESTFLAGS ?= -timeout 90m
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 10s

.PHONY: all build install uninstall test test-unit fuzz bench runtime-bundle fmt vet lint clean help

all: build

## build: compile banger, bangerd, banger-vmm-qemu and banger-helper into ./bin
build:
	@mkdir -p bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/banger ./cmd/bangerd ./cmd/banger-vmm-qemu ./cmd/banger-helper

## install: install the binaries into $(DESTDIR)$(PREFIX)/bin (runtime bundle into lib/banger if ./runtime exists)
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix bin/,$(BINS)) $(DESTDIR)$(PREFIX)/bin/
	@if [ -d runtime ]; then install -d $(DESTDIR)$(PREFIX)/lib/banger && cp -a runtime/. $(DESTDIR)$(PREFIX)/lib/banger/; fi

## uninstall: remove what install installed
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(BINS))
	rm -rf $(DESTDIR)$(PREFIX)/lib/banger

## test: run the whole test suite (the README's one test command; CI runs it as root)
test:
	$(GO) test $(TESTFLAGS) ./...

## test-unit: run only the tests that need neither root nor a guest
test-unit:
	$(GO) test -short ./...

## fuzz: run every fuzz target (func FuzzX in a _test.go file) for FUZZTIME each (default 10s)
##   plain `go test` runs their seed corpora (f.Add and testdata/fuzz) as unit tests
fuzz:
	@set -e; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' internal packages cmd | sort); do \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "== $$target ./$$(dirname $$file)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$file); \
		done; \
	done

## bench: run every benchmark and print medians and side-by-side ratios
bench: build
	sh bench/run.sh

## runtime-bundle: bootstrap an image, assemble ./runtime from it and the VMM, package it as build/banger-runtime.tar.gz and write build/runtime-bundle.toml (local manifest copy with url and sha256)
##   local-first, the checked-in runtime-bundle.toml carries no URLs: make runtime-bundle, then
##   banger runtime install --manifest build/runtime-bundle.toml && banger runtime verify
runtime-bundle: build
	bin/banger internal runtime-bundle --dir runtime --build build

## fmt: format the code
fmt:
	gofmt -w $$(git ls-files '*.go')

## vet: check formatting and run go vet
vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

lint: vet

## clean: remove build output
clean:
	rm -rf bin dist

## help: list the targets
help:
	@echo "banger make targets:"
	@awk '/^## [a-z-]+:/ {sub(/^## /, ""); n=index($$0, ":"); printf "  %-18s %s\n", substr($$0, 1, n-1), substr($$0, n+2); next} /^##   / {sub(/^##   /, ""); printf "  %-18s %s\n", "", $$0}' $(MAKEFILE_LIST)
