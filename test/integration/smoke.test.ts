import { expectContract } from '../support/contract-check';
import { makeApp } from '../support/make-app';

describe('smoke', () => {
  test('when a user logs in, then GET /user says who they are', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'alice' });
    const { access } = await t.login('alice', u.password);
    const res = await t.http().get('/user').set('Authorization', `Bearer ${access}`);
    expectContract(res, 'GET', '/user');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: u.id, name: 'alice', role: 'user' });
    await t.close();
  });
});
