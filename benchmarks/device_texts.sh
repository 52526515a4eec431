#!/usr/bin/env bash
# The per-text part of benchmarks/holds.py on a lent machine's CPU cores (two pinned cores a cell):
# Seinfeld's scripts at char level and 0.3 MB of the plays, the 5-minute default beside ladder sizes.
# Run from the repository root with:  OUT=DIR DATA=DIR bash benchmarks/device_texts.sh
set -u
: "${OUT:?}" "${DATA:?}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
head -c 300000 "$DATA/shakespeare_1mb.txt" > /tmp/plays_300k.txt
python3 -m benchmarks.holds --text "seinfeld-char=$DATA/Seinfeld_Scripts.txt" --budgets 5 --repeats 1 \
  --sizes 2x256,2x384,2x512 --parallel 4 --cores-per-run 2 --first-core 0 --work /tmp/holds \
  --out "$OUT/holds-seinfeld" >"$OUT/seinfeld.log" 2>&1 &
python3 -m benchmarks.holds --text "plays-300k=/tmp/plays_300k.txt" --budgets 5 --repeats 1 \
  --sizes 1x128,2x128,2x256 --parallel 4 --cores-per-run 2 --first-core 8 --work /tmp/holds \
  --out "$OUT/holds-300k" >"$OUT/300k.log" 2>&1 &
wait
