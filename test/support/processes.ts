/**
 * Starting the apps as real OS processes for cross-process tests: `tsx apps/<app>/src/main.ts`
 * from the repository root (where tsx finds the @tessera/* paths), with a controlled environment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Variables that would silently change which database, bus or config a child uses. */
const INHERITED_OVERRIDES = [
  'CONFIG_FILE', 'SERVER_NAME', 'DATABASE_URL', 'NATS_URL', 'REDIS_URL', 'SIGNING_KEY_PATH', 'CLIENT_PORT', 'FEDERATION_PORT',
  'HEALTH_PORT', 'DATA_DIR', 'BUS_PREFIX', 'BIND_ADDRESS', 'TLS_CERTIFICATE_PATH', 'TLS_PRIVATE_KEY_PATH', 'LOG_LEVEL',
];

export interface AppProcess {
  name: string;
  child: ChildProcess;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
}

/**
 * What `npm start` runs: its prestart build (tools/build-homeserver.mjs), then node with the
 * start script's arguments (package.json's start is `node <args>`). Pass the result to startApp.
 */
export async function buildNpmStart(): Promise<string[]> {
  const tool = pathToFileURL(join(REPO_ROOT, 'tools/build-homeserver.mjs')).href;
  const { buildHomeserver } = (await import(tool)) as { buildHomeserver: () => Promise<void> };
  await buildHomeserver();
  const { scripts } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const [command, ...args] = scripts.start!.trim().split(/\s+/);
  if (command !== 'node') throw new Error(`package.json's start script is not "node <args>": ${scripts.start}`);
  return args;
}

/** Starts `apps/<app>` through tsx, or node with `args` (e.g. buildNpmStart()'s). */
export function startApp(app: string, env: Record<string, string>, args = ['--import', 'tsx', `apps/${app}/src/main.ts`]): AppProcess {
  // node --import tsx, not the tsx CLI: the CLI relays SIGTERM and, when the child does not
  // acknowledge within 30 ms (a loaded machine), SIGKILLs it and exits 143.
  return startCommand(app, process.execPath, args, env);
}

/** Starts any command from the repository root with the same controlled environment as startApp. */
export function startCommand(name: string, command: string, args: string[], env: Record<string, string>): AppProcess {
  const childEnv: Record<string, string | undefined> = { ...process.env };
  for (const variable of INHERITED_OVERRIDES) delete childEnv[variable];
  Object.assign(childEnv, { LOG_LEVEL: 'warn' }, env);
  const child = spawn(command, args, { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  return { name, child, output: () => output, exited };
}

/** A port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Waits until `url` answers 200, failing early (with the process output) if the process exits.
 * Bounded: gives up after `attempts` polls 250 ms apart.
 */
export async function waitUntilReady(proc: AppProcess, url: string, attempts = 240): Promise<void> {
  let exitCode: number | string | undefined;
  void proc.exited.then((code) => (exitCode = code));
  for (let i = 0; i < attempts; i++) {
    if (exitCode !== undefined) throw new Error(`${proc.name} exited (${exitCode}) before it was ready:\n${proc.output()}`);
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${proc.name} was not ready at ${url}:\n${proc.output()}`);
}

/** SIGTERM, then the exit code; SIGKILL if it has not exited after a bounded wait. */
export async function stopApp(proc: AppProcess): Promise<number | string> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.exited;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 20_000);
  const code = await proc.exited;
  clearTimeout(timer);
  return code;
}
