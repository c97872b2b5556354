#!/usr/bin/env bash
# The main job, end to end on a fresh machine: set up, export the real pretrained MobileNetV2,
# then `onnxviz microscope` (inspect, mine over real photos, render and check units, a site in one
# resumable command), a few more kinds of pictures, and the site in site/.
# CPU-only friendly (about 10-15 minutes on 2 cores, plus about 7 for the MACO renders, accentuations
# and reliability checks at STEPS=256). STEPS=32 bash scripts/demo.sh for a quick look.
# Outputs: models/, runs/mobilenet_v2/, site/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
STEPS=${STEPS:-256}
ACCENT_STEPS=${ACCENT_STEPS:-$(( STEPS < 64 ? STEPS : 64 ))}  # accentuations start from a photo: fewer steps
RUN=runs/mobilenet_v2
MODEL=models/mobilenet_v2.onnx

echo "== 1/5 export the real pretrained MobileNetV2 (weights shipped in a pip package) =="
python scripts/export.py --list   # the zoo: every recipe (Microscope's eight models too) and where its weights come from
[ -f "$MODEL" ] || python scripts/export.py mobilenet_v2 --out models/

echo "== 2/5 gather real photos that ship inside installed packages =="
python scripts/collect_photos.py data/photos

echo "== 3/5 the microscope: inspect, mine every layer, render + check units of two layers (FFT and MACO) =="
# one resumable command (rerun it after a kill and it continues); it prints its plan and estimate
# first and ends with where the time went (runs/mobilenet_v2/summary.json)
onnxviz microscope "$MODEL" data/photos --out "$RUN" --layers block_7,block_14 --units 0-7 --maco \
  --steps "$STEPS" --top 8 --concepts 32   # + 32 NMF concepts of block_14, mined in the graph

echo "== 4/5 beyond one unit: concept renders, accentuations, diversity, classes, DeepDream, a caricature =="
# the microscope's concepts read back, four of them rendered and checked against their own examples
onnxviz concepts "$MODEL" --run "$RUN" --layer block_14 --method nmf --concepts 32 --top 8 --bottom 8 --render 0-3 --steps "$ACCENT_STEPS"
for layer in block_7 block_14; do
  onnxviz render "$MODEL" --layer "$layer" --units 0-3 --accentuate top --top 2 --steps "$ACCENT_STEPS" --run "$RUN"
done
onnxviz render "$MODEL" "block_7:12" --diversity 4 --steps "$STEPS" --run "$RUN"
for cls in 207 323; do  # golden retriever, monarch butterfly
  onnxviz render "$MODEL" "logits:$cls" --objective class_logit --steps "$STEPS" --run "$RUN"
done
onnxviz render "$MODEL" --deepdream block_7 --image data/photos/skimage_astronaut.png --steps 64 --run "$RUN"
onnxviz render "$MODEL" --caricature block_7 --image data/photos/skimage_chelsea.png --steps "$STEPS" --run "$RUN"

echo "== 5/5 the site, with the pictures of step 4 =="
onnxviz site "$MODEL" --run "$RUN" --out site/
echo
echo "Done. Open site/index.html in a browser, or run: onnxviz serve site/ --port 8000"
