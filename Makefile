# The two commands a new user types: `make run` and `make test`.
# Both create .venv and install the project into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench dds screenshots clean

$(STAMP): setup.py setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/stf launch $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check stf_msgs stf_nodes tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check stf_msgs stf_nodes tests bench
	$(BIN)/ruff format --check stf_msgs stf_nodes tests bench
	$(BIN)/mypy

# Every benchmark, one table (python -m bench --help); `make bench ARGS=--quick` for ~2 min.
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# Real ROS 2 beside the graph: .venv-dds with rclpy (ROS 2 Kilted wheels) and stf_msgs built
# with rosidl; cached, so a second run does nothing. Needs cmake, g++, make, python3-dev.
# The DDS tests (marker dds) and the dds_bridge node use it; run and test do not need it.
dds: $(STAMP)
	$(BIN)/stf dds setup

# Pictures of the live factory in a headless Foxglove viewer (Lichtblick); needs Debian's
# chromium (apt-get install -y chromium) and ../shared/viewer.
screenshots: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,viewer]'
	$(BIN)/python scripts/foxglove_screenshots.py --out screenshots

clean:
	rm -rf $(VENV) .venv-dds build *.egg-info
