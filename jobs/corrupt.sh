#!/usr/bin/env bash
# Random-byte corruption of every kind of pref file (issue 22, docs/design.md "Errors"): small
# valid files of each kind are made with pref, then N damaged copies of each (random bytes
# overwritten at random places, a random block overwritten, or the file truncated), and each
# copy is read by the commands that read that kind and by pref_read_file (the io readers, for
# kinds no command reads, e.g. scores files). What must hold, for every run:
#   - exit code 0 or 2 (never 1, a signal, an MPI abort);
#   - no hang (each run under a time limit);
#   - nothing left behind: no <out>.partial.* file, and no output file when the run failed.
#
#   bash jobs/corrupt.sh [N] [DIR]       N damaged copies per kind (default 100), in DIR
#                                         (default /tmp/pref-corrupt.$$; removed when all pass)
# Environment: PREF_BUILD_DIR (default build/), PREF_RANKS (default "1 2": runs alternate),
# PREF_TIMEOUT (seconds per run, default 120), PREF_SEED (default 1), PREF_KINDS (the kinds to run,
# default all: labels responses model embeddings types adapted checkpoint scores).
# Prints one line per kind and a summary; exits 1 when any run broke a rule (listed in
# DIR/failures.txt, with each failing copy kept).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
N="${1:-100}"
DIR="${2:-${TMPDIR:-/tmp}/pref-corrupt.$$}"
BUILD="${PREF_BUILD_DIR:-$root/build}"
PREF="$BUILD/solver/pref"
READ="$BUILD/tests/pref_read_file"
RANKS=(${PREF_RANKS:-1 2})
TIMEOUT="${PREF_TIMEOUT:-120}"
SEED="${PREF_SEED:-1}"
for b in "$PREF" "$READ"; do
  [ -x "$b" ] || { echo "corrupt.sh: $b not built (cmake --build $BUILD --target pref pref_read_file)" >&2; exit 2; }
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$DIR/valid" "$DIR/damaged" "$DIR/out"
: >"$DIR/failures.txt"
log() { echo "[corrupt $(date +%H:%M:%S)] $*" >&2; }

run() {  # run RANKS ARGS...: pref under mpirun, output to the run log
  local np=$1; shift
  timeout -k 10 "$TIMEOUT" mpirun -q --oversubscribe -np "$np" "$PREF" "$@" >>"$DIR/run.log" 2>&1
}
must() { run 1 "$@" || { echo "corrupt.sh: setting up failed: pref $*" >&2; exit 2; }; }

# ---- small valid files of every kind
V="$DIR/valid"
log "making the valid files in $V"
must generate --users 200 --comparisons 40 --answers-per-user 16 --new-users 6 \
  --new-user-answers 16 --seed 2 --out "$V/labels.h5"
must generate --users 200 --comparisons 40 --responses-per-prompt 4 --embedding-dim 4 \
  --answers-per-user 16 --new-users 6 --new-user-answers 16 --seed 3 --out "$V/responses.h5"
must fit --data "$V/labels.h5" --rank 2 --max-sweeps 3 --checkpoint-dir "$V/ckpt" \
  --checkpoint-every 1 --out "$V/model.h5"
cp "$(ls "$V"/ckpt/ckpt-*.h5 | sort | tail -n 1)" "$V/checkpoint.h5"
must fit --data "$V/responses.h5" --rank 2 --max-sweeps 3 --items embeddings --residual \
  --out "$V/embeddings.h5"
must types --model "$V/model.h5" --data "$V/labels.h5" --types 4 --rounds 1 --out "$V/types.h5"
must adapt --model "$V/embeddings.h5" --data "$V/responses.h5" --answers 4 --out "$V/adapted.h5"
must score --model "$V/embeddings.h5" --responses "$V/responses.h5" --users 0:20 \
  --best-of-N --out "$V/scores.h5"

# ---- the commands that read each kind: "{}" is the damaged file, "{out}" an output path
declare -A READERS
READERS[labels]='inspect {}
evaluate --model MODEL --data {}
fit --data {} --rank 2 --max-sweeps 1 --out {out}'
READERS[responses]='score --model EMB --responses {} --users 0:5 --out {out}
fit --data {} --rank 2 --max-sweeps 1 --items embeddings --out {out}'
READERS[model]='evaluate --model {} --data LABELS
adapt --model {} --data LABELS --answers 2 --out {out}
types --model {} --data LABELS --types 2 --rounds 0 --out {out}'
READERS[embeddings]='score --model {} --responses RESPONSES --users 0:5 --best-of-N --out {out}
evaluate --model {} --data RESPONSES'
READERS[types]='adapt --types {} --data LABELS --answers 2 --out {out}'
READERS[adapted]='score --model EMB --responses RESPONSES --adapted {} --out {out}'
READERS[checkpoint]='fit --data LABELS --rank 2 --max-sweeps 3 --checkpoint-dir {dir} --resume --out {out}'
READERS[scores]=''
declare -A READ_KIND=([labels]=labels [responses]=labels [model]=model [embeddings]=model
  [types]=types [adapted]=adapted [checkpoint]=checkpoint [scores]=scores)

# ---- damage: N copies of each kind (python: reproducible from PREF_SEED)
python3 - "$V" "$DIR/damaged" "$N" "$SEED" <<'EOF'
import os, random, sys
src, dst, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for kind in ["labels", "responses", "model", "embeddings", "types", "adapted", "checkpoint", "scores"]:
    data = open(os.path.join(src, kind + ".h5"), "rb").read()
    rng = random.Random(f"{seed}-{kind}")
    for i in range(n):
        b = bytearray(data)
        how = i % 4
        if how == 0:    # a few random bytes
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif how == 1:  # many random bytes
            for _ in range(rng.randint(9, 200)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif how == 2:  # a random block
            a = rng.randrange(len(b)); m = rng.randint(1, 4096)
            b[a:a + m] = bytes(rng.randrange(256) for _ in range(len(b[a:a + m])))
        else:           # truncated
            b = b[: rng.randrange(len(b))]
        open(os.path.join(dst, f"{kind}-{i:04d}.h5"), "wb").write(bytes(b))
EOF

# ---- read every copy, check the rules
fail=0
total=0
k=0
for kind in ${PREF_KINDS:-labels responses model embeddings types adapted checkpoint scores}; do
  counts=""
  declare -A seen=([0]=0 [2]=0)
  for f in "$DIR/damaged/$kind"-*.h5; do
    name="$(basename "$f" .h5)"
    cmds=("read ${READ_KIND[$kind]}")
    while IFS= read -r line; do [ -n "$line" ] && cmds+=("$line"); done <<<"${READERS[$kind]}"
    for c in "${cmds[@]}"; do
      np=${RANKS[$((k % ${#RANKS[@]}))]}
      k=$((k + 1))
      total=$((total + 1))
      out="$DIR/out/$name.out.h5"
      ckdir="$DIR/out/$name.ckpt"
      rm -rf "$out" "$ckdir"
      if [ "${c%% *}" = read ]; then
        timeout -k 10 "$TIMEOUT" "$READ" "${c#read }" "$f" >>"$DIR/run.log" 2>&1
        code=$?
      else
        if [[ "$c" == *"{dir}"* ]]; then mkdir -p "$ckdir"; cp "$f" "$ckdir/ckpt-000001.h5"; fi
        args="${c//\{\}/$f}"
        args="${args//\{out\}/$out}"
        args="${args//\{dir\}/$ckdir}"
        args="${args//LABELS/$V/labels.h5}"
        args="${args//RESPONSES/$V/responses.h5}"
        args="${args//MODEL/$V/model.h5}"
        args="${args//EMB/$V/embeddings.h5}"
        # shellcheck disable=SC2086  # the command's words
        run "$np" $args
        code=$?
      fi
      seen[$code]=$(( ${seen[$code]:-0} + 1 ))
      problem=""
      if [ "$code" -ne 0 ] && [ "$code" -ne 2 ]; then problem="exit code $code"; fi
      [ "$code" -eq 124 ] || [ "$code" -eq 137 ] && problem="hung (killed after $TIMEOUT s)"
      if ls "$DIR/out/$name".out.h5.partial.* >/dev/null 2>&1; then problem+=" partial file left"; fi
      if [ "$code" -ne 0 ] && [ -e "$out" ]; then problem+=" output left by a failed run"; fi
      if [ -n "$problem" ]; then
        fail=$((fail + 1))
        echo "$kind $name (np $np): $c: $problem" >>"$DIR/failures.txt"
        cp "$f" "$DIR/failures-$name.h5"
      fi
      rm -rf "$out" "$ckdir"
    done
  done
  for code in "${!seen[@]}"; do counts+=" exit $code: ${seen[$code]}"; done
  log "$kind: $N damaged copies;$counts"
  unset seen
done
log "$total runs, $fail broke a rule"
if [ "$fail" -gt 0 ]; then
  cat "$DIR/failures.txt" >&2
  exit 1
fi
[ -z "${2:-}" ] && rm -rf "$DIR"
exit 0
