/**
 * The names among `candidates` that look like a typo of `name`: at most `max`, closest first. Close means
 * an edit distance (insertions, deletions, substitutions, swaps of neighbours) of at most 1 for short
 * names and 2 from six characters on. @internal
 */
export function closeMatches(name: string, candidates: Iterable<string>, max = 3): string[] {
  const limit = name.length >= 6 ? 2 : 1;
  const found: { readonly candidate: string; readonly distance: number }[] = [];
  for (const candidate of candidates) {
    if (candidate === name || Math.abs(candidate.length - name.length) > limit) continue;
    const distance = editDistance(name, candidate);
    if (distance <= limit) found.push({ candidate, distance });
  }
  return found.sort((a, b) => a.distance - b.distance || (a.candidate < b.candidate ? -1 : 1)).slice(0, max).map((f) => f.candidate);
}

/** Optimal string alignment distance (Damerau-Levenshtein without repeated edits of one substring). */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d = new Uint32Array(rows * cols);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(d, (i - 1) * cols + j) + 1, at(d, i * cols + j - 1) + 1, at(d, (i - 1) * cols + j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(d, (i - 2) * cols + j - 2) + 1);
      d[i * cols + j] = best;
    }
  }
  return at(d, rows * cols - 1);
}

function at(d: Uint32Array, i: number): number {
  return d[i] ?? 0;
}
