// The official @nangohq/node client against a running Ferry: integrations, connect sessions, the
// OAuth flow through the Salesforce emulator (walked over plain HTTP), connections, metadata,
// deletion with token revocation, sandbox and My Domain logins.
// Needs FERRY_URL, FERRY_SECRET_KEY, FERRY_EMULATOR_URL, FERRY_EMULATOR_SANDBOX_URL (scripts/test-node sets them).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Nango } from '@nangohq/node';
import {
    DEMO_PASSWORD,
    PRODUCTION_USER,
    SANDBOX_USER,
    connectOverHttp,
    connectUrl,
    emulatorOrg,
    env,
    httpError,
    limitsStatus,
    missingEnv,
    randomSuffix,
} from './lib/ferry.mjs';
import { Browser } from './lib/browserless.mjs';

const TIMEOUT = 30_000;
const nango = missingEnv ? undefined : new Nango({ secretKey: env.secretKey, host: env.ferryUrl });
const TOKEN_PATTERN = /^nango_connect_session_[a-f0-9]{64}$/;

/** Connection ids of an end user on an integration. */
async function connectionIds(endUserId, integration) {
    const { connections } = await nango.listConnections({ userId: endUserId });
    return connections.filter((c) => c.provider_config_key === integration).map((c) => c.connection_id);
}

/**
 * Runs a connect session and the OAuth flow for `endUserId`, and returns the new connection's id
 * (the one connection of that end user that was not there before).
 */
async function connect(integration, endUserId, { username, sessionExtras = {}, params, wsClientId } = {}) {
    const before = new Set(await connectionIds(endUserId, integration));
    const session = await nango.createConnectSession({
        end_user: { id: endUserId, email: `${endUserId}@example.com`, display_name: `End user ${endUserId}` },
        allowed_integrations: [integration],
        ...sessionExtras,
    });
    const flow = await connectOverHttp(integration, session.data.token, { username, params, wsClientId });
    assert.equal(flow.callback.status, 200, `Ferry's callback answered ${flow.callback.status}:\n${flow.callback.text.slice(0, 1500)}\n${flow.browser.describe()}`);
    const fresh = (await connectionIds(endUserId, integration)).filter((id) => !before.has(id));
    assert.equal(fresh.length, 1, `expected one new connection for ${endUserId} on ${integration}, found ${JSON.stringify(fresh)}`);
    return { connectionId: fresh[0], flow };
}

describe('integrations through @nangohq/node', { skip: missingEnv, timeout: TIMEOUT * 4 }, () => {
    const uniqueKey = `sf-test-${randomSuffix()}`;
    let created = false;

    after(async () => {
        if (created) {
            await nango.deleteIntegration(uniqueKey).catch(() => {});
        }
    });

    test('createIntegration creates a Salesforce integration with OAuth 2.0 credentials', async () => {
        const res = await nango.createIntegration({
            provider: 'salesforce',
            unique_key: uniqueKey,
            display_name: 'Salesforce test',
            credentials: { type: 'OAUTH2', client_id: 'ferry-demo-client', client_secret: 'ferry-demo-secret' },
        });
        created = true;
        assert.equal(res.data.unique_key, uniqueKey);
        assert.equal(res.data.provider, 'salesforce');
    });

    test('listIntegrations returns the new integration beside the dev integrations', async () => {
        const { configs } = await nango.listIntegrations();
        const keys = configs.map((c) => c.unique_key);
        for (const key of [uniqueKey, 'salesforce', 'salesforce-sandbox']) {
            assert.ok(keys.includes(key), `${key} missing from ${JSON.stringify(keys)}`);
        }
        assert.equal(configs.find((c) => c.unique_key === uniqueKey).provider, 'salesforce');
    });

    test('getIntegration returns the integration and, with include credentials, its client id', async () => {
        const plain = await nango.getIntegration({ uniqueKey });
        assert.equal(plain.data.unique_key, uniqueKey);
        assert.equal(plain.data.provider, 'salesforce');
        assert.equal(plain.data.display_name, 'Salesforce test');
        const withCredentials = await nango.getIntegration({ uniqueKey }, { include: ['credentials'] });
        assert.equal(withCredentials.data.credentials?.type, 'OAUTH2');
        assert.equal(withCredentials.data.credentials?.client_id, 'ferry-demo-client');
    });

    test('a connection can be made through an integration created with createIntegration', async () => {
        const endUser = `user-int-${randomSuffix()}`;
        const { connectionId } = await connect(uniqueKey, endUser);
        const connection = await nango.getConnection(uniqueKey, connectionId);
        assert.equal(connection.provider_config_key, uniqueKey);
        assert.equal(connection.connection_config.instance_url, (await emulatorOrg('Acme')).instance_url);
        await nango.deleteConnection(uniqueKey, connectionId);
    });

    test('deleteIntegration removes it and getIntegration then answers 404', async () => {
        const res = await nango.deleteIntegration(uniqueKey);
        assert.equal(res.status, 200);
        created = false;
        const err = await httpError(nango.getIntegration({ uniqueKey }));
        assert.equal(err.status, 404, JSON.stringify(err.data));
    });
});

describe('a Salesforce connection made through a connect session', { skip: missingEnv, timeout: TIMEOUT * 12 }, () => {
    let session;
    let connectionId;
    let accessToken;
    let acme;

    const needConnection = () => assert.ok(connectionId, 'no connection: the OAuth flow test failed');

    test('createConnectSession returns a session token, a connect link and an expiry 30 minutes away', async () => {
        session = await nango.createConnectSession({
            end_user: { id: 'user-1', email: 'u1@example.com', display_name: 'User One' },
            allowed_integrations: ['salesforce'],
        });
        assert.match(session.data.token, TOKEN_PATTERN);
        assert.ok(session.data.connect_link.includes(`session_token=${session.data.token}`), session.data.connect_link);
        assert.match(session.data.expires_at, /Z$/);
        const minutes = (Date.parse(session.data.expires_at) - Date.now()) / 60_000;
        assert.ok(minutes > 25 && minutes <= 31, `expires in ${minutes} minutes`);
    });

    test('the OAuth flow goes from Ferry to the emulator login and consent and back to the callback', async () => {
        assert.ok(session, 'no connect session');
        const before = new Set(await connectionIds('user-1', 'salesforce'));
        const flow = await connectOverHttp('salesforce', session.data.token, { username: PRODUCTION_USER, password: DEMO_PASSWORD });
        const authorize = new URL(flow.authorize);
        assert.equal(`${authorize.origin}${authorize.pathname}`, `${env.emulatorUrl}/services/oauth2/authorize`);
        assert.equal(authorize.searchParams.get('client_id'), 'ferry-demo-client');
        assert.equal(authorize.searchParams.get('redirect_uri'), `${env.ferryUrl}/oauth/callback`);
        assert.equal(authorize.searchParams.get('response_type'), 'code');
        assert.ok(authorize.searchParams.get('state'), 'the authorize URL has no state');
        assert.equal(flow.callback.status, 200, `${flow.callback.text.slice(0, 1500)}\n${flow.browser.describe()}`);
        assert.match(flow.callback.headers.get('content-type') ?? '', /text\/html/);
        assert.match(flow.callback.text, /nango_oauth_callback_success/);
        const fresh = (await connectionIds('user-1', 'salesforce')).filter((id) => !before.has(id));
        assert.equal(fresh.length, 1, `new connections of user-1: ${JSON.stringify(fresh)}`);
        connectionId = fresh[0];
    });

    test('listConnections finds the connection by its end user id', async () => {
        needConnection();
        const { connections } = await nango.listConnections({ userId: 'user-1' });
        const listed = connections.find((c) => c.connection_id === connectionId);
        assert.ok(listed, JSON.stringify(connections));
        assert.equal(listed.provider_config_key, 'salesforce');
        assert.equal(listed.provider, 'salesforce');
        assert.equal(listed.end_user?.id, 'user-1');
        const other = await nango.listConnections({ userId: `nobody-${randomSuffix()}` });
        assert.deepEqual(other.connections, []);
    });

    test("getConnection returns the Acme org's instance_url and an access token the emulator accepts", async () => {
        needConnection();
        acme = await emulatorOrg('Acme');
        const connection = await nango.getConnection('salesforce', connectionId);
        assert.equal(connection.connection_id, connectionId);
        assert.equal(connection.provider_config_key, 'salesforce');
        assert.equal(connection.connection_config.instance_url, acme.instance_url);
        assert.equal(connection.credentials.type, 'OAUTH2');
        assert.equal(typeof connection.credentials.access_token, 'string');
        assert.equal(connection.end_user?.id, 'user-1');
        assert.equal(connection.end_user?.email, 'u1@example.com');
        accessToken = connection.credentials.access_token;
        assert.equal(await limitsStatus(acme.instance_url, accessToken), 200);
        assert.equal(await nango.getToken('salesforce', connectionId), accessToken);
    });

    test('getConnection leaves the refresh token out unless asked for it', async () => {
        needConnection();
        const plain = await nango.getConnection('salesforce', connectionId);
        assert.equal(plain.credentials.refresh_token, undefined);
        assert.equal(plain.credentials.raw?.refresh_token, undefined);
        const withRefresh = await nango.getConnection('salesforce', connectionId, false, true);
        assert.equal(typeof withRefresh.credentials.refresh_token, 'string');
        assert.ok(withRefresh.credentials.refresh_token.length > 0);
    });

    test('setMetadata replaces the metadata and answers 201 with the request echoed', async () => {
        needConnection();
        const metadata = { plan: 'pro', seats: 3 };
        const res = await nango.setMetadata('salesforce', connectionId, metadata);
        assert.equal(res.status, 201);
        assert.deepEqual(res.data, { metadata, connection_id: connectionId, provider_config_key: 'salesforce' });
        assert.deepEqual(await nango.getMetadata('salesforce', connectionId), metadata);
    });

    test('updateMetadata merges into the existing metadata and getMetadata returns the merge', async () => {
        needConnection();
        const res = await nango.updateMetadata('salesforce', connectionId, { seats: 5, region: 'eu' });
        assert.equal(res.status, 200);
        assert.deepEqual(res.data.metadata, { seats: 5, region: 'eu' });
        assert.deepEqual(await nango.getMetadata('salesforce', connectionId), { plan: 'pro', seats: 5, region: 'eu' });
    });

    test('getConnection of an unknown connection id answers 404', async () => {
        const err = await httpError(nango.getConnection('salesforce', `missing-${randomSuffix()}`));
        assert.equal(err.status, 404, JSON.stringify(err.data));
    });

    test('deleteConnection of an unknown connection id answers 400 unknown_connection', async () => {
        const err = await httpError(nango.deleteConnection('salesforce', `missing-${randomSuffix()}`));
        assert.equal(err.status, 400, JSON.stringify(err.data));
        assert.equal(err.data?.error?.code, 'unknown_connection');
    });

    test('a connect session token is refused as a bearer key on GET /connections', async () => {
        assert.ok(session, 'no connect session');
        const response = await fetch(`${env.ferryUrl}/connections`, { headers: { authorization: `Bearer ${session.data.token}` } });
        const body = await response.text();
        assert.equal(response.status, 403, body);
    });

    test('deleteConnection revokes the Salesforce token and the connection is gone afterwards', async () => {
        needConnection();
        assert.ok(accessToken && acme, 'no access token from the getConnection test');
        const res = await nango.deleteConnection('salesforce', connectionId);
        assert.equal(res.status, 200);
        assert.equal(res.data.success, true);
        assert.equal(await limitsStatus(acme.instance_url, accessToken), 401);
        const err = await httpError(nango.getConnection('salesforce', connectionId));
        assert.equal(err.status, 404, JSON.stringify(err.data));
        assert.ok(!(await connectionIds('user-1', 'salesforce')).includes(connectionId));
    });
});

describe('sandbox and My Domain logins', { skip: missingEnv, timeout: TIMEOUT * 8 }, () => {
    test("a salesforce-sandbox connection logs in on the sandbox listener and gets the sandbox org's instance_url", async () => {
        const endUser = `user-sbx-${randomSuffix()}`;
        const { connectionId, flow } = await connect('salesforce-sandbox', endUser, { username: SANDBOX_USER });
        assert.ok(flow.authorize.startsWith(`${env.emulatorSandboxUrl}/services/oauth2/authorize`), flow.authorize);
        const sandbox = await emulatorOrg('Acme Sandbox');
        const connection = await nango.getConnection('salesforce-sandbox', connectionId);
        assert.equal(connection.provider, 'salesforce-sandbox');
        assert.equal(connection.connection_config.instance_url, sandbox.instance_url);
        assert.equal(await limitsStatus(sandbox.instance_url, connection.credentials.access_token), 200);
        await nango.deleteConnection('salesforce-sandbox', connectionId);
    });

    test('a My Domain hostname given as params[hostname] reaches the emulator through the host map', async () => {
        const endUser = `user-md-${randomSuffix()}`;
        const { connectionId, flow } = await connect('salesforce', endUser, { params: { hostname: 'acme.my.salesforce.com' } });
        assert.ok(flow.authorize.startsWith(`${env.emulatorUrl}/services/oauth2/authorize`), flow.authorize);
        const connection = await nango.getConnection('salesforce', connectionId);
        assert.equal(connection.connection_config.hostname, 'acme.my.salesforce.com');
        assert.equal(connection.connection_config.instance_url, (await emulatorOrg('Acme')).instance_url);
        await nango.deleteConnection('salesforce', connectionId);
    });

    test('a My Domain hostname given in integrations_config_defaults reaches the emulator too', async () => {
        const endUser = `user-mdd-${randomSuffix()}`;
        const { connectionId, flow } = await connect('salesforce', endUser, {
            sessionExtras: { integrations_config_defaults: { salesforce: { connection_config: { hostname: 'acme.my.salesforce.com' } } } },
        });
        assert.ok(flow.authorize.startsWith(`${env.emulatorUrl}/services/oauth2/authorize`), flow.authorize);
        const connection = await nango.getConnection('salesforce', connectionId);
        assert.equal(connection.connection_config.instance_url, (await emulatorOrg('Acme')).instance_url);
        await nango.deleteConnection('salesforce', connectionId);
    });

    test('a Lightning UI host is refused with a message that says so', async () => {
        const session = await nango.createConnectSession({
            end_user: { id: `user-lt-${randomSuffix()}` },
            allowed_integrations: ['salesforce'],
        });
        const browser = new Browser();
        const res = await browser.request(connectUrl('salesforce', session.data.token, { params: { hostname: 'acme.lightning.force.com' } }));
        assert.equal(res.status, 400, `status ${res.status}, location ${res.location}:\n${res.text.slice(0, 1000)}`);
        assert.match(res.text, /lightning/i);
    });
});

describe('the WebSocket notification', { skip: missingEnv || (typeof WebSocket === 'undefined' && 'this Node has no WebSocket (run with --experimental-websocket)'), timeout: TIMEOUT }, () => {
    test('the callback sends a success frame to the ws_client_id that started the flow', async () => {
        const wsUrl = `${env.ferryUrl.replace(/^http/, 'ws')}/`;
        const socket = new WebSocket(wsUrl);
        const frames = [];
        let notify;
        socket.addEventListener('message', (event) => {
            frames.push(JSON.parse(event.data));
            notify?.();
        });
        const nextFrame = (predicate) =>
            new Promise((resolve, reject) => {
                const check = () => {
                    const found = frames.find(predicate);
                    if (found) {
                        notify = undefined;
                        resolve(found);
                    }
                };
                notify = check;
                socket.addEventListener('error', () => reject(new Error(`WebSocket error on ${wsUrl}`)), { once: true });
                check();
            });
        try {
            const ack = await nextFrame((f) => f.message_type === 'connection_ack');
            assert.ok(ack.ws_client_id, JSON.stringify(ack));
            const endUser = `user-ws-${randomSuffix()}`;
            const { connectionId } = await connect('salesforce', endUser, { wsClientId: ack.ws_client_id });
            const success = await nextFrame((f) => f.message_type === 'success');
            assert.equal(success.provider_config_key, 'salesforce');
            assert.equal(success.connection_id, connectionId);
            await nango.deleteConnection('salesforce', connectionId);
        } finally {
            socket.close();
        }
    });
});
