#!/usr/bin/env bash
# Install what is missing, build, and run every test:
#  - unit tests and the agent built with ASan+UBSan (build-asan/), the
#    end-to-end tests run against that agent,
#  - unit and end-to-end tests against the real kernel (build/, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
scripts/build.sh
# The e2e tests' Node service and its clients (node-postgres, node-redis),
# pinned by package-lock.json.
(cd tests/e2e/app && npm ci --no-audit --no-fund --loglevel=error)

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKATASCOPE_SANITIZE=ON \
	>/dev/null
cmake --build build-asan -j"$(nproc)"
echo "== unit tests, and the agent end to end, under ASan+UBSan"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 \
	ctest -L unit --output-on-failure &&
	ASAN_OPTIONS=detect_leaks=1 ctest -L e2e -E 'test_bench' \
		--output-on-failure)

echo "== all tests"
cd build && ctest --output-on-failure "$@"
