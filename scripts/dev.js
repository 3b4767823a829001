#!/usr/bin/env node
'use strict';
/**
 * npm run dev: compiles the server and recompiles on every change of src/ (tsc --watch), and
 * runs it, restarted whenever the compiled files or the contract change (node --watch, Node 20+).
 * Logs are printed for people (pino-pretty): NODE_ENV=development and LOG_PRETTY=true unless the
 * environment says otherwise (a .env file does not: the server reads it after these are set).
 * Ctrl-C stops both.
 */
const { spawn } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const env = { ...process.env, NODE_ENV: process.env.NODE_ENV || 'development', LOG_PRETTY: process.env.LOG_PRETTY || 'true' };
const children = new Set();
let stopping = false;

function run(args, opts = {}) {
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: opts.stdio ?? 'inherit' });
  children.add(child);
  child.on('exit', (code, signal) => {
    children.delete(child);
    if (stopping) {
      if (children.size === 0) process.exit(0);
      return;
    }
    // One of the two gave up (a tsc crash, the server failing to start): stop the other too.
    process.stderr.write(`dev: ${path.basename(args[args.length - 1])} exited (${signal ?? code}); stopping\n`);
    stop(code === 0 ? 1 : (code ?? 1));
  });
  return child;
}

function stop(exitCode = 0) {
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  if (children.size === 0) process.exit(exitCode);
  // Whatever still runs after the server's own shutdown bound is not coming back.
  setTimeout(() => process.exit(exitCode), 15_000).unref();
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

// The server starts after tsc's first pass, so it never runs a half-written dist/.
const tsc = run([require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--watch', '--preserveWatchOutput'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let server;
tsc.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  if (server === undefined && /Watching for file changes/.test(String(chunk))) {
    // --watch-path: the compiled files and the contract (read at start-up, not required).
    server = run(['--watch', '--watch-path=dist', '--watch-path=openapi.yaml', '--watch-preserve-output', 'dist/server.js']);
  }
});
