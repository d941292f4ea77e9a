#!/usr/bin/env bash
# bench/profile.sh - what katascope's continuous CPU profiler costs (issue 5),
# side by side with perf record.
#
# Builds the agent (or takes --agent), checks the tools, then runs
# bench/profile_bench.py, which on two busy Node workloads (two CPU-bound
# Node loops, one per CPU; the end-to-end tests' server.js under wrk at
# saturation) measures in one run:
#   1. the agent's CPU while it samples every CPU at 99 Hz and nobody asks
#      for a profile, and the BPF run time of handle_cpu_sample
#      (kernel.bpf_stats_enabled=1 for those windows, restored afterwards);
#   2. the agent's CPU while it records and symbolizes a --secs s profile of
#      a Node process P (GET /debug/pprof/profile and /flamegraph.svg,
#      ?seconds=N&pid=P), its memory, and the profiler's loss counters;
#   3. the same for `katascope profile --pid P` (the profiler alone) and for
#      `perf record -F 99 -g -p P` (plus what `perf script` then takes);
#   4. the workload's throughput with none, the agent, the one-shot and
#      perf, in rounds whose order rotates: median ratio and range.
# The targets are checked on the CPU-bound workload; the server workload
# shows the real configuration under HTTP load (mostly the L7 probes' cost).
# The report is printed as markdown and, unless --quick or --no-write,
# replaces the results part of the section '## Continuous profiler
# (issue 5)' of docs/benchmarks.md (only the text between its markers).
# Run it under the machine-wide lock: flock /tmp/ks-e2e.lock bench/profile.sh
#
# Needs root, python3, wrk, node, perf (linux-perf), bpftool, pgrep.
#
# Exit status: 0 ran and met the targets; 1 could not run; 2 bad option;
# 3 ran but missed a target (the report says which).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=pfbench
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh" "$@"

usage() {
	cat <<USAGE
Usage: bench/profile.sh [OPTIONS]
  --secs S            seconds of each window and of the profiles (default 30)
  --cpu-rounds N      throughput rounds on the cpu workload (default 5)
  --cpu-round-secs S  seconds of each run in them (default 5)
  --rounds N          throughput rounds on the server workload (default 3)
  --round-secs S      seconds of each wrk run in them (default 5)
  --workloads LIST    cpu,server (default both)
  --breakdown LIST    workloads on which to perf-record the agent itself to
                      see where its CPU goes (default server; '' none)
  --conns N           wrk connections (default 16)
  --port P            agent listen port on 127.0.0.1 (default 19471)
USAGE
	bench_common_usage
	echo "  (--quick: about 20 s, the cpu workload only, 1 s windows, one round of 1 s"
	echo "  runs)"
}

bench_opt() {
	BENCH_SHIFT=2
	case $1 in
	--secs | --rounds | --round-secs | --cpu-round-secs | --cpu-rounds | --conns | --port)
		need_int "$1" "${2-}"
		PY_ARGS+=("$1" "$2")
		;;
	--workloads)
		[[ ${2-} =~ ^(server|cpu)(,(server|cpu))?$ ]] ||
			bad_opt "invalid value '${2-}' for $1: expected cpu, server or cpu,server"
		PY_ARGS+=("$1" "$2")
		;;
	--breakdown)
		[ $# -ge 2 ] || bad_opt "$1 needs a value"
		[[ $2 =~ ^((server|cpu)(,(server|cpu))?)?$ ]] ||
			bad_opt "invalid value '$2' for $1: expected cpu, server, cpu,server or ''"
		PY_ARGS+=("$1=$2")
		;;
	*) BENCH_SHIFT=0 ;;
	esac
}
bench_parse "$@"

# ---- preconditions ----------------------------------------------------------

bench_need "loads BPF programs, sets kernel.bpf_stats_enabled, runs perf on other processes" \
	python3 wrk node pgrep timeout
PERF=${PERF:-$(command -v perf || echo /usr/bin/perf)}
[ -x "$PERF" ] || die "perf not found (apt-get install linux-perf, or set PERF=/path)"
"$PERF" --version >/dev/null 2>&1 || die "$PERF does not run (is linux-perf installed?)"
export PERF
[ -f "$REPO/tests/e2e/app/server.js" ] || die "tests/e2e/app/server.js is missing"

bench_build_agent
# A bound on the whole run: the measuring time plus a generous allowance
# for start-ups and symbolization.
bench_run_py profile_bench.py 2400 300
