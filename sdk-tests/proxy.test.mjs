// The official @nangohq/node proxy helpers (`proxy`, `get`, `post`, `put`, `patch`, `delete`)
// through Ferry to the Salesforce emulator: each answer must be the emulator's own (status, body,
// Sforce-Limit-Info), compared with the same call made directly with the connection's token.
// Needs FERRY_URL, FERRY_SECRET_KEY, FERRY_EMULATOR_URL, FERRY_EMULATOR_SANDBOX_URL (scripts/test-node sets them).

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Nango } from '@nangohq/node';
import { connectOverHttp, env, httpError, missingEnv, randomSuffix } from './lib/ferry.mjs';

const TIMEOUT = 30_000;
const KEY = 'salesforce';
const V = '/services/data/v59.0';
const LIMIT_INFO = /api-usage=\d+\/\d+/;
const nango = missingEnv ? undefined : new Nango({ secretKey: env.secretKey, host: env.ferryUrl });

describe('the proxy through @nangohq/node', { skip: missingEnv, timeout: TIMEOUT * 4 }, () => {
    let connectionId;
    let instanceUrl;
    let accessToken;

    /** The same call made directly to the emulator with the connection's token. */
    async function direct(method, endpoint, body) {
        const response = await fetch(`${instanceUrl}${endpoint}`, {
            method,
            headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await response.text();
        return { status: response.status, data: text ? JSON.parse(text) : '' };
    }

    const base = () => ({ providerConfigKey: KEY, connectionId });

    before(async () => {
        const endUser = `proxy-${randomSuffix()}`;
        const session = await nango.createConnectSession({
            end_user: { id: endUser, email: `${endUser}@example.com` },
            allowed_integrations: [KEY],
        });
        const flow = await connectOverHttp(KEY, session.data.token);
        assert.equal(flow.callback.status, 200, flow.callback.text.slice(0, 500));
        const { connections } = await nango.listConnections({ userId: endUser });
        connectionId = connections.find((c) => c.provider_config_key === KEY).connection_id;
        const connection = await nango.getConnection(KEY, connectionId);
        instanceUrl = connection.connection_config.instance_url.replace(/\/$/, '');
        accessToken = connection.credentials.access_token;
    });

    test('proxy() and get() return the emulator status, body and Sforce-Limit-Info', { timeout: TIMEOUT }, async () => {
        const viaProxy = await nango.proxy({ ...base(), method: 'GET', endpoint: `${V}/query`, params: { q: 'SELECT Id, Name FROM Account ORDER BY Id LIMIT 3' } });
        const expected = await direct('GET', `${V}/query?q=${encodeURIComponent('SELECT Id, Name FROM Account ORDER BY Id LIMIT 3')}`);
        assert.equal(viaProxy.status, expected.status);
        assert.deepEqual(viaProxy.data, expected.data);
        assert.match(viaProxy.headers['sforce-limit-info'], LIMIT_INFO);

        const id = expected.data.records[0].Id;
        const viaGet = await nango.get({ ...base(), endpoint: `${V}/sobjects/Account/${id}` });
        const one = await direct('GET', `${V}/sobjects/Account/${id}`);
        assert.equal(viaGet.status, 200);
        assert.deepEqual(viaGet.data, one.data);
        assert.match(viaGet.headers['sforce-limit-info'], LIMIT_INFO);
    });

    test('post(), patch() and delete() change the org as the emulator says', { timeout: TIMEOUT }, async () => {
        const name = `Proxy ${randomSuffix()}`;
        const created = await nango.post({ ...base(), endpoint: `${V}/sobjects/Account`, data: { Name: name } });
        assert.equal(created.status, 201);
        assert.equal(created.data.success, true);
        assert.deepEqual(created.data.errors, []);
        assert.match(created.headers['sforce-limit-info'], LIMIT_INFO);
        const id = created.data.id;
        assert.equal((await direct('GET', `${V}/sobjects/Account/${id}`)).data.Name, name);

        const patched = await nango.patch({ ...base(), endpoint: `${V}/sobjects/Account/${id}`, data: { Name: `${name} renamed` } });
        assert.equal(patched.status, 204);
        assert.equal((await direct('GET', `${V}/sobjects/Account/${id}`)).data.Name, `${name} renamed`);

        const deleted = await nango.delete({ ...base(), endpoint: `${V}/sobjects/Account/${id}` });
        assert.equal(deleted.status, 204);
        const gone = await httpError(nango.get({ ...base(), endpoint: `${V}/sobjects/Account/${id}` }));
        const goneDirect = await direct('GET', `${V}/sobjects/Account/${id}`);
        assert.equal(gone.status, goneDirect.status);
        assert.deepEqual(gone.data, goneDirect.data);
    });

    test('put() gets the same answer as a direct PUT', { timeout: TIMEOUT }, async () => {
        const { data } = await direct('GET', `${V}/query?q=${encodeURIComponent('SELECT Id FROM Account LIMIT 1')}`);
        const endpoint = `${V}/sobjects/Account/${data.records[0].Id}`;
        const expected = await direct('PUT', endpoint, { Name: 'put' });
        const viaPut = await nango.put({ ...base(), endpoint, data: { Name: 'put' } }).catch((err) => {
            if (!err.response) throw err;
            return err.response;
        });
        assert.equal(viaPut.status, expected.status);
        assert.deepEqual(viaPut.data, expected.data);
    });

    test('a Salesforce error comes back as Salesforce sent it', { timeout: TIMEOUT }, async () => {
        const endpoint = `${V}/query`;
        const q = 'SELECT Nope FROM Account';
        const error = await httpError(nango.get({ ...base(), endpoint, params: { q } }));
        const expected = await direct('GET', `${endpoint}?q=${encodeURIComponent(q)}`);
        assert.equal(error.status, expected.status);
        assert.deepEqual(error.data, expected.data);
    });
});
