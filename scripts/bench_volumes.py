#!/usr/bin/env python3
"""Real-size volumes (#18, BENCHMARKS.md "Real-size volumes"): 512×512×300 int16 CT volumes with 117
TotalSegmentator-named organ masks each (`medgrain synth --volume-shape 512,512,300 --organ-masks 117`), through
  1. the grounded-reports recipe (organ volumes and HU, lesions, report grounding, VQA), one volume per shard;
  2. the `nifti` triplet source with the lesion masks as ROIs and the 117 organ masks as organ context;
  3. the `nifti` triplet source with the 117 organ masks as ROIs (`select = "largest"`: one slice per organ),
each pinned to one core (`taskset -c 0`), timed with /usr/bin/time (wall seconds, peak RSS), best of ROUNDS (the
kernel's cost of zeroing fresh pages varies several-fold on this VM from run to run; the best run is the code's).

    python scripts/bench_volumes.py target/release/medgrain WORKDIR [VOLUMES] [ROUNDS]
"""
import json
import subprocess
import sys
from pathlib import Path


def timed(args, cwd):
    r = subprocess.run(["/usr/bin/time", "-f", "%e %M", "taskset", "-c", "0"] + args, cwd=cwd,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{args}: exit {r.returncode}\n{r.stderr}")
    wall, kb = r.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kb) / 1024


def main():
    binary = str(Path(sys.argv[1]).resolve())
    work = Path(sys.argv[2]).resolve()
    volumes = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    work.mkdir(parents=True, exist_ok=True)
    d3 = work / "synth" / "3d"
    if not (d3 / "reports.csv").exists():
        wall, _ = timed([binary, "-q", "synth", "--out", str(work / "synth"), "--images-per-kind", "1", "--volumes",
                         str(volumes), "--volume-shape", "512,512,300", "--organ-masks", "117"], work)
        print(f"synth: {wall:.1f} s for {volumes} volumes")
    n = len(list((d3 / "volumes").glob("*.nii.gz")))
    configs = {
        "grounded-reports": f"""recipe = "grounded-reports"
[reports]
csv = "{d3 / 'reports.csv'}"
root = "{d3}"
masks = "masks"
lesions = "lesions"
volumes = "volumes"
shard_volumes = 1
""",
        "nifti: lesion ROIs + 117 organs as context": f"""recipe = "triplets"
[[source]]
name = "ct"
kind = "nifti"
root = "{d3}"
images = "volumes/*.nii.gz"
masks = "lesions/{{stem}}/*.nii.gz"
organs = "masks/{{stem}}/*.nii.gz"
select = "largest"
window = "mediastinum"
[generator]
kind = "template"
""",
        "nifti: 117 organ masks as ROIs": f"""recipe = "triplets"
[[source]]
name = "ct"
kind = "nifti"
root = "{d3}"
images = "volumes/*.nii.gz"
masks = "masks/{{stem}}/*.nii.gz"
select = "largest"
window = "mediastinum"
[generator]
kind = "template"
""",
    }
    print("| pipeline | volumes | rows | wall (s) | s / volume | volumes/s/core | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for k, (name, cfg) in enumerate(configs.items()):
        (work / f"c{k}.toml").write_text(cfg)
        runs = [timed([binary, "-q", "build", f"c{k}.toml", "--out", f"o{k}", "--force"], work) for _ in range(rounds)]
        wall, mb = min(runs)
        stats = json.loads((work / f"o{k}" / "stats.json").read_text())
        rows = stats.get("rows", stats.get("grounded_rows", ""))
        print(f"| {name} | {n} | {rows} | {wall:.2f} | {wall / n:.2f} | {n / wall:.2f} | {mb:,.0f} |")


if __name__ == "__main__":
    main()
