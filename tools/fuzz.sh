#!/usr/bin/env bash
# tools/fuzz.sh SECONDS [TARGET...]: builds the libFuzzer targets with clang in build-fuzz/ (ASan,
# UBSan with float-cast-overflow, -O1) and runs each for SECONDS from its seed corpus
# (fuzz/corpus/<target>; new inputs go to build-fuzz/corpus/<target>, so the repository's seeds
# stay small). Each run explores further from where the last one stopped.
# tools/fuzz.sh --runs=N [TARGET...]: N executions per target from the seed corpus alone, with a
# fixed random seed: the test suite's smoke run, which should not turn red on whatever a random
# exploration happens to reach this time. The mutations follow the seed, but which inputs libFuzzer
# keeps follows coverage, which threads can vary, so runs are alike rather than identical.
# tools/fuzz.sh --build=DIR ...: the targets of an existing build folder instead (tools/dev test
# runs its smoke runs on the sanitizer build's targets, meson option fuzz=smoke: only the targets
# are instrumented for coverage, so the mutations are less guided than in build-fuzz/, which is
# enough for 2,000 runs from the seeds and saves compiling every library a third time).
# Prints one line per target: executions, new corpus size, and OK or the crash/timeout/oom file.
# Exits 1 when any target found something; 0 with a note when clang is missing (nothing to run);
# 2 when SECONDS or N is not a positive integer.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=build-fuzz
case "${1:-}" in --build=*) build=${1#--build=}; shift ;; esac
secs=${1:-60}
runs=
case "$secs" in --runs=*) runs=${secs#--runs=} ;; esac
# libFuzzer reads a budget that is not a number (a target name given for SECONDS) as 0: no limit.
if ! [[ ${runs:-$secs} =~ ^0*[1-9][0-9]*$ ]]; then
  if [ -n "$runs" ] || [ "$secs" = --runs= ]; then
    echo "fuzz: --runs=N needs a positive integer N, not '$runs'" >&2
  else
    echo "fuzz: SECONDS must be a positive integer, not '$secs'" >&2
  fi
  echo "usage: tools/fuzz.sh [--build=DIR] SECONDS|--runs=N [TARGET...]" >&2
  exit 2
fi
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_safetensors fuzz_npy fuzz_idx fuzz_cifar fuzz_image fuzz_architecture)
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (apt-get install clang libclang-rt-dev); skipped"
  exit 0
fi
if [ "$build" = build-fuzz ] && [ ! -f build-fuzz/build.ninja ]; then
  CXX=clang++ meson setup build-fuzz -Dfuzz=true -Dbuildtype=plain \
    -Dcpp_args="-O1 -g -fsanitize=float-cast-overflow" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
elif [ "$build" = build-fuzz ]; then
  meson configure build-fuzz -Dfuzz=true >/dev/null  # (an older checkout's folder stored it as a boolean)
fi
ninja -C "$build" "${targets[@]/#/fuzz/}" >/dev/null || ninja -C "$build" "${targets[@]/#/fuzz/}" >&2 || { echo "fuzz: build FAILED"; exit 1; }
mkdir -p "$build/findings"
stamp=$(mktemp "$build/findings/.started.XXXXXX")  # beside the findings: the same clock granularity
trap 'rm -f "$stamp"' EXIT
failed=0
for t in "${targets[@]}"; do
  if [ -n "$runs" ]; then  # a scratch corpus: nothing from earlier runs, nothing kept
    corpus=$build/smoke/$t
    rm -rf "$corpus"
    budget=(-runs="$runs" -seed=1)
  else
    corpus=$build/corpus/$t
    budget=(-max_total_time="$secs")
  fi
  mkdir -p "$corpus"
  log=$build/findings/$t.log
  touch "$stamp"
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$build/fuzz/$t" "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$build/findings/$t-" -print_final_stats=1 "$corpus" "fuzz/corpus/$t" >"$log" 2>&1
  status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  if [ $status -eq 0 ]; then
    echo "$t: ${runs:+seed 1, }${runs:-${secs}s}${runs:+ runs}, $execs executions, corpus $(ls "$corpus" | wc -l) files: OK"
  else
    failed=1
    # This run's input, not an earlier run's (findings/ keeps them all): the one libFuzzer's log
    # names, else the newest of this target's files written since the run started.
    found=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
    [ -n "$found" ] || found=$(find "$build/findings" -maxdepth 1 -name "$t-*" -newer "$stamp" -printf '%T@ %p\n' |
      sort -rn | head -1 | cut -d' ' -f2-)
    echo "$t: FAILED after $execs executions (exit $status): ${found:-no input saved}; see $log"
  fi
done
exit $failed
