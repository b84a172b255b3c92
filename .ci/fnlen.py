#!/usr/bin/env python3
"""Lists functions in src/ longer than N lines (default 120): brace matching from each `fn` line."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 120
pat = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)')
out = []
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p = os.path.join(dp, f)
        lines = open(p).read().split('\n')
        i = 0
        while i < len(lines):
            m = pat.match(lines[i])
            if m:
                depth = 0; started = False; j = i
                while j < len(lines):
                    code = re.sub(r"'(\\.|[^'\\])'", "''", re.sub(r'"([^"\\]|\\.)*"', '""', lines[j])).split('//')[0]
                    for ch in code:
                        if ch == '{': depth += 1; started = True
                        elif ch == '}': depth -= 1
                    if started and depth <= 0: break
                    if not started and code.rstrip().endswith(';'): break
                    j += 1
                n = j - i + 1
                if started and n > limit:
                    out.append((n, p, i + 1, m.group(6)))
            i += 1
for n, p, l, name in sorted(out, reverse=True):
    print(f'{n:5} {p}:{l} {name}')
