// Headless Debian Chromium (playwright-core) against a running Ferry: @nangohq/frontend's auth()
// popup flow from a page of ours, and Ferry's Connect UI opened from a connect_link, both logging
// in to the Salesforce emulator and allowing access.
// Needs FERRY_URL, FERRY_SECRET_KEY, FERRY_EMULATOR_URL (scripts/test-node sets them) and /usr/bin/chromium.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
    cannotRun,
    createConnectSession,
    env,
    ferryApi,
    launchChromium,
    randomSuffix,
    screenshotPath,
    startStaticServer,
    waitFor,
} from './lib/harness.mjs';

const USERNAME = 'admin@acme.example';
const PASSWORD = 'ferry-demo-password';
const STEP_TIMEOUT = 20_000;

/** The first page of the context that is on the emulator and shows its login form. */
async function emulatorLoginPage(context) {
    return waitFor(
        async () => {
            for (const p of context.pages()) {
                if (p.url().startsWith(env.emulatorUrl) && (await p.locator('#username').count()) > 0) {
                    return p;
                }
            }
            return undefined;
        },
        { timeoutMs: STEP_TIMEOUT, describe: () => `the emulator's login page (pages open: ${context.pages().map((p) => p.url()).join(', ')})` },
    );
}

/** Logs in on the emulator's login page and clicks Allow on its consent page. */
async function loginAndAllow(loginPage) {
    await loginPage.locator('#username').fill(USERNAME);
    await loginPage.locator('#password').fill(PASSWORD);
    await loginPage.locator('#Login').click();
    // The consent page shows unless the user allowed the app before and `prompt=consent` was not
    // asked for; then the login goes straight back to Ferry's callback (and the popup may close).
    const allow = loginPage.locator('button[name="decision"][value="Allow"]');
    const next = await waitFor(
        async () => {
            if (loginPage.isClosed() || !loginPage.url().startsWith(env.emulatorUrl)) {
                return 'left';
            }
            return (await allow.count()) > 0 ? 'consent' : undefined;
        },
        { timeoutMs: STEP_TIMEOUT, describe: () => `the consent page or the way back to Ferry (at ${loginPage.isClosed() ? 'a closed page' : loginPage.url()})` },
    );
    if (next === 'consent') {
        await allow.click();
    }
}

/** Connections of an end user, through the API. */
async function connectionsOf(endUserId) {
    const { status, body } = await ferryApi('GET', `/connections?endUserId=${encodeURIComponent(endUserId)}`);
    assert.equal(status, 200, JSON.stringify(body));
    return body.connections;
}

describe('connecting Salesforce in a real browser', { skip: cannotRun, timeout: 120_000 }, () => {
    let browser;
    let staticServer;

    before(async () => {
        browser = await launchChromium();
        staticServer = await startStaticServer();
    });

    after(async () => {
        await browser?.close();
        await staticServer?.close();
    });

    test('headless Chromium opens the emulator login page', async () => {
        const page = await browser.newPage();
        try {
            const url = `${env.emulatorUrl}/services/oauth2/authorize?response_type=code&client_id=ferry-demo-client&redirect_uri=${encodeURIComponent(`${env.ferryUrl}/oauth/callback`)}&state=e2e-smoke`;
            const response = await page.goto(url);
            assert.equal(response.status(), 200);
            await page.locator('#username').waitFor({ timeout: STEP_TIMEOUT });
            await page.locator('#password').waitFor();
            await page.locator('#Login').waitFor();
        } finally {
            await page.close();
        }
    });

    test('auth() from @nangohq/frontend resolves with the new connection after login and Allow in the popup', async (t) => {
        const endUser = `e2e-auth-${randomSuffix()}`;
        const session = await createConnectSession(endUser, ['salesforce']);
        const context = await browser.newContext();
        const page = await context.newPage();
        try {
            const query = new URLSearchParams({ host: env.ferryUrl, token: session.token, integration: 'salesforce' });
            await page.goto(`${staticServer.url}/auth.html?${query}`);
            await page.locator('body[data-ready="yes"]').waitFor({ timeout: STEP_TIMEOUT });

            const popupOpened = context.waitForEvent('page', { timeout: STEP_TIMEOUT });
            await page.locator('#connect').click();
            await popupOpened;
            const loginPage = await emulatorLoginPage(context);
            await loginAndAllow(loginPage);

            await page.locator('#result[data-state]').waitFor({ timeout: STEP_TIMEOUT });
            const state = await page.locator('#result').getAttribute('data-state');
            const outcome = JSON.parse(await page.locator('#result').textContent());
            assert.equal(state, 'success', `auth() rejected: ${JSON.stringify(outcome)}`);
            assert.equal(outcome.providerConfigKey, 'salesforce');
            assert.match(outcome.connectionId, /^[0-9a-f-]{36}$/i);

            const shot = screenshotPath('frontend-auth.png');
            await page.screenshot({ path: shot });
            t.diagnostic(`screenshot: ${shot}`);

            const { status, body } = await ferryApi('GET', `/connections/${outcome.connectionId}?provider_config_key=salesforce`);
            assert.equal(status, 200, JSON.stringify(body));
            assert.equal(body.connection_id, outcome.connectionId);
            assert.equal(body.end_user?.id, endUser);
            assert.ok((await connectionsOf(endUser)).some((c) => c.connection_id === outcome.connectionId));
        } finally {
            await context.close();
        }
    });

    test('the Connect UI link lets a person pick Salesforce, log in, allow and see a success message', async (t) => {
        const endUser = `e2e-ui-${randomSuffix()}`;
        const session = await createConnectSession(endUser, ['salesforce']);
        const context = await browser.newContext();
        const page = await context.newPage();
        try {
            const response = await page.goto(session.connect_link);
            assert.equal(response?.status(), 200, `GET ${session.connect_link}`);
            const entry = page.locator('button', { hasText: 'Salesforce' }).first();
            await entry.waitFor({ timeout: STEP_TIMEOUT });
            await entry.click();

            // The login may open in a popup (as @nangohq/frontend does) or in the same tab.
            const loginPage = await emulatorLoginPage(context);
            await loginAndAllow(loginPage);

            const successPage = await waitFor(
                async () => {
                    for (const p of context.pages()) {
                        if (!p.isClosed() && (await p.locator('[data-testid="connect-success"]').count()) > 0) {
                            return p;
                        }
                    }
                    return undefined;
                },
                { timeoutMs: STEP_TIMEOUT, describe: () => `[data-testid="connect-success"] (pages: ${context.pages().map((p) => p.url()).join(', ')})` },
            );
            await successPage.locator('[data-testid="connect-success"]').waitFor({ state: 'visible', timeout: STEP_TIMEOUT });

            const shot = screenshotPath('connect-ui.png');
            await successPage.screenshot({ path: shot });
            t.diagnostic(`screenshot: ${shot}`);

            const connections = await waitFor(
                async () => {
                    const list = await connectionsOf(endUser);
                    return list.length > 0 ? list : undefined;
                },
                { timeoutMs: STEP_TIMEOUT, describe: () => `a connection of ${endUser}` },
            );
            assert.equal(connections.length, 1, JSON.stringify(connections));
            assert.equal(connections[0].provider_config_key, 'salesforce');
        } finally {
            await context.close();
        }
    });
});
