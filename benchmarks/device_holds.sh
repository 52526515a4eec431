#!/usr/bin/env bash
# The default's repeats and the ladder beside them (benchmarks/holds.py) on a lent machine's CPU cores,
# eight cells at once, two pinned cores each: 5 minutes, then 2 minutes, on ~1 MB of the plays.
# Run from the repository root with:  OUT=DIR DATA=DIR bash benchmarks/device_holds.sh
set -u
: "${OUT:?}" "${DATA:?}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
text="plays-1mb=$DATA/shakespeare_1mb.txt"
{ date -u; lscpu | grep -E "Model name|^CPU\(s\)"; python3 -c "import torch; print('torch', torch.__version__)"; } >"$OUT/holds.log" 2>&1
python3 -m benchmarks.holds --text "$text" --budgets 5 --repeats 5 --sizes 2x256,2x384,2x512 \
  --parallel 8 --cores-per-run 2 --work /tmp/holds --out "$OUT/holds-5" >>"$OUT/holds.log" 2>&1
python3 -m benchmarks.holds --text "$text" --budgets 2 --repeats 5 --sizes 1x128,2x256,2x384 \
  --parallel 8 --cores-per-run 2 --work /tmp/holds --out "$OUT/holds-2" >>"$OUT/holds.log" 2>&1
echo "done $(date -u)" >>"$OUT/holds.log"
