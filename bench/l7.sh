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
# Exit status: 0 ran and met the targets; 1 could not run; 3 ran but missed
# a target (the report says which).
set -euo pipefail

usage() {
	cat <<EOF
Usage: bench/l7.sh [OPTIONS]
  --cost-secs S      seconds of each cost run (default 20)
  --pairs N          with/without pairs on /db/user/:id (default 5)
  --users-pairs N    pairs on /users/:id (default: --pairs)
  --pair-secs S      seconds of each throughput run (default 10)
  --loss-secs S      seconds of each loss run (default 10)
  --conns N          wrk connections (default 16)
  --port P           agent listen port on 127.0.0.1 (default 19465)
  --build-dir DIR    CMake build directory for the agent (default REPO/build)
  --agent PATH       use this katascope binary, do not build
  --agent-desc TEXT  how that binary was built, for the report
  --max-wait S       how long to wait for a running connstorm before giving up
                     (default 1200)
  --time-limit S     kill the whole run after S seconds (default: computed)
  --quick            about 20 s in all (1 pair of 1 s runs per route, 1 s cost
                     runs, 1 s loss runs); nothing written unless --write
  --write            write docs/benchmarks.md (default unless --quick)
  --no-write         only print the report
  -h, --help         this text
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$REPO/build"
AGENT=
QUICK=0
WRITE=
TIME_LIMIT=
PY_ARGS=()
CMDLINE="bench/l7.sh"
for a in "$@"; do CMDLINE+=" $(printf '%q' "$a")"; done

log() { echo "l7bench: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
need_num() { [[ $2 =~ ^[0-9]+([.][0-9]+)?$ ]] || die "invalid value '$2' for $1: expected a number"; }

while [ $# -gt 0 ]; do
	case $1 in
	--cost-secs | --pairs | --users-pairs | --pair-secs | --loss-secs | --conns | --port | --max-wait)
		[[ ${2-} =~ ^[0-9]+$ ]] || die "invalid value '${2-}' for $1: expected a whole number"
		PY_ARGS+=("$1" "$2")
		shift
		;;
	--time-limit) need_num "$1" "${2-}"; TIME_LIMIT=$2; shift ;;
	--build-dir) BUILD_DIR=${2:?--build-dir needs a directory}; shift ;;
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--agent-desc) PY_ARGS+=(--agent-desc "${2:?--agent-desc needs a text}"); shift ;;
	--quick) QUICK=1 ;;
	--write) WRITE=1 ;;
	--no-write) WRITE=0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option '$1'" ;;
	esac
	shift
done
if [ "$QUICK" = 1 ]; then
	WRITE=${WRITE:-0}
	PY_ARGS+=(--quick)
fi
WRITE=${WRITE:-1}
[ "$WRITE" = 1 ] && PY_ARGS+=(--write)

# ---- preconditions ----------------------------------------------------------

[ "$(id -u)" = 0 ] || die "must run as root (loads BPF programs, sets kernel.bpf_stats_enabled)"
for t in python3 wrk node setpriv pgrep timeout; do
	command -v "$t" >/dev/null || die "'$t' not found; install it"
done
BPFTOOL=${BPFTOOL:-$(command -v bpftool || echo /usr/sbin/bpftool)}
[ -x "$BPFTOOL" ] || die "bpftool not found (apt-get install bpftool, or set BPFTOOL=/path)"
export BPFTOOL
[ -x /usr/lib/postgresql/15/bin/postgres ] || die "PostgreSQL 15 not found (apt-get install postgresql-15)"
[ -w /proc/sys/kernel/bpf_stats_enabled ] || die "this kernel has no kernel.bpf_stats_enabled"
[ -d "$REPO/tests/e2e/app/node_modules/pg" ] ||
	die "the Node app's modules are missing: (cd tests/e2e/app && npm ci)"

# ---- build ------------------------------------------------------------------

if [ -z "$AGENT" ]; then
	if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
		log "configuring $BUILD_DIR"
		cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
			>"$BUILD_DIR.cmake.log" 2>&1 ||
			{ tail -20 "$BUILD_DIR.cmake.log" >&2; die "cmake failed"; }
	fi
	log "building the agent in $BUILD_DIR"
	make -C "$BUILD_DIR" -j"$(nproc)" katascope >/dev/null 2>"$BUILD_DIR.make.log" ||
		{ tail -30 "$BUILD_DIR.make.log" >&2; die "the agent did not build"; }
	AGENT="$BUILD_DIR/katascope"
	PY_ARGS+=(--built)
fi
[ -x "$AGENT" ] || die "agent binary $AGENT not found"
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")

# ---- run ----------------------------------------------------------------------

# A bound on the whole run: the measuring time plus a generous allowance
# for start-ups, count folding and waiting out a connection storm.
if [ -z "$TIME_LIMIT" ]; then
	TIME_LIMIT=3600
	[ "$QUICK" = 1 ] && TIME_LIMIT=1500
fi

cd "$REPO"
rc=0
timeout --signal=TERM --kill-after=30 "$TIME_LIMIT" \
	python3 "$REPO/bench/l7_bench.py" --agent "$AGENT" --cmdline "$CMDLINE" \
	"${PY_ARGS[@]}" || rc=$?
case $rc in
0 | 1 | 3) exit "$rc" ;;
124) die "the run took longer than $TIME_LIMIT s (--time-limit)" ;;
*) die "bench/l7_bench.py ended with status $rc" ;;
esac
