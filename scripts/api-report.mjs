#!/usr/bin/env node
// API reports of @sage/saga-outbox: one etc/<name>.api.md per entry point of the package's
// "exports" map, made by API Extractor from the built .d.ts in libs/saga-outbox/dist (run
// `npm run build:lib` first). A committed report is the reviewed public surface: a pull request
// that changes the surface changes a report, and the diff says how.
//
//   node scripts/api-report.mjs --check    CI: exit 1 when a committed report differs (or is missing)
//   node scripts/api-report.mjs --update   rewrite libs/saga-outbox/etc/*.api.md
//
// API Extractor analyses one entry point per run; the runs share one TypeScript program and reuse
// libs/saga-outbox/api-extractor.json with the entry's .d.ts and report name swapped in.
// Symbols that a public type references but no entry exports (ae-forgotten-export) are written
// into the reports as warnings, with their declarations (includeForgottenExports: a change to such
// a type changes the surface too), and listed at the end, without failing the run. TSDoc syntax
// warnings are printed and do not fail it either; errors (e.g. TypeScript diagnostics) do.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CompilerState,
  ConsoleMessageId,
  Extractor,
  ExtractorConfig,
  ExtractorLogLevel,
  ExtractorMessageCategory,
} from '@microsoft/api-extractor';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const packageDir = path.join(repoRoot, 'libs/saga-outbox');
const configPath = path.join(packageDir, 'api-extractor.json');
const packageJsonPath = path.join(packageDir, 'package.json');
const reportDir = path.join(packageDir, 'etc');
const UPDATE_COMMAND = 'npm run api:report'; // = npm run build:lib && node scripts/api-report.mjs --update

const mode = parseMode(process.argv.slice(2));
const entries = entryPoints();

const missing = entries.filter((entry) => !existsSync(entry.typesPath));
if (missing.length > 0) {
  fail(
    `missing built declarations: ${missing.map((e) => rel(e.typesPath)).join(', ')}\n` +
      'Build the package first: npm run build:lib',
  );
}

const tempDir = mkdtempSync(path.join(tmpdir(), 'sage-api-report-'));
try {
  process.exitCode = run();
} finally {
  rmSync(tempDir, { recursive: true, force: true });
}

function run() {
  const baseConfig = ExtractorConfig.loadFile(configPath);
  const configs = entries.map((entry) =>
    ExtractorConfig.prepare({
      configObject: {
        ...baseConfig,
        mainEntryPointFilePath: entry.typesPath,
        apiReport: {
          ...baseConfig.apiReport,
          reportFileName: entry.reportName,
          reportTempFolder: tempDir,
        },
      },
      configObjectFullPath: configPath,
      packageJsonFullPath: packageJsonPath,
    }),
  );
  // One program for all entry points: parsing the .d.ts and their dependencies once.
  const compilerState = CompilerState.create(configs[0], {
    additionalEntryPoints: entries.map((entry) => entry.typesPath),
  });

  const changed = [];
  const problems = new Set();
  let errors = 0;
  for (const [index, entry] of entries.entries()) {
    let diff = '';
    const result = Extractor.invoke(configs[index], {
      localBuild: mode === 'update',
      compilerState,
      printApiReportDiff: mode === 'check',
      messageCallback: (message) => {
        message.handled = true; // printed below, our way
        if (message.category === ExtractorMessageCategory.Console) {
          if (message.messageId === ConsoleMessageId.ApiReportDiff) diff = message.text;
          // Report changes are judged from result.apiReportChanged; the rest is chatter.
          if (message.logLevel !== ExtractorLogLevel.Error)
            message.logLevel = ExtractorLogLevel.None;
        }
        if (
          message.logLevel === ExtractorLogLevel.Error ||
          message.logLevel === ExtractorLogLevel.Warning
        ) {
          // TypeScript diagnostics are the shared program's: the same for every entry point.
          const where =
            message.category === ExtractorMessageCategory.Compiler ? 'TypeScript' : entry.specifier;
          problems.add(
            `${where}: ${message.logLevel}: ${message.formatMessageWithLocation(repoRoot + path.sep)}`,
          );
        }
      },
    });
    errors += result.errorCount;
    if (result.apiReportChanged) changed.push({ entry, diff });
  }

  if (problems.size > 0) {
    console.error(
      `API Extractor warnings and errors (${problems.size}; only errors fail the run):`,
    );
    for (const problem of problems) console.error(`  ${problem}`);
  }
  printForgottenExports(compilerState.program);

  if (errors > 0) {
    console.error('\nAPI Extractor reported errors (see above): the built .d.ts are broken.');
    return 1;
  }
  const stale = staleReports();
  if (mode === 'update') {
    for (const file of stale) rmSync(path.join(reportDir, file));
    const written = changed.map(({ entry }) => rel(entry.reportPath));
    console.log(
      written.length > 0
        ? `API reports updated: ${written.join(', ')}`
        : `API reports are up to date (${entries.length} entry points).`,
    );
    if (stale.length > 0)
      console.log(`Removed reports of entry points that no longer exist: ${stale.join(', ')}`);
    return 0;
  }
  if (changed.length === 0 && stale.length === 0) {
    console.log(`API reports are up to date (${entries.length} entry points).`);
    return 0;
  }
  console.error('\nThe public API of @sage/saga-outbox differs from the committed API reports:');
  for (const { entry, diff } of changed) {
    console.error(
      `\n  ${entry.specifier}  →  ${rel(entry.reportPath)}${existsSync(entry.reportPath) ? '' : ' (missing)'}`,
    );
    if (diff)
      console.error(indent(truncate(diff.replace(/^Changes to the API report:\s*/, ''), 80)));
  }
  for (const file of stale)
    console.error(`\n  ${rel(path.join(reportDir, file))}: no such entry point any more`);
  console.error(
    `\nIf the change is intended, run \`${UPDATE_COMMAND}\`, review \`git diff libs/saga-outbox/etc\` ` +
      'and commit it with the change (a removed or changed signature is a breaking change: ' +
      'docs/releasing.md).',
  );
  return 1;
}

/** The package's entry points, from the "exports" map (the single source of truth). */
function entryPoints() {
  const { exports } = JSON.parse(readFileSync(packageJsonPath, 'utf8'));
  return Object.entries(exports)
    .filter(([, target]) => typeof target === 'object' && target.types)
    .map(([key, target]) => {
      const subpath = key.replace(/^\.\/?/, '').replaceAll('/', '-');
      const reportName = subpath ? `saga-outbox-${subpath}` : 'saga-outbox';
      return {
        specifier: `@sage/saga-outbox${key.slice(1)}`,
        typesPath: path.join(packageDir, target.types),
        reportName,
        reportPath: path.join(reportDir, `${reportName}.api.md`),
      };
    });
}

/** Committed reports that match no entry point (an entry was removed or renamed). */
function staleReports() {
  if (!existsSync(reportDir)) return [];
  const expected = new Set(entries.map((entry) => path.basename(entry.reportPath)));
  return readdirSync(reportDir).filter((file) => file.endsWith('.api.md') && !expected.has(file));
}

/**
 * Lists the ae-forgotten-export warnings of the reports by symbol: those no entry point exports
 * (users cannot name the type) first, then those another entry point exports (importable from there).
 */
function printForgottenExports(program) {
  const checker = program.getTypeChecker();
  const exportedBy = new Map();
  for (const entry of entries) {
    const source = program.getSourceFile(entry.typesPath);
    const moduleSymbol = source && checker.getSymbolAtLocation(source);
    for (const symbol of moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : []) {
      exportedBy.set(symbol.name, [...(exportedBy.get(symbol.name) ?? []), entry.specifier]);
    }
  }
  const usedBy = new Map();
  for (const entry of entries) {
    const reportPath =
      mode === 'update' ? entry.reportPath : path.join(tempDir, `${entry.reportName}.api.md`);
    if (!existsSync(reportPath)) continue;
    const report = readFileSync(reportPath, 'utf8');
    for (const [, name] of report.matchAll(/\(ae-forgotten-export\) The symbol "([^"]+)"/g)) {
      const users = usedBy.get(name) ?? new Set();
      users.add(entry.specifier);
      usedBy.set(name, users);
    }
  }
  if (usedBy.size === 0) return;
  const nowhere = [];
  const elsewhere = new Map(); // exporting entry points → names
  for (const name of [...usedBy.keys()].sort()) {
    const exporters = exportedBy.get(name.replace(/_\d+$/, '')) ?? [];
    if (exporters.length === 0) nowhere.push(name);
    else
      elsewhere.set(exporters.join(', '), [...(elsewhere.get(exporters.join(', ')) ?? []), name]);
  }
  console.log(
    `ae-forgotten-export: ${usedBy.size} symbols referenced by public types but not exported by the ` +
      'entry point using them (marked in the reports; not a failure)',
  );
  if (nowhere.length > 0) {
    console.log(`  not exported by any entry point (${nowhere.length}):\n${wrap(nowhere)}`);
  }
  for (const [exporters, names] of elsewhere) {
    console.log(
      `  exported by ${exporters}, importable from there (${names.length}):\n${wrap(names)}`,
    );
  }
}

/** Names, comma-separated, in lines of at most 100 characters, indented. */
function wrap(names) {
  const lines = [];
  let line = '   ';
  for (const name of names) {
    if (line.length + name.length + 2 > 100) {
      lines.push(line);
      line = '   ';
    }
    line += ` ${name},`;
  }
  lines.push(line.replace(/,$/, ''));
  return lines.join('\n');
}

function parseMode(args) {
  const usage = 'usage: node scripts/api-report.mjs --check | --update';
  if (args.length !== 1 || !['--check', '--update'].includes(args[0])) fail(usage);
  return args[0].slice(2);
}

function rel(file) {
  return path.relative(repoRoot, file);
}

function indent(text) {
  return text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}

function truncate(text, maxLines) {
  const lines = text.trimEnd().split('\n');
  if (lines.length <= maxLines) return lines.join('\n');
  return [...lines.slice(0, maxLines), `… ${lines.length - maxLines} more lines`].join('\n');
}

function fail(message) {
  console.error(`api-report: ${message}`);
  process.exit(2);
}
