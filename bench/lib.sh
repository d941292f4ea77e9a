# bench/lib.sh - what the bench scripts share; sourced, not run.
#
# Messages (log, die, prefixed with $BENCH_TAG), option checks (need_num,
# need_int, need_arg; a bad option is one line and exit status 2), and for the benches whose measuring is a Python program
# (l7.sh, profile.sh): the options they all take (bench_parse; the
# caller defines usage and bench_opt for its own),
# building the agent (bench_build_agent) and running the Python side under
# a time bound with their common exit statuses (bench_run_py).
#
# The caller sets REPO and BENCH_TAG, then sources it with its arguments
# (. bench/lib.sh "$@"), which makes CMDLINE, the command as run, for the
# report; bench_parse sets BUILD_DIR, AGENT, QUICK, WRITE, TIME_LIMIT and
# appends to PY_ARGS.

CMDLINE="bench/$(basename "$0")"
for a in "$@"; do CMDLINE+=" $(printf '%q' "$a")"; done

BUILD_DIR=${BUILD_DIR:-$REPO/build}
AGENT=${AGENT:-}
QUICK=0
WRITE=
TIME_LIMIT=
PY_ARGS=()

log() { echo "${BENCH_TAG:-bench}: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
# A bad option: one line naming it, exit 2.
bad_opt() {
	log "$*"
	exit 2
}
need_num() { [[ ${2-} =~ ^[0-9]+([.][0-9]+)?$ ]] || bad_opt "invalid value '${2-}' for $1: expected a number"; }
need_int() { [[ ${2-} =~ ^[0-9]+$ ]] || bad_opt "invalid value '${2-}' for $1: expected a whole number"; }
need_arg() { [ -n "${2-}" ] || bad_opt "$1 needs a value"; }

# bench_common_opt "$@": one of the options every Python-driven bench
# takes; sets BENCH_SHIFT to the words it used (0: not one of them).
bench_common_opt() {
	BENCH_SHIFT=2
	case $1 in
	--time-limit) need_num "$1" "${2-}"; TIME_LIMIT=$2 ;;
	--build-dir) need_arg "$1" "${2-}"; BUILD_DIR=$2 ;;
	--agent) need_arg "$1" "${2-}"; AGENT=$2 ;;
	--agent-desc) need_arg "$1" "${2-}"; PY_ARGS+=(--agent-desc "$2") ;;
	--max-wait) need_int "$1" "${2-}"; PY_ARGS+=("$1" "$2") ;;
	--quick) QUICK=1; BENCH_SHIFT=1 ;;
	--write) WRITE=1; BENCH_SHIFT=1 ;;
	--no-write) WRITE=0; BENCH_SHIFT=1 ;;
	-h | --help) usage; exit 0 ;;
	*) BENCH_SHIFT=0 ;;
	esac
}

# bench_parse "$@": every option, the common ones here, the others by the
# caller's bench_opt "$@", which sets BENCH_SHIFT (0: not an option).
bench_parse() {
	while [ $# -gt 0 ]; do
		bench_common_opt "$@"
		[ "$BENCH_SHIFT" != 0 ] || bench_opt "$@"
		[ "$BENCH_SHIFT" != 0 ] || bad_opt "unknown option '$1' (see --help)"
		shift "$BENCH_SHIFT"
	done
}

# Usage lines of those options.
bench_common_usage() {
	cat <<EOF
  --build-dir DIR     CMake build directory for the agent (default REPO/build)
  --agent PATH        use this katascope binary, do not build
  --agent-desc TEXT   how that binary was built, for the report
  --max-wait S        how long to wait for other benchmarks before giving up
  --time-limit S      kill the whole run after S seconds (default: computed)
  --quick             a short smoke run; nothing written unless --write
  --write             write docs/benchmarks.md (default unless --quick)
  --no-write          only print the report
  -h, --help          this text
EOF
}

# bench_need WHY TOOL...: root, the tools named, bpftool and BPF stats.
bench_need() {
	local t
	[ "$(id -u)" = 0 ] || die "must run as root ($1)"
	shift
	for t in "$@"; do
		command -v "$t" >/dev/null || die "'$t' not found; install it"
	done
	BPFTOOL=${BPFTOOL:-$(command -v bpftool || echo /usr/sbin/bpftool)}
	[ -x "$BPFTOOL" ] || die "bpftool not found (apt-get install bpftool, or set BPFTOOL=/path)"
	export BPFTOOL
	[ -w /proc/sys/kernel/bpf_stats_enabled ] || die "this kernel has no kernel.bpf_stats_enabled"
}

# Builds build/katascope unless --agent named a binary; AGENT is then an
# absolute path.
bench_build_agent() {
	if [ -z "$AGENT" ]; then
		mkdir -p "$BUILD_DIR"
		if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
			log "configuring $BUILD_DIR"
			cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
				>"$BUILD_DIR/bench-cmake.log" 2>&1 ||
				{ tail -20 "$BUILD_DIR/bench-cmake.log" >&2; die "cmake failed"; }
		fi
		log "building the agent in $BUILD_DIR"
		make -C "$BUILD_DIR" -j"$(nproc)" katascope >/dev/null 2>"$BUILD_DIR/bench-make.log" ||
			{ tail -30 "$BUILD_DIR/bench-make.log" >&2; die "the agent did not build"; }
		AGENT="$BUILD_DIR/katascope"
		PY_ARGS+=(--built)
	fi
	[ -x "$AGENT" ] || die "agent binary $AGENT not found"
	AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
}

# bench_run_py SCRIPT LIMIT QUICK_LIMIT: runs bench/SCRIPT with the options
# gathered, killed after --time-limit s (default LIMIT, QUICK_LIMIT with
# --quick); exits with its status: 0 targets met, 3 a target missed, 1
# could not run.
bench_run_py() {
	local rc=0
	if [ "$QUICK" = 1 ]; then
		WRITE=${WRITE:-0}
		PY_ARGS+=(--quick)
	fi
	[ "${WRITE:-1}" = 1 ] && PY_ARGS+=(--write)
	if [ -z "$TIME_LIMIT" ]; then
		TIME_LIMIT=$2
		[ "$QUICK" = 1 ] && TIME_LIMIT=$3
	fi
	cd "$REPO"
	# The Python side kills what it started on exit (SIGTERM from timeout
	# included); --kill-after is the last resort.
	timeout --signal=TERM --kill-after=30 "$TIME_LIMIT" \
		python3 "$REPO/bench/$1" --agent "$AGENT" --cmdline "$CMDLINE" \
		"${PY_ARGS[@]}" || rc=$?
	case $rc in
	0 | 1 | 3) exit "$rc" ;;
	124) die "the run took longer than $TIME_LIMIT s (--time-limit)" ;;
	*) die "bench/$1 ended with status $rc" ;;
	esac
}
