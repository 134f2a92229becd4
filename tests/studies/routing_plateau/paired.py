"""Per-seed normalized AIQ gain of key routers, and paired differences vs router / task (same curve set)."""
import glob, json, re, sys, numpy as np
s = sys.argv[1]; keys = sys.argv[2].split(",")
rows = {}
for p in sorted(glob.glob(f"results/{s}_*.json")):
    m = re.fullmatch(rf"results/{s}_(\d+)(.*)\.json", p)
    if m and "inner" not in m.group(2):
        for k, v in json.load(open(p))[0]["rows"].items():
            rows.setdefault(int(m.group(1)), {})[k] = v
for k in keys:
    g = [rows[x][k]["gain_aiq"] for x in sorted(rows) if k in rows[x]]
    d_r = [rows[x][k]["gain_aiq"] - rows[x]["router"]["gain_aiq"] for x in sorted(rows) if k in rows[x]]
    d_t = [rows[x][k]["gain_aiq"] - rows[x][k]["same_set"]["task"]["gain_aiq"] if "same_set" in rows[x][k] else np.nan for x in sorted(rows) if k in rows[x]]
    d_k = [rows[x][k]["gain_aiq"] - rows[x][k]["same_set"]["knn"]["gain_aiq"] if "same_set" in rows[x][k] else np.nan for x in sorted(rows) if k in rows[x]]
    print(f"{k:34s} gain per seed {np.round(g,3)}  -router {np.mean(d_r):+.3f}±{np.std(d_r,ddof=1):.3f}  -task {np.nanmean(d_t):+.3f}  -knn {np.nanmean(d_k):+.3f}")
