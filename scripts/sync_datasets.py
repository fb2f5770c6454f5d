"""Developer tool: copy ../shared/data into the package (gzipped) with factor levels and provenance.

Run from the repository root: ``python scripts/sync_datasets.py``.  The package never
reads ../shared itself.
"""
import glob
import gzip
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "src", "mixedfx", "datasets", "data")

PROVENANCE = {
    "sleepstudy": ("lme4", "Reaction times under sleep deprivation (Belenky et al. 2003, J Sleep Res 12:1-12)."),
    "insteval": ("lme4", "Lecture evaluations at ETH Zurich: students s rate lecturers d (InstEval)."),
    "cbpp": ("lme4", "Contagious bovine pleuropneumonia incidence in Ethiopian zebu herds (Lesnoff et al. 2004)."),
    "grouseticks": ("lme4", "Ticks on red grouse chicks (Elston et al. 2001, Parasitology 122:563-569)."),
    "verbagg": ("lme4", "Verbal aggression item responses (De Boeck and Wilson 2004)."),
    "dyestuff": ("lme4", "Yield of dyestuff by batch of intermediate product (Davies and Goldsmith 1972)."),
    "dyestuff2": ("lme4", "Simulated data with the structure of Dyestuff, no batch effect "
                          "(Davies and Goldsmith 1972)."),
    "penicillin": ("lme4", "Penicillin potency: 6 samples on 24 plates, crossed (Davies and Goldsmith 1972)."),
    "pastes": ("lme4", "Paste strength: casks nested in batches (Davies and Goldsmith 1972)."),
    "cake": ("lme4", "Breakage angle of chocolate cakes by recipe and baking temperature (Cook 1938)."),
}


def main():
    levels = {}
    for ref in sorted(glob.glob(os.path.join(SHARED, "reference", "*.json"))):
        d = json.load(open(ref))
        levels.setdefault(d["data"], {}).update(d.get("factor_levels", {}))
    os.makedirs(OUT, exist_ok=True)
    manifest = {}
    for csv in sorted(glob.glob(os.path.join(SHARED, "data", "*.csv"))):
        name = os.path.splitext(os.path.basename(csv))[0]
        with open(csv, "rb") as src, gzip.GzipFile(os.path.join(OUT, name + ".csv.gz"), "wb", mtime=0) as dst:
            shutil.copyfileobj(src, dst)
        key = next((k for k in levels if k.lower() == name.lower()), None)
        package, text = PROVENANCE.get(name, ("", ""))
        manifest[name] = {"factors": levels.get(key, {}), "source_package": package, "description": text}
    with open(os.path.join(OUT, "datasets.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    print(f"wrote {len(manifest)} datasets to {OUT}")


if __name__ == "__main__":
    main()
