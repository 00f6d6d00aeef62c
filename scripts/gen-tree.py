#!/usr/bin/env python3
"""Writes a governance-like tree of many files for anchoring benchmarks.

usage: gen-tree.py DIR [FILES] [DEPTH] [SEED]

FILES files (default 20000) spread over directories DEPTH levels deep
(default 8) under DIR/tree, sizes mostly 1-64 KiB (log-uniform) with a few up to 4 MiB,
random content. The seed (random unless given) is printed first so a run
can be repeated exactly. Also writes DIR/appliance.json whose rules select
the files with ** globs.
"""
import os, random, sys

def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else random.SystemRandom().randrange(1 << 31)
    print(f"seed {seed}", flush=True)
    rnd = random.Random(seed)
    # A tree of directories: 4 wide at the top, 2 below; the
    # files go to random directories at random depths (mostly the deepest).
    dirs = []
    def walk(prefix, level):
        dirs.append(prefix)
        if level == depth:
            return
        for i in range(2 if level > 1 else 4):
            walk(f"{prefix}/{level:02d}_d{i}", level + 1)
    walk("tree", 0)
    deep = [d for d in dirs if d.count("/") >= depth - 2]
    exts = [".yaml", ".md", ".json", ".rego", ".py"]
    total = 0
    for i in range(n):
        d = rnd.choice(deep) if rnd.random() < 0.9 else rnd.choice(dirs)
        r = rnd.random()
        if r < 0.002:
            size = rnd.randint(256 << 10, 4 << 20)
        elif r < 0.02:
            size = rnd.randint(64 << 10, 256 << 10)
        else:
            # log-uniform: many small files, as in a real governance tree
            size = int(1024 * 64 ** rnd.random())
        p = os.path.join(out, d, f"f{i:05d}{rnd.choice(exts)}")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(rnd.randbytes(size))
        total += size
    with open(os.path.join(out, "appliance.json"), "w") as f:
        f.write('{"anchor": {"rules": [{"match": ["*"], "globs": '
                '["tree/**/*.{yaml,md,json}", "tree/**/*.rego", "tree/**/*.py"]}]}}\n')
    print(f"{n} files, {total} bytes, {len(dirs)} directories, depth {depth}", flush=True)

main()
