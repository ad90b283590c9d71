// Runs the Node suites against a real Ferry: `sdk-tests/` (the official @nangohq/node client) and
// `e2e/` (headless Debian Chromium through playwright-core driving @nangohq/frontend).
//
//   scripts/test-node [node --test flags, e.g. --test-name-pattern=metadata]
//
// Steps: install Debian's chromium when missing (apt-get, as root), `cargo build --locked`,
// `npm ci` in both folders, start `target/debug/ferry dev` on free ports with a temp data dir, wait
// for its `secret key (dev)` line, run every `*.test.mjs` with `node --test`, stop Ferry (also on
// failure or interrupt), print a summary. Exits non-zero when a test fails or Ferry cannot start.
//
// Environment: FERRY_NODE_SKIP_BUILD=1 skips cargo build; FERRY_BIN overrides the binary;
// FERRY_NODE_KEEP=1 keeps the temp dir (Ferry's log and data dir; kept anyway on failure);
// FERRY_E2E_ARTIFACTS names the screenshot dir (default: a new temp dir, always kept).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const suites = ['sdk-tests', 'e2e'];
const CHROMIUM = '/usr/bin/chromium';
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 10_000;

const say = (line) => console.log(`[test-node] ${line}`);
const work = mkdtempSync(join(tmpdir(), 'ferry-test-node-'));
let ferry;
const notes = [];

function fail(message) {
    say(`FAILED: ${message}`);
    return 1;
}

/** Runs a command with inherited output; returns its exit status. */
function run(command, args, options = {}) {
    say(`$ ${command} ${args.join(' ')}${options.cwd ? `   (in ${relative(root, options.cwd) || '.'})` : ''}`);
    const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options });
    if (result.error) {
        say(`${command}: ${result.error.message}`);
        return 127;
    }
    return result.status ?? 1;
}

let testRun;

/** Like run(), without blocking the event loop (so an interrupt still stops Ferry). */
function runAsync(command, args, options = {}) {
    say(`$ ${command} ${args.join(' ')}`);
    return new Promise((resolve) => {
        testRun = spawn(command, args, { stdio: 'inherit', cwd: root, ...options });
        testRun.once('error', (err) => {
            say(`${command}: ${err.message}`);
            resolve(127);
        });
        testRun.once('exit', (code, signal) => {
            testRun = undefined;
            resolve(code ?? (signal ? 128 : 1));
        });
    });
}

function commandExists(command) {
    return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** Debian's chromium for the e2e suite: installed when missing, or a clear reason why not. */
function ensureChromium() {
    if (existsSync(CHROMIUM)) {
        return;
    }
    if (!commandExists('apt-get')) {
        notes.push(`e2e skipped: ${CHROMIUM} is missing and apt-get is not available to install it`);
        say(notes.at(-1));
        return;
    }
    const asRoot = process.getuid?.() === 0;
    const sudo = !asRoot && commandExists('sudo') && spawnSync('sudo', ['-n', 'true']).status === 0;
    if (!asRoot && !sudo) {
        notes.push(`e2e skipped: ${CHROMIUM} is missing and installing it needs root (run: apt-get update && apt-get install -y chromium)`);
        say(notes.at(-1));
        return;
    }
    say(`${CHROMIUM} is missing: installing Debian's chromium`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const apt = (args) => (sudo ? run('sudo', ['-n', 'apt-get', ...args], { env }) : run('apt-get', args, { env }));
    if (apt(['update']) !== 0 || apt(['install', '-y', 'chromium']) !== 0 || !existsSync(CHROMIUM)) {
        notes.push('e2e skipped: installing chromium with apt-get failed');
        say(notes.at(-1));
    }
}

/** True when TCP `port` on 127.0.0.1 can be bound now. */
function portFree(port) {
    return new Promise((resolve) => {
        const server = createServer();
        server.once('error', () => resolve(false));
        server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
}

/** An ephemeral port the OS hands out. */
function ephemeralPort() {
    return new Promise((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

/** Ferry's port and the first of three consecutive free ports for the emulator. */
async function choosePorts() {
    const ferryPort = await ephemeralPort();
    for (let attempt = 0; attempt < 50; attempt++) {
        const base = await ephemeralPort();
        if (base + 2 > 65535 || [base, base + 1, base + 2].includes(ferryPort)) {
            continue;
        }
        if ((await portFree(base)) && (await portFree(base + 1)) && (await portFree(base + 2))) {
            return { ferryPort, emulatorPort: base };
        }
    }
    throw new Error('no three consecutive free ports found for the emulator');
}

/** Starts `ferry dev`, resolves with the dev secret key once it prints it. */
function startFerry(bin, { ferryPort, emulatorPort }) {
    const dataDir = join(work, 'data');
    const logPath = join(work, 'ferry.log');
    const log = openSync(logPath, 'a');
    const args = ['dev', '--port', String(ferryPort), '--emulator-port', String(emulatorPort), '--data-dir', dataDir];
    say(`$ ${relative(root, bin)} ${args.join(' ')}   (log: ${logPath})`);
    ferry = spawn(bin, args, { cwd: root, stdio: ['ignore', 'pipe', log], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' } });
    const lines = createInterface({ input: ferry.stdout });
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`ferry dev printed no "secret key (dev)" line within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
        const seen = [];
        lines.on('line', (line) => {
            seen.push(line);
            const m = line.match(/^\s*secret key \(dev\):\s*(\S+)\s*$/);
            if (m) {
                clearTimeout(timer);
                resolve({ secretKey: m[1], logPath });
            }
        });
        ferry.once('error', (err) => {
            clearTimeout(timer);
            reject(err);
        });
        ferry.once('exit', (code, signal) => {
            clearTimeout(timer);
            reject(new Error(`ferry dev exited (${signal ?? `code ${code}`}) before it was ready; stdout:\n${seen.join('\n')}\nstderr (tail):\n${tail(logPath)}`));
        });
    });
}

function tail(path, lines = 40) {
    try {
        return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
        return '';
    }
}

/** Stops Ferry: SIGINT (its Ctrl-C shutdown), then SIGKILL after a grace period. */
async function stopFerry() {
    const child = ferry;
    ferry = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
        return;
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    say('ferry stopped');
}

process.on('exit', () => {
    if (ferry && ferry.exitCode === null) {
        ferry.kill('SIGKILL');
    }
});
for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, async () => {
        say(`${signal}: stopping`);
        testRun?.kill(signal);
        await stopFerry();
        process.exit(130);
    });
}

/** Every `*.test.mjs` under the suites, node_modules excluded. */
function testFiles() {
    const found = [];
    const walk = (dir) => {
        for (const name of readdirSync(dir).sort()) {
            if (name === 'node_modules' || name.startsWith('.')) {
                continue;
            }
            const path = join(dir, name);
            if (statSync(path).isDirectory()) {
                walk(path);
            } else if (name.endsWith('.test.mjs')) {
                found.push(relative(root, path));
            }
        }
    };
    for (const suite of suites) {
        walk(join(root, suite));
    }
    return found;
}

/** Totals from a TAP file written by node's test runner. */
function tapTotals(path) {
    const totals = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
    let text = '';
    try {
        text = readFileSync(path, 'utf8');
    } catch {
        return totals;
    }
    for (const [, key, value] of text.matchAll(/^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) {
        totals[key] = Number(value);
    }
    const failures = [...text.matchAll(/^\s*not ok \d+ - (.*)$/gm)].map((m) => m[1]);
    return { ...totals, failures };
}

async function main() {
    if (!process.env.FERRY_BIN && process.env.FERRY_NODE_SKIP_BUILD !== '1') {
        if (run('cargo', ['build', '--locked']) !== 0) {
            return fail('cargo build --locked');
        }
    }
    const bin = process.env.FERRY_BIN ?? join(root, 'target', 'debug', 'ferry');
    if (!existsSync(bin)) {
        return fail(`no Ferry binary at ${bin}`);
    }
    ensureChromium();
    for (const suite of suites) {
        const cwd = join(root, suite);
        const install = existsSync(join(cwd, 'package-lock.json')) ? ['ci'] : ['install'];
        if (run('npm', [...install, '--no-audit', '--no-fund'], { cwd }) !== 0) {
            return fail(`npm ${install[0]} in ${suite}`);
        }
    }

    const ports = await choosePorts();
    let started;
    try {
        started = await startFerry(bin, ports);
    } catch (err) {
        await stopFerry();
        return fail(err.message);
    }
    const env = {
        ...process.env,
        FERRY_URL: `http://localhost:${ports.ferryPort}`,
        FERRY_SECRET_KEY: started.secretKey,
        FERRY_EMULATOR_URL: `http://127.0.0.1:${ports.emulatorPort}`,
        FERRY_EMULATOR_SANDBOX_URL: `http://127.0.0.1:${ports.emulatorPort + 1}`,
        FERRY_E2E_ARTIFACTS: process.env.FERRY_E2E_ARTIFACTS ?? mkdtempSync(join(tmpdir(), 'ferry-e2e-screenshots-')),
    };
    mkdirSync(env.FERRY_E2E_ARTIFACTS, { recursive: true });
    say(`ferry ready: FERRY_URL=${env.FERRY_URL} FERRY_EMULATOR_URL=${env.FERRY_EMULATOR_URL} FERRY_EMULATOR_SANDBOX_URL=${env.FERRY_EMULATOR_SANDBOX_URL}`);

    const files = testFiles();
    const tap = join(work, 'results.tap');
    const nodeFlags = typeof WebSocket === 'undefined' && Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket'] : [];
    let status;
    try {
        status = await runAsync(
            process.execPath,
            [
                ...nodeFlags,
                '--test',
                '--test-reporter=spec',
                '--test-reporter-destination=stdout',
                '--test-reporter=tap',
                `--test-reporter-destination=${tap}`,
                ...process.argv.slice(2),
                ...files,
            ],
            { env },
        );
    } finally {
        await stopFerry();
    }

    const totals = tapTotals(tap);
    say('---- summary ----');
    say(`test files: ${files.join(', ')}`);
    for (const note of notes) {
        say(note);
    }
    for (const failure of totals.failures ?? []) {
        say(`not ok: ${failure}`);
    }
    if (status !== 0) {
        say(`ferry log (tail of ${started.logPath}):\n${tail(started.logPath, 30)}`);
    }
    say(`screenshots: ${env.FERRY_E2E_ARTIFACTS}`);
    if (totals.cancelled) {
        say(`${totals.cancelled} cancelled`);
    }
    closingLine = `node: ${totals.pass} passed, ${totals.fail + totals.cancelled} failed, ${totals.skipped + totals.todo} skipped`;
    return status === 0 ? 0 : status || 1;
}

let closingLine;
const code = await main().catch(async (err) => {
    await stopFerry();
    console.error(err);
    return 1;
});
if (process.env.FERRY_NODE_KEEP !== '1' && code === 0) {
    rmSync(work, { recursive: true, force: true });
} else {
    say(`kept ${work} (ferry.log, data dir, results.tap)`);
}
if (closingLine) {
    console.log(closingLine);
}
process.exit(code);
