#!/usr/bin/env python3
"""Top-level module graph of src/ from `crate::X` paths; prints edges and any cycle (SCCs)."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
edges = {}
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, root)
        top = rel.split(os.sep)[0].removesuffix('.rs')
        if top in ('main', 'lib'): continue
        text = open(p).read()
        text = re.sub(r'#\[cfg\(test\)\]\s*mod tests \{.*', '', text, flags=re.S)
        text = '\n'.join(l for l in text.split('\n') if not l.strip().startswith('//'))
        for m in re.finditer(r'crate::(\w+)', text):
            t = m.group(1)
            if t != top:
                edges.setdefault(top, set()).add(t)
nodes = sorted(set(edges) | {t for v in edges.values() for t in v})
index = {}; low = {}; stack = []; on = set(); sccs = []; c = [0]
def strong(v):
    index[v] = low[v] = c[0]; c[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index: strong(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in nodes:
    if v not in index: strong(v)
for v in nodes:
    print(f"{v} -> {', '.join(sorted(edges.get(v, ())))}")
print("cycles:", sccs if sccs else "none")
sys.exit(1 if sccs else 0)
