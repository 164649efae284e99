#!/usr/bin/env bash
# fuzz/run.sh BUILD_DIR SECONDS [TARGET...]: writes the seed corpora (fuzz_seeds) and runs each
# libFuzzer target of BUILD_DIR/fuzz for SECONDS, one after the other (all of them by default).
# A target's corpus grows in BUILD_DIR/fuzz-corpus/<target> across runs; a finding (crash, leak,
# timeout, an allocation above the limit) is saved under BUILD_DIR/fuzz-findings/<target>/ and
# makes the script fail. Prints the executions of each target.
set -uo pipefail
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors checkpoint image cifar_archive cifar_folder
                                     resume_args model_overrides)

seeds=$build/fuzz-seeds corpus=$build/fuzz-corpus findings=$build/fuzz-findings
rm -rf "$seeds"
"$build/fuzz/fuzz_seeds" "$seeds" || exit 1
# Leaks count as findings; 512 MB is the most one allocation may ask for (a hostile size that
# got through would ask for more), and 10 s the most one input may take.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
status=0
for t in "${targets[@]}"; do
  mkdir -p "$corpus/$t" "$findings/$t"
  log=$build/fuzz-$t.log
  "$build/fuzz/fuzz_$t" "$corpus/$t" "$seeds/$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$findings/$t/" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  if [ $rc -eq 0 ]; then
    printf 'fuzz_%-16s %10s executions in %ss, no finding\n' "$t" "${execs:-?}" "$seconds"
  else
    printf 'fuzz_%-16s FINDING after %s executions (exit %d): see %s and %s\n' "$t" "${execs:-?}" \
      "$rc" "$log" "$findings/$t/"
    status=1
  fi
done
exit $status
