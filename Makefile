# banger — build, install, test and benchmark.
# `make help` lists the targets.

PREFIX  ?= /usr/local
DESTDIR ?=
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X banger/internal/buildinfo.Version=$(VERSION)
BINS    := banger bangerd banger-vmm-qemu banger-helper
# Where build puts the binaries and deb the package (tests point them at
# temporary directories).
BINDIR  ?= bin
DISTDIR ?= dist
# The runtime bundle install and deb ship in lib/banger, when it holds one.
RUNTIME ?= runtime
# A Debian version starts with a digit and has no hyphen in a native package.
DEB_VERSION ?= 0.0~$(subst -,.,$(VERSION))
# The whole test suite: unit tests everywhere; as root also the host tier
# (network namespaces) and the end-to-end tier (real guests under QEMU),
# whose build of the default image alone takes 5-10 minutes under TCG.
TESTFLAGS ?= -timeout 90m
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 10s

.PHONY: all build install uninstall deb test test-unit soak fuzz bench runtime-bundle fmt vet lint clean help

all: build

## build: compile banger, bangerd, banger-vmm-qemu and banger-helper into ./bin
build:
	@mkdir -p $(BINDIR)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINDIR)/ ./cmd/banger ./cmd/bangerd ./cmd/banger-vmm-qemu ./cmd/banger-helper

## install: install banger under $(DESTDIR)$(PREFIX) as the package does: binaries, man pages, completions, the bangerd user unit, docs (runtime bundle into lib/banger if ./runtime holds one)
install: build
	sh packaging/install-tree.sh $(BINDIR) "$(DESTDIR)" "$(PREFIX)" $(abspath $(RUNTIME))

## uninstall: remove what install installed
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(BINS))
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/banger.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/banger-*.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/bangerd.1.gz
	rm -f $(DESTDIR)$(PREFIX)/share/bash-completion/completions/banger $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_banger $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/banger.fish
	rm -f $(DESTDIR)$(PREFIX)/lib/systemd/user/bangerd.service
	rm -rf $(DESTDIR)$(PREFIX)/lib/banger $(DESTDIR)$(PREFIX)/share/banger $(DESTDIR)$(PREFIX)/share/doc/banger

## deb: build dist/banger_VERSION_ARCH.deb with dpkg-deb (binaries, man pages, completions, user unit, docs; the runtime bundle too if ./runtime holds one)
deb: build
	sh packaging/build-deb.sh $(BINDIR) "$(DEB_VERSION)" $(DISTDIR) $(abspath $(RUNTIME))

## test: run the whole test suite (the README's one test command; CI runs it as root)
test:
	$(GO) test $(TESTFLAGS) ./...

## test-unit: run only the tests that need neither root nor a guest
test-unit:
	$(GO) test -short ./...

## soak: the fault suite: SOAK_ROUNDS (1000) rounds of random lifecycle commands with kill -9 of the daemon, a VMM or the CLI, checked by `banger system check` (root; boots real guests); SOAK_SEED replays a run
SOAK_ROUNDS ?= 1000
soak: build
	BANGER_SOAK_ROUNDS=$(SOAK_ROUNDS) BANGER_SOAK_SEED=$(SOAK_SEED) $(GO) test -count=1 -timeout 12h -run '^TestFaultSoak$$' -v ./internal/e2e/ | grep -E '^(soak|--- |    soak_test|FAIL|ok|PASS)'

## fuzz: run every fuzz target (func FuzzX in a _test.go file) for FUZZTIME each (default 10s)
##   plain `go test` runs their seed corpora (f.Add and testdata/fuzz) as unit tests
# Minimizing an input that found new coverage can outlast -fuzztime, and Go
# then fails the target with "context deadline exceeded" although nothing
# failed; a crasher is still written to testdata/fuzz unminimized. A bare
# deadline at the end of -fuzztime (go.dev/issue/75804) is run once more.
FUZZMINIMIZETIME ?= 0s
fuzz:
	sh scripts/fuzz.sh $(FUZZTIME) $(FUZZMINIMIZETIME) $(GO)

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
