#!/usr/bin/env bash
# Checks @sage/saga-outbox as it would be published: builds it, packs it, and checks the tarball:
#   - contents: LICENSE, README.md, package.json, the entry points and the bins (with a shebang);
#     no tests or test support; every dist/ file reachable from an entry point or a bin; every
#     shipped src/ file compiled; every source and declaration map pointing at shipped files;
#   - publint --strict (package.json exports, files, types) on the tarball;
#   - attw --profile node16 (types resolve for node16 CJS and ESM importers and for bundlers; the
#     profile leaves out only node10 resolution, which cannot see subpath exports);
#   - the API reports (scripts/api-report.mjs --check) and the API reference
#     (scripts/api-docs.mjs --check) are current.
# Runs every check, then fails if any failed. The tarball stays in SAGE_PACK_DIR (default: a new
# temporary directory); its path is the last line of the output and is written to
# $SAGE_PACK_DIR/tarball-path (the consumer test takes it as SAGE_TARBALL).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

PACK_DIR="${SAGE_PACK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sage-pack.XXXXXX")}"
mkdir -p "$PACK_DIR"
PACK_DIR="$(cd "$PACK_DIR" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sage-check-package.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

FAILED=()
# check NAME COMMAND...: runs one check; a failure is recorded and the next check still runs.
check() {
  local name="$1"
  shift
  echo
  echo "== $name"
  if "$@"; then echo "ok: $name"; else FAILED+=("$name"); fi
}

echo "== build"
npm run --silent build:lib

echo "== pack"
# npm's report lists every file: kept in a file, as it outgrows one command-line argument (128 kB).
pack_json="$WORK/pack.json"
if ! npm pack ./libs/saga-outbox --pack-destination "$PACK_DIR" --json >"$pack_json" 2>"$WORK/pack.log"; then
  cat "$WORK/pack.log" >&2
  echo "check-package: npm pack failed" >&2
  exit 1
fi
tarball="$PACK_DIR/$(node -e 'console.log(JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"))[0].filename)' "$pack_json")"
node -e '
  const [p] = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  const kB = (n) => `${(n / 1024).toFixed(1)} kB`;
  console.log(`tarball:  ${p.filename}`);
  console.log(`packed:   ${kB(p.size)}`);
  console.log(`unpacked: ${kB(p.unpackedSize)}`);
  console.log(`files:    ${p.entryCount}`);
' "$pack_json"
mkdir "$WORK/tarball"
tar -xzf "$tarball" -C "$WORK/tarball"

check "tarball contents" node - "$WORK/tarball/package" <<'EOF'
// What is in the tarball, judged from the extracted files (not from the repository).
const fs = require('node:fs');
const path = require('node:path');
const dir = process.argv[2];
const files = [];
(function walk(sub) {
  for (const name of fs.readdirSync(path.join(dir, sub))) {
    const rel = sub ? `${sub}/${name}` : name;
    if (fs.statSync(path.join(dir, rel)).isDirectory()) walk(rel);
    else files.push(rel);
  }
})('');
const has = new Set(files);
const problems = [];

// Required files.
const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
const targets = [pkg.main, pkg.types, ...Object.values(pkg.bin ?? {})];
for (const target of Object.values(pkg.exports ?? {})) {
  if (typeof target === 'string') targets.push(target);
  else targets.push(...Object.values(target));
}
const entries = [...new Set(targets.filter(Boolean).map((t) => path.posix.normalize(t)))];
for (const file of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/bin/sage.js', 'dist/bin/sage-relay.js', ...entries]) {
  if (!has.has(file)) problems.push(`missing: ${file}`);
}
for (const bin of Object.values(pkg.bin ?? {})) {
  const file = path.join(dir, bin);
  const first = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n', 1)[0] : '';
  if (first !== '#!/usr/bin/env node') problems.push(`${path.posix.normalize(bin)}: first line is "${first}", not "#!/usr/bin/env node"`);
}

// No tests, no test support.
const forbidden = [
  /\.(spec|int-spec|e2e-spec)\.(ts|js|d\.ts|js\.map|d\.ts\.map)$/,
  /-test-support\.(ts|js|d\.ts)$/,
  /(^|\/)(__tests__|__mocks__|fixtures)\//,
];
for (const file of files) {
  if (forbidden.some((re) => re.test(file))) problems.push(`test file shipped: ${file}`);
}

// Every dist/ file reachable from an entry point or a bin: follow require()/import of relative
// paths in .js, imports and references in .d.ts, and sourceMappingURL comments.
const reached = new Set();
const queue = entries.filter((e) => e.startsWith('dist/'));
const resolveFrom = (from, spec) => {
  const base = path.posix.join(path.posix.dirname(from), spec);
  const ext = from.endsWith('.d.ts') ? ['.d.ts', '/index.d.ts', ''] : ['', '.js', '/index.js', '.json'];
  return ext.map((e) => base + e).find((candidate) => has.has(candidate));
};
while (queue.length > 0) {
  const file = queue.pop();
  if (reached.has(file) || !has.has(file)) continue;
  reached.add(file);
  // A module's .js and .d.ts go together (a types-only module's .js is reached through its .d.ts).
  if (file.endsWith('.js')) queue.push(file.replace(/\.js$/, '.d.ts'));
  if (file.endsWith('.d.ts')) queue.push(file.replace(/\.d\.ts$/, '.js'));
  if (file.endsWith('.map')) continue;
  const text = fs.readFileSync(path.join(dir, file), 'utf8');
  const specs = [
    ...text.matchAll(/require\(\s*["'](\.{1,2}\/[^"']*)["']\s*\)/g),
    ...text.matchAll(/\bfrom\s+["'](\.{1,2}\/[^"']*)["']/g),
    ...text.matchAll(/\bimport\(\s*["'](\.{1,2}\/[^"']*)["']\s*\)/g),
    ...text.matchAll(/\/\/\/\s*<reference\s+path=["']([^"']+)["']/g),
  ].map((m) => m[1]);
  for (const spec of specs) {
    const target = resolveFrom(file, spec);
    if (target) queue.push(target);
    else problems.push(`${file}: "${spec}" does not resolve to a file in the tarball`);
  }
  const map = text.match(/\/\/# sourceMappingURL=(\S+)\s*$/);
  if (map) {
    const target = path.posix.join(path.posix.dirname(file), map[1]);
    if (has.has(target)) queue.push(target);
    else problems.push(`${file}: source map ${map[1]} is not in the tarball`);
  }
}
for (const file of files) {
  if (file.startsWith('dist/') && !reached.has(file)) problems.push(`dist file reached by no entry point: ${file}`);
}

// Source and declaration maps point at shipped sources; every shipped source was compiled.
const mapped = new Set();
for (const file of files.filter((f) => f.startsWith('dist/') && f.endsWith('.map'))) {
  const { sources = [] } = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  for (const source of sources) {
    const target = path.posix.join(path.posix.dirname(file), source);
    mapped.add(target);
    if (!has.has(target)) problems.push(`${file}: source ${source} is not in the tarball`);
  }
}
for (const file of files) {
  if (file.startsWith('src/') && !mapped.has(file)) problems.push(`src file compiled into no dist file (test-only?): ${file}`);
}

const count = (prefix) => files.filter((f) => f.startsWith(prefix)).length;
console.log(`${files.length} files: dist ${count('dist/')}, src ${count('src/')}, other: ${files.filter((f) => !/^(dist|src)\//.test(f)).join(', ')}`);
if (problems.length > 0) {
  for (const problem of problems) console.error(`  ${problem}`);
  process.exit(1);
}
EOF

check "publint --strict" npx --no-install publint run "$tarball" --strict
# --profile node16: node16 (CJS and ESM importers) and bundler resolution; node10, which ignores
# "exports" and so cannot resolve the subpath entry points, is the only resolution left out.
check "attw --profile node16" npx --no-install attw "$tarball" --profile node16 --no-emoji
check "API reports" node scripts/api-report.mjs --check
check "API reference (docs/api)" node scripts/api-docs.mjs --check

echo "$tarball" >"$PACK_DIR/tarball-path"
echo
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "check-package: FAILED: $(IFS=,; echo "${FAILED[*]}" | sed 's/,/, /g')" >&2
  echo "$tarball"
  exit 1
fi
echo "check-package: all checks passed"
echo "$tarball"
