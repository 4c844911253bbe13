.PHONY: dev test lint bench
dev:
	scripts/dev
test:
	scripts/test
lint:
	scripts/bootstrap && .venv/bin/ruff check src tests benchmarks && .venv/bin/ruff format --check src tests benchmarks && .venv/bin/mypy && .venv/bin/lint-imports
bench:
	scripts/bootstrap && .venv/bin/conveyor bench
