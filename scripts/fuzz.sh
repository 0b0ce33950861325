#!/usr/bin/env bash
# steerclear fuzzing: builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) in
# build-fuzz/ and runs each for a bounded time on a copy of its seed corpus.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Default: about 60 s of fuzzing in all (targets run SC_FUZZ_JOBS at a time, default 2).
# Exit status: 0 when no target found anything; 1 when any target crashed, leaked, hit a
# sanitizer report or a timeout (each is listed with its reproducer, copied to
# tests/fuzz/crashes/<target>/); 2 for a setup or build failure.
#
# Environment:
#   SC_TOKENIZER        tokenizer.json for fuzz_tok_encode (default .cache/tokenizer/tokenizer.json)
#   SC_FUZZ_JOBS        targets run at once (default: 2, or 1 on a single core)
#   SC_FUZZ_TARGETS     space-separated subset of the targets to run
#   SC_FUZZ_KEEP_GOING  1: fork mode, keep fuzzing after a crash (collects several reproducers)
#   SC_FUZZ_NO_INSTALL  1: do not apt-get missing packages (fail instead)
#
# Replay a reproducer:  build-fuzz/tests/fuzz/<target> tests/fuzz/crashes/<target>/<file>
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-fuzz"
FUZZ_SRC="$ROOT/tests/fuzz"
TARGETS_ALL=(fuzz_safetensors fuzz_hf_config fuzz_tok_load fuzz_tok_encode fuzz_csv fuzz_checkpoint fuzz_run_config)
TOTAL_SECONDS=60

die() { echo "fuzz: $*" >&2; exit 2; }

# --- packages ---------------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PACKAGES=(clang libclang-rt-14-dev libomp-14-dev cmake pkg-config make
          libopenblas-openmp-dev libhdf5-dev libcjson-dev libpcre2-dev libutf8proc-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "${SC_FUZZ_NO_INSTALL:-0}" = 1 ] && die "missing packages: ${missing[*]} (SC_FUZZ_NO_INSTALL=1)"
  echo "fuzz: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q || die "apt-get update failed"
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" || die "apt-get install failed"
fi

# --- targets and time -------------------------------------------------------------------------
if [ -n "${SC_FUZZ_TARGETS:-}" ]; then read -r -a TARGETS <<<"$SC_FUZZ_TARGETS"; else TARGETS=("${TARGETS_ALL[@]}"); fi
for t in "${TARGETS[@]}"; do
  [ -f "$FUZZ_SRC/$t.c" ] || die "unknown target '$t' (targets: ${TARGETS_ALL[*]})"
done
NCPU="$(nproc 2>/dev/null || echo 1)"
JOBS="${SC_FUZZ_JOBS:-$(( NCPU >= 2 ? 2 : 1 ))}"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "SC_FUZZ_JOBS must be a positive integer"
WAVES=$(( (${#TARGETS[@]} + JOBS - 1) / JOBS ))
SECS="${1:-$(( TOTAL_SECONDS / WAVES > 1 ? TOTAL_SECONDS / WAVES : 1 ))}"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "SECONDS_PER_TARGET must be a positive integer (got '$SECS')"
TOKENIZER="${SC_TOKENIZER:-$ROOT/.cache/tokenizer/tokenizer.json}"

# --- build ------------------------------------------------------------------------------------
start=$(date +%s)
if [ ! -f "$BUILD/CMakeCache.txt" ] || ! grep -q '^SC_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  CC=clang cmake -S "$ROOT" -B "$BUILD" -DSC_FUZZ=ON -DSC_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" >"$BUILD.configure.log" 2>&1 \
    || { cat "$BUILD.configure.log" >&2; die "cmake configure failed (log above)"; }
  mv "$BUILD.configure.log" "$BUILD/configure.log"
fi
cmake --build "$BUILD" --target sc_fuzz -j "$NCPU" >"$BUILD/build.log" 2>&1 \
  || { tail -40 "$BUILD/build.log" >&2; die "build failed (last lines above; full log $BUILD/build.log)"; }
BIN="$BUILD/tests/fuzz"
echo "fuzz: built in $(( $(date +%s) - start )) s; running ${#TARGETS[@]} targets for $SECS s each, $JOBS at a time"

# --- corpora: a copy of the seeds per target (growth stays in build-fuzz/) ----------------------
WORK="$BUILD/fuzz-run"
mkdir -p "$WORK/tmp"
for t in "${TARGETS[@]}"; do
  mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
  rm -f "$WORK/artifacts/$t"/*
  if [ -d "$FUZZ_SRC/corpus/$t" ]; then cp -n "$FUZZ_SRC/corpus/$t"/* "$WORK/corpus/$t/" 2>/dev/null || true; fi
done
if printf '%s\n' "${TARGETS[@]}" | grep -qx fuzz_checkpoint; then
  "$BIN/fuzz_make_seeds" "$WORK/corpus/fuzz_checkpoint" >"$WORK/make_seeds.log" 2>&1 \
    || { cat "$WORK/make_seeds.log" >&2; die "fuzz_make_seeds failed"; }
fi
if printf '%s\n' "${TARGETS[@]}" | grep -qx fuzz_tok_encode && [ ! -f "$TOKENIZER" ]; then
  die "fuzz_tok_encode needs the tokenizer: $TOKENIZER is missing (run scripts/setup.sh or set SC_TOKENIZER)"
fi

# --- run --------------------------------------------------------------------------------------
export TMPDIR="$WORK/tmp"
export SC_TOKENIZER="$TOKENIZER"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:strict_string_checks=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

run_one() {   # target -> writes $WORK/<target>.log and $WORK/<target>.rc
  local t="$1" dict=() extra=()
  [ -f "$FUZZ_SRC/dict/$t.dict" ] && dict=(-dict="$FUZZ_SRC/dict/$t.dict")
  [ "${SC_FUZZ_KEEP_GOING:-0}" = 1 ] && extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  ( cd "$WORK" && "$BIN/$t" "$WORK/corpus/$t" "${dict[@]}" "${extra[@]}" -max_total_time="$SECS" \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$WORK/artifacts/$t/" >"$WORK/$t.log" 2>&1 )
  echo $? >"$WORK/$t.rc"
}

pids=()
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n 2>/dev/null || sleep 0.2; done
  run_one "$t" &
  pids+=($!)
done
wait

# --- report -----------------------------------------------------------------------------------
failed=0
echo "fuzz: summary"
for t in "${TARGETS[@]}"; do
  log="$WORK/$t.log"
  rc="$(cat "$WORK/$t.rc" 2>/dev/null || echo 99)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  [ -z "$execs" ] && execs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')"
  [ -z "$execs" ] && execs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)"
  eps="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  [ -z "$eps" ] && [[ "$execs" =~ ^[0-9]+$ ]] && eps=$(( execs / SECS ))
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1)"
  corpus_n="$(find "$WORK/corpus/$t" -type f | wc -l)"
  artifacts=()
  while IFS= read -r a; do artifacts+=("$a"); done < <(find "$WORK/artifacts/$t" -type f 2>/dev/null | sort)
  if [ "$rc" = 0 ] && [ "${#artifacts[@]}" -eq 0 ]; then
    printf '  %-18s ok     %10s execs (%s/s), %s, corpus %s\n' "$t" "${execs:-?}" "${eps:-?}" "${cov:-cov: ?}" "$corpus_n"
    continue
  fi
  failed=1
  printf '  %-18s FAILED %10s execs, exit %s\n' "$t" "${execs:-?}" "$rc"
  # replay each reproducer once (fork mode keeps the children's reports to itself) and report
  # each distinct finding (kind + first frame outside the sanitizers and libFuzzer) once
  declare -A seen=()
  n_dup=0
  for a in "${artifacts[@]}"; do
    name="$(basename "$a")"
    replay="$WORK/artifacts/$t.$name.txt"
    ( cd "$WORK" && timeout 60 "$BIN/$t" -rss_limit_mb=2048 -timeout=10 "$a" >"$replay" 2>&1 )
    what="$(grep -m1 -oE '(ERROR: [A-Za-z]+Sanitizer: [^ ]+( [^ (]+)?|runtime error: .*|fuzz invariant failed: .*|ERROR: libFuzzer: [a-z -]+)' "$replay")"
    # the first frames of the report that are not the sanitizer's, libFuzzer's or libc's
    frames="$(grep -E '^ +#[0-9]+ ' "$replay" | grep -vE 'in (__sanitizer|__asan|__ubsan|__lsan|fuzzer::|__interceptor|malloc|calloc|realloc|free|abort|raise|__pthread_kill|__libc_start|_start|main )|libc\.so|compiler-rt' \
      | head -6 | sed -E 's/ \(BuildId: [0-9a-f]+\)//; s/ 0x[0-9a-f]+ in / /; s/^ +/        /')"
    sig="$what|$(printf '%s\n' "$frames" | head -1 | sed -E 's/^ *#[0-9]+ //')"
    if [ -n "${seen[$sig]:-}" ]; then n_dup=$((n_dup + 1)); continue; fi
    seen[$sig]=1
    mkdir -p "$FUZZ_SRC/crashes/$t"
    cp "$a" "$FUZZ_SRC/crashes/$t/"
    echo "      ${what:-see $replay}"
    echo "      reproducer: tests/fuzz/crashes/$t/$name"
    echo "      replay:     build-fuzz/tests/fuzz/$t tests/fuzz/crashes/$t/$name"
    [ -n "$frames" ] && printf '%s\n' "$frames"
  done
  [ "$n_dup" -gt 0 ] && echo "      ($n_dup more reproducers of the same findings in $WORK/artifacts/$t/)"
  unset seen
  [ "${#artifacts[@]}" -eq 0 ] && echo "      no reproducer written; log: $log" && grep -m1 -A10 -E 'ERROR|runtime error' "$log" | sed 's/^/      | /'
  echo "      log: $log"
done
echo "fuzz: total $(( $(date +%s) - start )) s"
if [ "$failed" -ne 0 ]; then echo "fuzz: FAILED (see above)"; exit 1; fi
echo "fuzz: all targets clean"
exit 0
