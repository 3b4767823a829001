// Preloaded by the npm scripts that run compiled code (`node -r ./scripts/fresh-build.js
// dist/cli/users.js`): a dist/ that is missing, or older than src/, is refused in one line
// instead of failing with a stack trace or quietly running yesterday's code. One stat per file
// of src/ (about a millisecond), so the command still starts at once.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const main = process.argv[1];

/** The newest modification time of any file under `dir`. */
function newest(dir) {
  let latest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(file) : fs.statSync(file).mtimeMs);
  }
  return latest;
}

function refuse(why) {
  process.stderr.write(`${why}: run \`npm run build\` first.\n`);
  process.exit(1);
}

if (!main) refuse('no script to run');
const shown = path.relative(process.cwd(), main) || main;
if (!fs.existsSync(main)) refuse(`${shown} is missing`);
// tsc writes every output on each build, so the entry point's time is the build's.
const src = path.join(root, 'src');
if (fs.existsSync(src) && newest(src) > fs.statSync(main).mtimeMs) refuse(`${shown} is older than src/`);
