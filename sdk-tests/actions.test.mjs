// Actions through the official @nangohq/node client against `ferry dev`: triggerAction for every
// pre-built action (sync) and triggerActionAsync + getAsyncActionResult (async), with the
// emulator's data read behind Ferry's back after each write; Salesforce errors as 424s.
// Needs FERRY_URL, FERRY_SECRET_KEY, FERRY_EMULATOR_URL (scripts/test-node sets them).

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Nango } from '@nangohq/node';
import { connectOverHttp, env, httpError, missingEnv, randomSuffix } from './lib/ferry.mjs';

const TIMEOUT = 60_000;
const INTEGRATION = 'salesforce';
const nango = missingEnv ? undefined : new Nango({ secretKey: env.secretKey, host: env.ferryUrl });

/** Reads the demo org directly (token minted by the emulator's admin API). */
class Org {
    async init() {
        const response = await fetch(`${env.emulatorUrl}/__emulator/orgs/Acme/tokens`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{}',
        });
        assert.equal(response.status, 201, await response.clone().text());
        const minted = await response.json();
        this.instance = minted.instance_url.replace(/\/$/, '');
        this.token = minted.access_token;
        return this;
    }

    async query(soql) {
        const response = await fetch(`${this.instance}/services/data/v59.0/query?q=${encodeURIComponent(soql)}`, {
            headers: { authorization: `Bearer ${this.token}` },
        });
        const body = await response.json();
        assert.equal(response.status, 200, JSON.stringify(body));
        return body.records;
    }

    async one(soql) {
        const rows = await this.query(soql);
        assert.equal(rows.length, 1, `${soql}: ${JSON.stringify(rows)}`);
        return rows[0];
    }

    async admin(path, body) {
        const response = await fetch(`${env.emulatorUrl}/__emulator${path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
        });
        assert.ok(response.status < 300, `${path}: ${await response.text()}`);
    }
}

/** Polls GET /action/{id} (404 while the run is queued or running) until it answers. */
async function asyncResult(started) {
    const deadline = Date.now() + 20_000;
    for (;;) {
        try {
            return await nango.getAsyncActionResult(started);
        } catch (err) {
            if (err.response?.status !== 404 || Date.now() > deadline) {
                throw err;
            }
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
    }
}

describe('actions through @nangohq/node', { skip: missingEnv, timeout: TIMEOUT * 4 }, () => {
    const suffix = randomSuffix();
    let connectionId;
    let org;
    const run = (name, input) => nango.triggerAction(INTEGRATION, connectionId, name, input);

    before(async () => {
        const endUser = `actions-${suffix}`;
        const session = await nango.createConnectSession({
            end_user: { id: endUser, email: `${endUser}@example.com` },
            allowed_integrations: [INTEGRATION],
        });
        const flow = await connectOverHttp(INTEGRATION, session.data.token);
        assert.equal(flow.callback.status, 200, flow.callback.text.slice(0, 1000));
        const { connections } = await nango.listConnections({ userId: endUser });
        connectionId = connections.find((c) => c.provider_config_key === INTEGRATION).connection_id;
        org = await new Org().init();
    });

    test('generic record actions create, read, update, upsert and delete', async () => {
        const name = `Generic ${suffix}`;
        const created = await run('create-record', { object: 'Account', fields: { Name: name } });
        assert.equal(created.success, true);
        assert.equal((await org.one(`SELECT Name FROM Account WHERE Id = '${created.id}'`)).Name, name);

        const got = await run('get-record', { object: 'Account', id: created.id, fields: ['Name'] });
        assert.equal(got.Name, name);

        await run('update-record', { object: 'Account', id: created.id, fields: { Industry: 'Energy' } });
        assert.equal((await org.one(`SELECT Industry FROM Account WHERE Id = '${created.id}'`)).Industry, 'Energy');

        await org.admin('/orgs/Acme/objects', { name: 'Account', fields: [{ name: 'Sdk_Key__c', type: 'string', external_id: true, unique: true }] });
        const first = await run('upsert-record', { object: 'Account', external_id_field: 'Sdk_Key__c', external_id: `k-${suffix}`, fields: { Name: `Upsert ${suffix}` } });
        assert.equal(first.created, true);
        const second = await run('upsert-record', { object: 'Account', external_id_field: 'Sdk_Key__c', external_id: `k-${suffix}`, fields: { Name: `Upsert 2 ${suffix}` } });
        assert.equal(second.created, false);
        const rows = await org.query(`SELECT Name FROM Account WHERE Sdk_Key__c = 'k-${suffix}'`);
        assert.deepEqual(rows.map((r) => r.Name), [`Upsert 2 ${suffix}`]);

        await run('delete-record', { object: 'Account', id: created.id });
        assert.deepEqual(await org.query(`SELECT Id FROM Account WHERE Id = '${created.id}'`), []);
    });

    test('convenience actions write in the sync models', async () => {
        const account = await run('create-account', { name: `Model ${suffix}`, industry: 'Banking' });
        assert.equal(account.name, `Model ${suffix}`);
        await run('update-account', { id: account.id, website: 'https://model.example' });
        assert.equal((await org.one(`SELECT Website FROM Account WHERE Id = '${account.id}'`)).Website, 'https://model.example');

        const contact = await run('create-contact', { first_name: 'Ada', last_name: `Lovelace ${suffix}`, account_id: account.id });
        assert.equal(contact.account_name, `Model ${suffix}`);
        await run('update-contact', { id: contact.id, title: 'Countess' });
        assert.equal((await org.one(`SELECT Title FROM Contact WHERE Id = '${contact.id}'`)).Title, 'Countess');

        const deal = await run('create-opportunity', { name: `Deal ${suffix}`, stage: 'Prospecting', close_date: '2027-03-01', account_id: account.id });
        await run('update-opportunity', { id: deal.id, stage: 'Closed Won' });
        assert.equal((await org.one(`SELECT StageName FROM Opportunity WHERE Id = '${deal.id}'`)).StageName, 'Closed Won');

        const lead = await run('create-lead', { last_name: `Hopper ${suffix}`, company: 'Navy' });
        await run('update-lead', { id: lead.id, status: 'Working - Contacted' });
        const row = await org.one(`SELECT Company, Status FROM Lead WHERE Id = '${lead.id}'`);
        assert.equal(row.Company, 'Navy');
        assert.equal(row.Status, 'Working - Contacted');
    });

    test('read actions and composite', async () => {
        const query = await run('query', { query: 'SELECT Id, Name FROM Account', limit: 5 });
        assert.ok(query.records.length <= 5);
        assert.equal(typeof query.total_size, 'number');
        assert.equal((await run('describe-object', { object: 'Contact' })).name, 'Contact');
        const fields = await run('fetch-fields', { object: 'Lead' });
        assert.ok(fields.fields.some((f) => f.name === 'Company' && f.required === true));
        assert.ok((await run('describe-global')).sobjects.some((o) => o.name === 'Account'));
        assert.equal((await run('whoami')).username, 'admin@acme.example');
        assert.ok((await run('get-limits')).DailyApiRequests.Max > 0);
        const batch = await run('composite', {
            all_or_none: true,
            requests: [
                { method: 'POST', url: '/sobjects/Account', reference_id: 'acc', body: { Name: `Composite ${suffix}` } },
                { method: 'POST', url: '/sobjects/Contact', reference_id: 'con', body: { LastName: `Composite ${suffix}`, AccountId: '@{acc.id}' } },
            ],
        });
        assert.equal(batch.success, true, JSON.stringify(batch));
        const row = await org.one(`SELECT Account.Name FROM Contact WHERE LastName = 'Composite ${suffix}'`);
        assert.equal(row.Account.Name, `Composite ${suffix}`);
    });

    test('triggerActionAsync runs every pre-built action and getAsyncActionResult returns its output', async () => {
        const account = await asyncResult(await nango.triggerActionAsync(INTEGRATION, connectionId, 'create-account', { name: `Async ${suffix}` }));
        assert.equal((await org.one(`SELECT Name FROM Account WHERE Id = '${account.id}'`)).Name, `Async ${suffix}`);
        const cases = [
            ['update-account', { id: account.id, industry: 'Energy' }],
            ['create-contact', { last_name: `Async ${suffix}` }],
            ['create-lead', { last_name: `Async ${suffix}`, company: 'Queue' }],
            ['create-opportunity', { name: `Async ${suffix}`, stage: 'Prospecting', close_date: '2027-01-01' }],
            ['create-record', { object: 'Account', fields: { Name: `Async record ${suffix}` } }],
            ['get-record', { object: 'Account', id: account.id }],
            ['query', { query: `SELECT Id FROM Account WHERE Name = 'Async ${suffix}'` }],
            ['describe-object', { object: 'Account' }],
            ['fetch-fields', { object: 'Account' }],
            ['describe-global', {}],
            ['whoami', {}],
            ['get-limits', {}],
        ];
        for (const [name, input] of cases) {
            const started = await nango.triggerActionAsync(INTEGRATION, connectionId, name, input);
            assert.match(started.id, /^[0-9a-f-]{36}$/);
            assert.equal(started.statusUrl, `/action/${started.id}`);
            const output = await asyncResult(started);
            assert.ok(output && typeof output === 'object', `${name}: ${JSON.stringify(output)}`);
        }
        assert.equal((await org.one(`SELECT Industry FROM Account WHERE Id = '${account.id}'`)).Industry, 'Energy');
        assert.equal((await org.query(`SELECT Id FROM Lead WHERE LastName = 'Async ${suffix}'`)).length, 1);
        const contact = await asyncResult(await nango.triggerActionAsync(INTEGRATION, connectionId, 'create-contact', { last_name: `Async 2 ${suffix}` }));
        await asyncResult(await nango.triggerActionAsync(INTEGRATION, connectionId, 'update-contact', { id: contact.id, title: 'Queued' }));
        assert.equal((await org.one(`SELECT Title FROM Contact WHERE Id = '${contact.id}'`)).Title, 'Queued');
        await asyncResult(await nango.triggerActionAsync(INTEGRATION, connectionId, 'delete-record', { object: 'Contact', id: contact.id }));
        assert.deepEqual(await org.query(`SELECT Id FROM Contact WHERE Id = '${contact.id}'`), []);
    });

    test('errors: invalid input is a 400 naming the field, Salesforce errors are 424 with their codes', async () => {
        const invalid = await httpError(run('create-record', { object: 'Contact' }));
        assert.equal(invalid.status, 400);
        assert.equal(invalid.data.error.code, 'invalid_action_input');
        assert.equal(invalid.data.error.message, 'input.fields: required');
        const missing = await httpError(run('create-record', { object: 'Contact', fields: { FirstName: 'No last name' } }));
        assert.equal(missing.status, 424);
        assert.equal(missing.data.error.payload.errors[0].errorCode, 'REQUIRED_FIELD_MISSING');
        const unknown = await httpError(run('no-such-action', {}));
        assert.equal(unknown.status, 404);
    });

    test('getScriptsConfig lists the syncs and actions', async () => {
        const config = await nango.getScriptsConfig();
        const salesforce = config.find((c) => c.providerConfigKey === INTEGRATION);
        assert.ok(salesforce.syncs.some((s) => s.name === 'contacts'));
        assert.ok(salesforce.actions.some((a) => a.name === 'upsert-record' && a.input.fields.length > 0));
    });
});
