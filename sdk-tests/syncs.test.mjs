// Syncs and records through the official @nangohq/node client against a running Ferry: a new
// connection's pre-built syncs start by themselves, listRecords pages through every record with
// the cursor, pauseSync / startSync / triggerSync / syncStatus behave as Nango's, the sync
// webhook received by a local server verifies with the SDK's verifyIncomingWebhookRequest, and
// pruneRecords empties payloads up to a cursor.
// Needs FERRY_URL, FERRY_SECRET_KEY, FERRY_EMULATOR_URL (scripts/test-node sets them).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Nango } from '@nangohq/node';
import { connectOverHttp, env, missingEnv, randomSuffix } from './lib/ferry.mjs';

const TIMEOUT = 60_000;
const nango = missingEnv ? undefined : new Nango({ secretKey: env.secretKey, host: env.ferryUrl });

/** Resolves with `check()`'s first truthy value, polling the server until `TIMEOUT`. */
async function eventually(what, check) {
    const deadline = Date.now() + TIMEOUT;
    let last;
    while (Date.now() < deadline) {
        last = await check();
        if (last) {
            return last;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`timed out waiting for ${what}`);
}

/** The status entry of `sync` for `connectionId`. */
async function status(connectionId, sync) {
    const { syncs } = await nango.syncStatus('salesforce', [sync], connectionId);
    return syncs.find((s) => s.name === sync);
}

describe('syncs and records through @nangohq/node', { skip: missingEnv, timeout: TIMEOUT * 5 }, () => {
    const hooks = [];
    let receiver;
    let signingKey;
    let connectionId;

    before(async () => {
        receiver = createServer((req, res) => {
            let body = '';
            req.setEncoding('utf8');
            req.on('data', (chunk) => {
                body += chunk;
            });
            req.on('end', () => {
                hooks.push({ headers: req.headers, body });
                res.writeHead(200).end('ok');
            });
        });
        await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
        const patched = await fetch(`${env.ferryUrl}/ferry/environment`, {
            method: 'PATCH',
            headers: { authorization: `Bearer ${env.secretKey}`, 'content-type': 'application/json' },
            body: JSON.stringify({ webhook_url: `http://127.0.0.1:${receiver.address().port}/hook` }),
        });
        assert.equal(patched.status, 200, await patched.clone().text());
        signingKey = (await patched.json()).data.webhook_signing_key;

        const endUser = `sync-user-${randomSuffix()}`;
        const session = await nango.createConnectSession({
            end_user: { id: endUser, email: `${endUser}@example.com` },
            allowed_integrations: ['salesforce'],
        });
        const flow = await connectOverHttp('salesforce', session.data.token);
        assert.equal(flow.callback.status, 200, flow.callback.text.slice(0, 1000));
        const { connections } = await nango.listConnections({ userId: endUser });
        connectionId = connections.find((c) => c.provider_config_key === 'salesforce').connection_id;
    });

    after(async () => {
        receiver?.close();
    });

    test('a new connection syncs contacts by itself; listRecords pages through all of them with the cursor', async () => {
        const done = await eventually('the first contacts run', async () => {
            const s = await status(connectionId, 'contacts');
            return s && s.status === 'SUCCESS' && s.finishedAt ? s : undefined;
        });
        const total = done.recordCount.Contact;
        assert.ok(total > 0, JSON.stringify(done));
        assert.equal(done.latestResult.Contact.added, total);

        const seen = new Set();
        let cursor;
        let pages = 0;
        do {
            const page = await nango.listRecords({
                providerConfigKey: 'salesforce',
                connectionId,
                model: 'Contact',
                limit: 100,
                cursor,
            });
            pages += 1;
            for (const record of page.records) {
                assert.match(record.id, /^[0-9A-Za-z]{18}$/);
                assert.ok(!seen.has(record.id), `record ${record.id} listed twice`);
                seen.add(record.id);
                assert.equal(record._nango_metadata.last_action, 'ADDED');
                assert.ok('last_name' in record && 'account_name' in record, JSON.stringify(record));
            }
            cursor = page.next_cursor ?? undefined;
        } while (cursor);
        assert.equal(seen.size, total);
        assert.ok(pages >= Math.ceil(total / 100));
    });

    test('the sync webhook verifies with verifyIncomingWebhookRequest', async () => {
        const hook = await eventually('the contacts sync webhook', () =>
            hooks.find((h) => {
                const payload = JSON.parse(h.body);
                return payload.type === 'sync' && payload.connectionId === connectionId && payload.syncName === 'contacts';
            }),
        );
        const payload = JSON.parse(hook.body);
        assert.equal(payload.from, 'nango');
        assert.equal(payload.providerConfigKey, 'salesforce');
        assert.equal(payload.model, 'Contact');
        assert.equal(payload.syncType, 'INITIAL');
        assert.equal(payload.success, true);
        assert.ok(payload.responseResults.added > 0);
        const verifier = new Nango({ secretKey: env.secretKey, host: env.ferryUrl, webhookSigningKey: signingKey });
        assert.equal(verifier.verifyIncomingWebhookRequest(hook.body, hook.headers), true);
        assert.equal(verifier.verifyIncomingWebhookRequest(hook.body.replace('"sync"', '"SYNC"'), hook.headers), false);
    });

    test('pauseSync and startSync change the status', async () => {
        await nango.pauseSync('salesforce', ['contacts'], connectionId);
        assert.equal((await status(connectionId, 'contacts')).status, 'PAUSED');
        await nango.startSync('salesforce', ['contacts'], connectionId);
        assert.notEqual((await status(connectionId, 'contacts')).status, 'PAUSED');
    });

    test('triggerSync runs an incremental sync that picks up a changed record', async () => {
        const before = await status(connectionId, 'contacts');
        const [first] = (
            await nango.listRecords({ providerConfigKey: 'salesforce', connectionId, model: 'Contact', limit: 1 })
        ).records;
        const title = `Changed ${randomSuffix()}`;
        const changed = await fetch(`${env.emulatorUrl}/__emulator/orgs/Acme/records/Contact/${first.id}`, {
            method: 'PATCH',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ Title: title }),
        });
        assert.equal(changed.status, 200, await changed.text());
        await nango.triggerSync('salesforce', ['contacts'], connectionId);
        await eventually('the triggered run', async () => {
            const s = await status(connectionId, 'contacts');
            return s.status === 'SUCCESS' && s.finishedAt !== before.finishedAt ? s : undefined;
        });
        const { records } = await nango.listRecords({
            providerConfigKey: 'salesforce',
            connectionId,
            model: 'Contact',
            ids: [first.id],
        });
        assert.equal(records.length, 1);
        assert.equal(records[0].title, title);
        assert.equal(records[0]._nango_metadata.last_action, 'UPDATED');
        const updated = await nango.listRecords({
            providerConfigKey: 'salesforce',
            connectionId,
            model: 'Contact',
            filter: 'updated',
        });
        assert.ok(updated.records.some((r) => r.id === first.id));
    });

    test('pruneRecords empties payloads up to a cursor, in batches, and keeps the metadata', async () => {
        await eventually('six contacts synced', async () =>
            (await nango.listRecords({ providerConfigKey: 'salesforce', connectionId, model: 'Contact', limit: 6 })).records.length === 6,
        );
        const first = await nango.listRecords({ providerConfigKey: 'salesforce', connectionId, model: 'Contact', limit: 5 });
        const untilCursor = first.records[4]._nango_metadata.cursor;
        const batch = await nango.pruneRecords({ providerConfigKey: 'salesforce', connectionId, model: 'Contact', untilCursor, limit: 2 });
        assert.deepEqual(batch, { count: 2, has_more: true });
        const rest = await nango.pruneRecords({ providerConfigKey: 'salesforce', connectionId, model: 'Contact', untilCursor });
        assert.deepEqual(rest, { count: 3, has_more: false });
        const after = await nango.listRecords({ providerConfigKey: 'salesforce', connectionId, model: 'Contact', limit: 6 });
        after.records.slice(0, 5).forEach((record, i) => {
            assert.equal(record.id, first.records[i].id);
            assert.deepEqual(Object.keys(record).sort(), ['_nango_metadata', 'id'], JSON.stringify(record));
            assert.ok(record._nango_metadata.pruned_at, JSON.stringify(record));
            assert.equal(record._nango_metadata.last_action, first.records[i]._nango_metadata.last_action);
        });
        assert.ok('last_name' in after.records[5], 'records past the cursor keep their payload');
        assert.equal(after.records[5]._nango_metadata.pruned_at, null);
    });
});
