// A browser stand-in over plain HTTP: Node's fetch with manual redirects and a small cookie jar
// per host:port, enough to walk Ferry's OAuth flow through the Salesforce emulator's login and
// consent pages the way a person's browser would.

/** Cookies keyed by `host:port`; each entry maps a cookie name to its value. */
export class CookieJar {
    constructor() {
        this.byHost = new Map();
    }

    /** Stores the `Set-Cookie` headers of a response received from `url`. */
    store(url, response) {
        const host = new URL(url).host;
        const lines = typeof response.headers.getSetCookie === 'function' ? response.headers.getSetCookie() : [];
        if (lines.length === 0) {
            return;
        }
        const jar = this.byHost.get(host) ?? new Map();
        for (const line of lines) {
            const [pair, ...attributes] = line.split(';');
            const eq = pair.indexOf('=');
            if (eq <= 0) {
                continue;
            }
            const name = pair.slice(0, eq).trim();
            const value = pair.slice(eq + 1).trim();
            const expired = attributes.some((a) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(a));
            if (expired || value === '') {
                jar.delete(name);
            } else {
                jar.set(name, value);
            }
        }
        this.byHost.set(host, jar);
    }

    /** The `Cookie` header value for a request to `url`, or undefined. */
    header(url) {
        const jar = this.byHost.get(new URL(url).host);
        if (!jar || jar.size === 0) {
            return undefined;
        }
        return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    }
}

/** One browser: a cookie jar and a record of every request made, for failure messages. */
export class Browser {
    constructor() {
        this.jar = new CookieJar();
        this.trail = [];
    }

    /** One request, no redirect following; returns `{status, location, url, text, headers}`. */
    async request(url, { method = 'GET', form, headers = {} } = {}) {
        const h = { 'user-agent': 'ferry-sdk-tests', accept: 'text/html,application/json;q=0.9,*/*;q=0.8', ...headers };
        const cookie = this.jar.header(url);
        if (cookie) {
            h.cookie = cookie;
        }
        let body;
        if (form) {
            h['content-type'] = 'application/x-www-form-urlencoded';
            body = new URLSearchParams(form).toString();
        }
        const response = await fetch(url, { method, headers: h, body, redirect: 'manual' });
        this.jar.store(url, response);
        const location = response.headers.get('location');
        const text = await response.text();
        const absolute = location ? new URL(location, url).href : undefined;
        this.trail.push(`${method} ${url} -> ${response.status}${absolute ? ` ${absolute}` : ''}`);
        return { status: response.status, location: absolute, url, text, headers: response.headers };
    }

    /** Follows redirects from a GET until a non-redirect answer, or until `stop(url)` says so. */
    async follow(url, { stop = () => false, max = 10 } = {}) {
        let current = await this.request(url);
        for (let i = 0; i < max && current.location && isRedirect(current.status); i++) {
            if (stop(current.location)) {
                return current;
            }
            current = await this.request(current.location);
        }
        return current;
    }

    /** The requests made so far, one per line. */
    describe() {
        return this.trail.join('\n');
    }
}

export function isRedirect(status) {
    return status >= 301 && status <= 308 && status !== 304;
}

function unescapeHtml(s) {
    return s
        .replace(/&quot;/g, '"')
        .replace(/&#39;|&#x27;|&apos;/g, "'")
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
        .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
        .replace(/&amp;/g, '&');
}

function attribute(tag, name) {
    const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i'));
    if (!m) {
        return undefined;
    }
    return unescapeHtml(m[1] ?? m[2] ?? m[3] ?? '');
}

/**
 * The form whose `action` contains `actionPart` in an HTML page: its absolute action URL and the
 * values of its `<input>` fields (hidden ones included). Throws with the page when absent.
 */
export function parseForm(html, pageUrl, actionPart) {
    const forms = [...html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)].map((m) => m[0]);
    const form = forms.find((f) => (attribute(f.match(/<form\b[^>]*>/i)[0], 'action') ?? '').includes(actionPart));
    if (!form) {
        throw new Error(`no form posting to ${actionPart} on ${pageUrl}:\n${html.slice(0, 2000)}`);
    }
    const open = form.match(/<form\b[^>]*>/i)[0];
    const action = new URL(attribute(open, 'action'), pageUrl).href;
    const fields = {};
    for (const [input] of form.matchAll(/<input\b[^>]*>/gi)) {
        const name = attribute(input, 'name');
        if (name !== undefined) {
            fields[name] = attribute(input, 'value') ?? '';
        }
    }
    return { action, fields };
}

/**
 * On the emulator's authorize page: logs in (when the login page shows) and answers the consent
 * page with `decision`. Returns the emulator's redirect response (to the callback).
 */
export async function loginAndConsent(browser, page, { username, password, decision = 'Allow' }) {
    let current = page;
    if (/\/services\/oauth2\/authorize\/login/.test(current.text)) {
        const login = parseForm(current.text, current.url, '/services/oauth2/authorize/login');
        current = await browser.request(login.action, {
            method: 'POST',
            form: { ...login.fields, username, password, Login: 'Log In' },
        });
        // Without `prompt=consent`, a user who allowed the app before goes straight back to the
        // callback: follow only redirects that stay on the emulator.
        if (isRedirect(current.status) && current.location && new URL(current.location).origin === new URL(login.action).origin) {
            current = await browser.request(current.location);
        }
        if (current.status !== 200 || !/\/services\/oauth2\/authorize\/consent/.test(current.text)) {
            if (isRedirect(current.status)) {
                return current;
            }
            throw new Error(`login as ${username} did not reach the consent page (status ${current.status}):\n${current.text.slice(0, 1500)}\n${browser.describe()}`);
        }
    }
    if (/\/services\/oauth2\/authorize\/consent/.test(current.text)) {
        const consent = parseForm(current.text, current.url, '/services/oauth2/authorize/consent');
        current = await browser.request(consent.action, { method: 'POST', form: { ...consent.fields, decision } });
    }
    if (!isRedirect(current.status) || !current.location) {
        throw new Error(`the emulator did not redirect after consent (status ${current.status}):\n${current.text.slice(0, 1500)}\n${browser.describe()}`);
    }
    return current;
}
