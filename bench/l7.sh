#!/usr/bin/env bash
# bench/l7.sh - katascope's cost per HTTP exchange and per SQL statement,
# throughput with and without it, and whether it loses requests (issue 3).
#
# Builds the agent (or takes --agent), checks the tools, then runs
# bench/l7_bench.py, which starts a throwaway PostgreSQL cluster and the
# end-to-end tests' Node app and drives them with wrk on 127.0.0.1:
#   throughput  wrk -t1 -c16 on /db/user/:id and /users/:id, with and
#               without the agent, alternating, --pairs pairs of --pair-secs s;
#   cost        kernel.bpf_stats_enabled=1 (restored afterwards): run_time_ns
#               of all the agent's BPF programs and the agent's CPU time per
#               request wrk completed (and per request the agent counted);
#   loss        the agent's http_server_request_duration_seconds_count (and
#               db_client_operation_duration_seconds_count) against wrk's
#               count, at saturation and paced at about 10k requests/s.
# The report is printed as markdown and, unless --quick or --no-write,
# replaces the results part of the section '## HTTP and SQL exchanges
# (issue 3)' of docs/benchmarks.md (only the text between its markers).
#
# Needs root, python3, wrk, node (and tests/e2e/app/node_modules: npm ci),
# PostgreSQL 15 (/usr/lib/postgresql/15/bin), setpriv, bpftool.
#
# Exit status: 0 ran and met the targets; 1 could not run; 2 bad option;
# 3 ran but missed a target (the report says which).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=l7bench
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh" "$@"

usage() {
	cat <<USAGE
Usage: bench/l7.sh [OPTIONS]
  --cost-secs S       seconds of each cost run (default 20)
  --pairs N           with/without pairs on /db/user/:id (default 5)
  --users-pairs N     pairs on /users/:id (default: --pairs)
  --pair-secs S       seconds of each throughput run (default 10)
  --loss-secs S       seconds of each loss run (default 10)
  --conns N           wrk connections (default 16)
  --port P            agent listen port on 127.0.0.1 (default 19465)
USAGE
	bench_common_usage
	echo "  (--max-wait default 1200; --quick: about 20 s in all, 1 pair of 1 s runs per"
	echo "  route, 1 s cost runs, 1 s loss runs)"
}

bench_opt() {
	BENCH_SHIFT=0
	case $1 in
	--cost-secs | --pairs | --users-pairs | --pair-secs | --loss-secs | --conns | --port)
		need_int "$1" "${2-}"
		PY_ARGS+=("$1" "$2")
		BENCH_SHIFT=2
		;;
	esac
}
bench_parse "$@"

# ---- preconditions ----------------------------------------------------------

bench_need "loads BPF programs, sets kernel.bpf_stats_enabled" \
	python3 wrk node setpriv pgrep timeout
[ -x /usr/lib/postgresql/15/bin/postgres ] || die "PostgreSQL 15 not found (apt-get install postgresql-15)"
[ -d "$REPO/tests/e2e/app/node_modules/pg" ] ||
	die "the Node app's modules are missing: (cd tests/e2e/app && npm ci)"

bench_build_agent
# A bound on the whole run: the measuring time plus a generous allowance
# for start-ups, count folding and waiting out a connection storm.
bench_run_py l7_bench.py 3600 1500
