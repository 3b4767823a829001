import request from 'supertest';
import { createClient } from '../../src/client';
import { makeApp, type TestApp } from '../support/make-app';

/**
 * A fetch that hands each request to the app's callback through supertest, so the generated
 * client is exercised end to end without opening a port.
 */
function appFetch(t: TestApp): typeof fetch {
  return async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    const url = new URL(req.url);
    const method = req.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete';
    let call = request(t.app.callback())[method](url.pathname + url.search);
    req.headers.forEach((value, key) => {
      call = call.set(key, value);
    });
    const body = req.body ? await req.text() : undefined;
    const res = await (body !== undefined ? call.send(body) : call);
    const headers = new Headers();
    for (const [k, v] of Object.entries(res.headers)) headers.set(k, Array.isArray(v) ? v.join(', ') : String(v));
    return new Response(res.status === 204 ? null : res.text, { status: res.status, headers });
  };
}

describe('the generated client', () => {
  test('when it logs in and asks who it is, then the typed answers match the server', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'olive' });
    const api = createClient({ baseUrl: 'http://127.0.0.1', fetch: appFetch(t) });

    const login = await api.POST('/login', { body: { name: 'olive', password: u.password } });
    expect(login.response.status).toBe(200);
    const token = login.data?.access_token;
    expect(typeof token).toBe('string');

    const me = await api.GET('/user', { headers: { Authorization: `Bearer ${token}` } });
    expect(me.data).toEqual({ id: u.id, name: 'olive', role: 'user' });

    const sessions = await api.GET('/sessions', { headers: { Authorization: `Bearer ${token}` } });
    expect(sessions.data?.[0]?.current).toBe(true);

    const bad = await api.POST('/login', { body: { name: 'olive', password: 'wrong-password' } });
    expect(bad.response.status).toBe(401);
    expect(bad.error?.code).toBe('invalid_credentials');

    const out = await api.POST('/logout', { headers: { Authorization: `Bearer ${token}` } });
    expect(out.response.status).toBe(204);
    const after = await api.GET('/user', { headers: { Authorization: `Bearer ${token}` } });
    expect(after.response.status).toBe(401);
    await t.close();
  });
});
