/**
 * Every `import … from '@sage/saga-outbox…'` in the README and docs/ names an entry point the
 * package exports and symbols that entry point really exports (types included), so a reader who
 * copies a snippet gets code that compiles against the package.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const ROOT = join(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'libs/saga-outbox/package.json'), 'utf8')) as {
  exports: Record<string, string | { default: string }>;
};

const entryFiles = new Map<string, string>(
  Object.entries(pkg.exports).flatMap(([subpath, target]) =>
    typeof target === 'string'
      ? []
      : [
          [
            `@sage/saga-outbox${subpath.slice(1)}`,
            join(
              ROOT,
              'libs/saga-outbox',
              target.default.replace('./dist/', 'src/').replace(/\.js$/, '.ts'),
            ),
          ] as const,
        ],
  ),
);

function exportsOf(files: string[]): Map<string, Set<string>> {
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    experimentalDecorators: true,
    skipLibCheck: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  return new Map(
    files.map((file) => {
      const symbol = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
      return [file, new Set(checker.getExportsOfModule(symbol).map((s) => s.name))];
    }),
  );
}

const docs = [
  join(ROOT, 'README.md'),
  join(ROOT, 'libs/saga-outbox/README.md'),
  ...readdirSync(join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.md') && !f.startsWith('api'))
    .map((f) => join(ROOT, 'docs', f)),
];

interface DocImport {
  doc: string;
  from: string;
  names: string[];
}

const imports: DocImport[] = docs.flatMap((doc) => {
  let text: string;
  try {
    text = readFileSync(doc, 'utf8');
  } catch {
    return [];
  }
  return [
    ...text.matchAll(/import\s+(?:type\s+)?\{([^}]*)\}\s+from\s+'(@sage\/saga-outbox[^']*)'/g),
  ].map((m) => ({
    doc: doc.slice(ROOT.length + 1),
    from: m[2]!,
    names: m[1]!
      .split(',')
      .map(
        (n) =>
          n
            .trim()
            .replace(/^type\s+/, '')
            .split(/\s+as\s+/)[0]!,
      )
      .filter(Boolean),
  }));
});

describe('imports shown in the README and docs/', () => {
  const exported = exportsOf([...entryFiles.values()]);

  it('finds the imports (the check looks at something)', () => {
    expect(imports.length).toBeGreaterThan(10);
  });

  it('use exported entry points and names only', () => {
    const problems = imports.flatMap(({ doc, from, names }) => {
      const file = entryFiles.get(from);
      if (!file) return [`${doc}: ${from} is not an entry point of the package`];
      const available = exported.get(file)!;
      return names
        .filter((n) => !available.has(n))
        .map((n) => `${doc}: ${n} is not exported by ${from}`);
    });
    expect(problems).toEqual([]);
  });
});
