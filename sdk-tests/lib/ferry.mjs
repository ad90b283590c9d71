// Where the running Ferry and its Salesforce emulator are (set by scripts/test-node), and the
// OAuth connect flow walked over plain HTTP.

import { Browser, isRedirect, loginAndConsent } from './browserless.mjs';

export const env = {
    ferryUrl: process.env.FERRY_URL?.replace(/\/$/, ''),
    secretKey: process.env.FERRY_SECRET_KEY,
    emulatorUrl: process.env.FERRY_EMULATOR_URL?.replace(/\/$/, ''),
    emulatorSandboxUrl: process.env.FERRY_EMULATOR_SANDBOX_URL?.replace(/\/$/, ''),
};

/** Why the suite cannot run, or false when every variable is set. */
export const missingEnv = (() => {
    const missing = Object.entries({
        FERRY_URL: env.ferryUrl,
        FERRY_SECRET_KEY: env.secretKey,
        FERRY_EMULATOR_URL: env.emulatorUrl,
        FERRY_EMULATOR_SANDBOX_URL: env.emulatorSandboxUrl,
    })
        .filter(([, v]) => !v)
        .map(([k]) => k);
    return missing.length ? `${missing.join(', ')} not set: start Ferry with scripts/test-node` : false;
})();

export const DEMO_PASSWORD = 'ferry-demo-password';
export const PRODUCTION_USER = 'admin@acme.example';
export const SANDBOX_USER = 'admin@acme.example.sandbox';

/** `GET /__emulator/state` → the org named `name` (with its `instance_url`). */
export async function emulatorOrg(name) {
    const response = await fetch(`${env.emulatorUrl}/__emulator/state`);
    if (response.status !== 200) {
        throw new Error(`GET /__emulator/state answered ${response.status}`);
    }
    const state = await response.json();
    const org = (state.orgs ?? []).find((o) => o.name === name);
    if (!org) {
        throw new Error(`no org named ${name} in the emulator: ${JSON.stringify(state.orgs?.map((o) => o.name))}`);
    }
    return org;
}

/** `GET {instanceUrl}/services/data/v59.0/limits` with a bearer token → the HTTP status. */
export async function limitsStatus(instanceUrl, accessToken) {
    const response = await fetch(`${instanceUrl.replace(/\/$/, '')}/services/data/v59.0/limits`, {
        headers: { authorization: `Bearer ${accessToken}` },
    });
    await response.arrayBuffer();
    return response.status;
}

/** Ferry's `GET /oauth/connect/{integration}` URL with the query the frontend would send. */
export function connectUrl(integration, token, { wsClientId, params = {} } = {}) {
    let url = `${env.ferryUrl}/oauth/connect/${integration}?connect_session_token=${token}`;
    for (const [k, v] of Object.entries(params)) {
        url += `&params[${k}]=${encodeURIComponent(v)}`;
    }
    if (wsClientId) {
        url += `&ws_client_id=${wsClientId}`;
    }
    return url;
}

/**
 * Walks the whole OAuth flow as a browser would: Ferry's connect URL → 302 to the emulator's
 * authorize page → log in → consent with `decision` → the emulator's redirect to Ferry's
 * callback → Ferry's answer. Returns `{authorize, callback, browser}`, where `authorize` is the
 * emulator URL Ferry redirected to and `callback` Ferry's final response.
 */
export async function connectOverHttp(integration, token, { username = PRODUCTION_USER, password = DEMO_PASSWORD, decision = 'Allow', wsClientId, params } = {}) {
    const browser = new Browser();
    const start = await browser.request(connectUrl(integration, token, { wsClientId, params }));
    if (!isRedirect(start.status) || !start.location) {
        throw new Error(`GET /oauth/connect/${integration} answered ${start.status} instead of a redirect to the emulator:\n${start.text.slice(0, 1500)}`);
    }
    const authorize = start.location;
    const page = await browser.follow(authorize);
    if (page.status !== 200) {
        throw new Error(`the emulator's authorize page answered ${page.status}:\n${page.text.slice(0, 1500)}\n${browser.describe()}`);
    }
    const redirect = await loginAndConsent(browser, page, { username, password, decision });
    if (!redirect.location.startsWith(`${env.ferryUrl}/oauth/callback`)) {
        throw new Error(`the emulator redirected to ${redirect.location}, not Ferry's callback\n${browser.describe()}`);
    }
    const callback = await browser.request(redirect.location);
    return { authorize, callback, browser };
}

/**
 * Awaits a promise that must reject with an HTTP error from @nangohq/node (axios) and returns
 * `{status, data}` of the error response.
 */
export async function httpError(promise) {
    try {
        const value = await promise;
        throw Object.assign(new Error(`expected an HTTP error, got success: ${JSON.stringify(value?.data ?? value)?.slice(0, 500)}`), { unexpected: true });
    } catch (err) {
        if (err.unexpected) {
            throw err;
        }
        if (!err.response) {
            throw err;
        }
        return { status: err.response.status, data: err.response.data };
    }
}

export function randomSuffix() {
    return Math.random().toString(36).slice(2, 10);
}
