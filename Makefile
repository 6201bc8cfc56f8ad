# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run stop batch test lint bench clean

# The virtualenv is rebuilt whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(STAMP)

# `make run`: the API and one worker in the background on the embedded defaults
# (a SQLite file, Celery's filesystem broker and a storage folder, all under
# var/), so no server is needed; then a demo key and a working upload command.
PORT    ?= 8000
RUN_DIR := var/run
API     := http://127.0.0.1:$(PORT)

run: install stop
	@mkdir -p $(RUN_DIR)
	@$(BIN)/avatar-prep db upgrade
	@# Logs are appended (a restart keeps what came before); one past 10 MB is rotated
	@# at start to .1 (older ones shift up, five kept).
	@for log in $(RUN_DIR)/api.log $(RUN_DIR)/worker.log; do \
	  if [ -f $$log ] && [ $$(stat -c %s $$log) -gt 10485760 ]; then \
	    for i in 4 3 2 1; do [ -f $$log.$$i ] && mv $$log.$$i $$log.$$((i + 1)); done; \
	    mv $$log $$log.1; \
	  fi; \
	done
	@nohup $(BIN)/avatar-prep serve --port $(PORT) >>$(RUN_DIR)/api.log 2>&1 & echo $$! >$(RUN_DIR)/api.pid
	@nohup $(BIN)/avatar-prep worker >>$(RUN_DIR)/worker.log 2>&1 & echo $$! >$(RUN_DIR)/worker.pid
	@for i in $$(seq 150); do curl -sf $(API)/readyz >/dev/null && break; sleep 0.2; done; \
	 curl -sf $(API)/readyz >/dev/null || { echo "the API did not start; see $(RUN_DIR)/api.log"; exit 1; }
	@key=$$($(BIN)/avatar-prep keys create --account demo --plan paid | sed -n 's/^api key: *//p'); \
	 echo; \
	 echo "API on $(API) (docs: $(API)/docs), one worker; logs in $(RUN_DIR)/."; \
	 echo; \
	 echo "Try a photo in a browser: open $(API)/ and paste this key: $$key"; \
	 echo; \
	 echo "Upload a sample photo and wait up to 10 s for the avatar:"; \
	 echo; \
	 echo "  curl -s -H 'X-API-Key: $$key' -F file=@sample_images/accept_portrait.jpg '$(API)/v1/avatars/upload-face?wait=10'"; \
	 echo; \
	 echo "Then fetch a framing with the id it returns:"; \
	 echo; \
	 echo "  curl -s -H 'X-API-Key: $$key' -o avatar.jpg '$(API)/v1/avatars/AVATAR_ID/image?aspect_ratio=4:3'"; \
	 echo; \
	 echo "Stop both with: make stop"

# Stops what `make run` started, by the ids it wrote; waits until they are gone
# (a worker finishes the image in hand first).
stop:
	@for name in worker api; do \
	  f=$(RUN_DIR)/$$name.pid; [ -f $$f ] || continue; pid=$$(cat $$f); \
	  kill $$pid 2>/dev/null && echo "stopping $$name ($$pid)"; \
	  for i in $$(seq 100); do kill -0 $$pid 2>/dev/null || break; sleep 0.2; done; \
	  rm -f $$f; \
	done

# The pipeline alone, no service: every sample image through it, a report and overlays.
batch: install
	$(BIN)/avatar-prep batch sample_images -o prepared --report prepared/report.csv --overlay

# The page's tests (tests/browser) drive Debian's Chromium; installed once, with
# sudo when not root.
CHROMIUM := /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium \
	  || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

test: install $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# One pinned core: stage times, ratios to a naive reference and a plain decode,
# 50 MP peak memory; then batch images/s with 1 and 2 workers.
bench: install
	$(BIN)/avatar-prep bench
	$(BIN)/avatar-prep bench --batch

clean:
	rm -rf $(VENV) prepared var .mypy_cache .ruff_cache .pytest_cache
