# skiff: set-up and the main entry points. Every target is idempotent.
PY        ?= /usr/bin/python3
VENV      ?= .venv
BIN       ?= /usr/local/bin
# what skiff needs at run time / what the tests and benchmarks need on top
APT_RUN   := busybox-static libseccomp2 iproute2 procps tini nftables
APT_TEST  := $(APT_RUN) runc containerd podman docker-registry skopeo apache2-utils openssl
APT_BENCH := $(APT_RUN) runc crun hyperfine time containerd docker.io docker-registry skopeo podman conmon netavark iptables
SCRIPTS   := skiff-runtime skiff skiffd
# the commands whose start-up counts get a launcher of their own (below): command:module
FAST      := skiff-runtime:skiff.runtime.launcher skiff:skiff.cli.main

.PHONY: install demo test bench clean compile

define apt_ensure
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; \
	fi
endef

$(VENV)/.installed-%: pyproject.toml
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[$*]'
	@# skiff-runtime's and skiff's own launchers: pip's template imports `re`, and `site` reads
	@# every .pth (~6 ms a start together); both need nothing but the standard library and src/
	@for f in $(FAST); do \
	  printf '#!$(CURDIR)/$(VENV)/bin/python -S\nimport sys\nsys.path.insert(0, "$(CURDIR)/src")\nfrom %s import entry\nentry()\n' \
	    "$${f#*:}" > $(VENV)/bin/$${f%%:*}; \
	done
	@touch $@

# byte-compile once: these machines set PYTHONDONTWRITEBYTECODE, and compiling the
# sources at every start would cost more than the whole run
compile:
	@$(VENV)/bin/python -m compileall -q src >/dev/null

install:
	$(call apt_ensure,$(APT_RUN))
	@$(MAKE) -s $(VENV)/.installed-test compile
	@for s in $(SCRIPTS); do ln -sf $(CURDIR)/$(VENV)/bin/$$s $(BIN)/$$s; done

demo: install
	@./scripts/demo.sh

test: install
	$(call apt_ensure,$(APT_TEST))
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: install
	$(call apt_ensure,$(APT_BENCH))
	@bash ./scripts/fix-hybrid-cgroups.sh
	$(VENV)/bin/python bench/runtime.py
	$(VENV)/bin/python bench/pull.py
	$(VENV)/bin/python bench/containers.py
	$(VENV)/bin/python bench/capsules.py
	$(VENV)/bin/python bench/network.py

clean:
	rm -rf $(VENV) build src/*.egg-info
