import { spawnSync } from 'node:child_process';
import { COMMANDS, runCli } from '../cli';
import { EXIT_OK, EXIT_USAGE } from '../cli-errors';

async function sage(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    env: {},
    out: (t) => void (stdout += t),
    err: (t) => void (stderr += t),
  });
  return { code, stdout, stderr };
}

/** Runs bash's completion function on a command line (`sage sagas r` → COMP_WORDS) and returns COMPREPLY. */
function complete(script: string, line: string): string[] {
  const words = line.split(' ');
  const program = `${script}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length - 1}
_sage
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const run = spawnSync('bash', ['--norc', '--noprofile', '-c', program], { encoding: 'utf8' });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return run.stdout.split('\n').filter(Boolean).sort();
}

describe('sage completion', () => {
  it.each(['bash', 'zsh'])(
    'the %s script names every command word and every option',
    async (shell) => {
      const { code, stdout } = await sage(['completion', shell]);
      expect(code).toBe(EXIT_OK);
      expect(COMMANDS.length).toBeGreaterThan(15);
      for (const c of COMMANDS) {
        expect(stdout).toContain(`"${c.path.join(' ')}")`);
        for (const option of Object.keys(c.options)) expect(stdout).toContain(`--${option}`);
      }
      for (const command of ['sagas retry', 'sagas compensate', 'completion'])
        expect(stdout).toContain(`"${command}")`);
    },
  );

  it('refuses another shell', async () => {
    const { code, stderr } = await sage(['completion', 'fish']);
    expect(code).toBe(EXIT_USAGE);
    expect(stderr).toContain('the shell must be one of bash, zsh; got "fish"');
  });

  it('bash: completes command words, then the options of the command typed', async () => {
    const { stdout: script } = await sage(['completion', 'bash']);
    expect(complete(script, 'sage sa')).toEqual(['sagas']);
    expect(complete(script, 'sage sagas ')).toEqual(['compensate', 'list', 'retry', 'show']);
    expect(complete(script, 'sage sagas r')).toEqual(['retry']);
    expect(complete(script, 'sage outbox dead-letters re')).toEqual(['replay']);
    expect(complete(script, 'sage sagas retry --y')).toEqual(['--yes']);
    expect(complete(script, 'sage sagas compensate --json --op')).toEqual(['--operator']);
    expect(complete(script, 'sage sagas list --st')).toEqual(['--stalled-after', '--status']);
  });

  it('zsh: the script parses (zsh -n: read, do not run)', async () => {
    const { stdout: script } = await sage(['completion', 'zsh']);
    const run = spawnSync('zsh', ['-n', '-c', script], { encoding: 'utf8' });
    if (run.error)
      throw new Error(`zsh is needed (scripts/test-all.sh installs it): ${run.error.message}`);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(script.startsWith('#compdef sage\n')).toBe(true);
  });
});
