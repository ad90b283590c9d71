// What the browser tests share: where Ferry is, a tiny static server for a page that loads
// @nangohq/frontend's ESM files, headless Debian Chromium, and bounded waits on conditions.

import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

export const env = {
    ferryUrl: process.env.FERRY_URL?.replace(/\/$/, ''),
    secretKey: process.env.FERRY_SECRET_KEY,
    emulatorUrl: process.env.FERRY_EMULATOR_URL?.replace(/\/$/, ''),
};

export const CHROMIUM = process.env.FERRY_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser tests cannot run, or false. */
export const cannotRun = (() => {
    const missing = ['FERRY_URL', 'FERRY_SECRET_KEY', 'FERRY_EMULATOR_URL'].filter((k) => !process.env[k]);
    if (missing.length) {
        return `${missing.join(', ')} not set: start Ferry with scripts/test-node`;
    }
    if (!existsSync(CHROMIUM)) {
        return `no Chromium at ${CHROMIUM}: install it with apt-get install -y chromium (scripts/test-node does)`;
    }
    return false;
})();

export const LAUNCH_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
];

/** Launches headless Chromium through playwright-core (never a downloaded browser). */
export async function launchChromium() {
    const { chromium } = await import('playwright-core');
    return chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
}

let artifactsDir = process.env.FERRY_E2E_ARTIFACTS;

/** Where a screenshot named `name` goes: under $FERRY_E2E_ARTIFACTS, or a new temp dir. */
export function screenshotPath(name) {
    artifactsDir ??= mkdtempSync(join(tmpdir(), 'ferry-e2e-'));
    mkdirSync(artifactsDir, { recursive: true });
    return join(artifactsDir, name);
}

const here = dirname(fileURLToPath(import.meta.url));
const frontendDist = dirname(fileURLToPath(import.meta.resolve('@nangohq/frontend')));

/**
 * Serves `e2e/pages/*.html` at `/` and @nangohq/frontend's dist ESM files under `/frontend/`, on
 * 127.0.0.1 with an ephemeral port. Returns `{url, close}`.
 */
export async function startStaticServer() {
    const pages = join(here, '..', 'pages');
    const server = createServer((req, res) => {
        const path = new URL(req.url, 'http://x').pathname;
        let file;
        let type;
        if (path.startsWith('/frontend/')) {
            file = normalize(join(frontendDist, path.slice('/frontend/'.length)));
            type = 'text/javascript; charset=utf-8';
            if (!file.startsWith(frontendDist)) {
                file = undefined;
            }
        } else if (/^\/[a-z0-9-]+\.html$/.test(path)) {
            file = join(pages, path.slice(1));
            type = 'text/html; charset=utf-8';
        }
        if (!file || !existsSync(file)) {
            res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
            return;
        }
        res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(readFileSync(file));
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address();
    return {
        url: `http://127.0.0.1:${port}`,
        close: () =>
            new Promise((resolve) => {
                server.closeAllConnections?.();
                server.close(() => resolve());
            }),
    };
}

/**
 * Polls `condition` (sync or async) until it returns a truthy value, at most `timeoutMs`;
 * throws `describe()` on timeout.
 */
export async function waitFor(condition, { timeoutMs = 20_000, intervalMs = 100, describe = () => 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
        try {
            const value = await condition();
            if (value) {
                return value;
            }
        } catch (err) {
            last = err;
        }
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}${last ? ` (last error: ${last.message})` : ''}`);
}

/** Calls Ferry's API with the secret key; returns `{status, body}`. */
export async function ferryApi(method, path, body) {
    const response = await fetch(`${env.ferryUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${env.secretKey}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed;
    try {
        parsed = JSON.parse(text);
    } catch {
        parsed = text;
    }
    return { status: response.status, body: parsed };
}

/** `POST /connect/sessions` for an end user and the given integrations → `data`. */
export async function createConnectSession(endUserId, allowedIntegrations) {
    const { status, body } = await ferryApi('POST', '/connect/sessions', {
        end_user: { id: endUserId, email: `${endUserId}@example.com`, display_name: `E2E ${endUserId}` },
        allowed_integrations: allowedIntegrations,
    });
    if (status !== 201) {
        throw new Error(`POST /connect/sessions answered ${status}: ${JSON.stringify(body)}`);
    }
    return body.data;
}

export function randomSuffix() {
    return Math.random().toString(36).slice(2, 10);
}
