import { fixedClock } from '../../src/clock';
import {
  createKeyring,
  keyEncryptionKey,
  type KeyringSettings,
  openKeyMaterial,
  sealKeyMaterial,
  type SigningAlgorithm,
} from '../../src/services/signing-keys';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';

const SECRET = 'unit-test-secret-that-is-at-least-32-bytes';
const MINUTE = 60_000;
const TTL = 900;
const SKEW = 30;

const settings = (over: Partial<KeyringSettings> = {}): KeyringSettings => ({
  algorithm: 'ES256',
  rootSecret: SECRET,
  accessTokenTtl: TTL,
  clockSkew: SKEW,
  publishLeadMs: 10 * MINUTE,
  rotationPeriodMs: 0,
  ...over,
});

const stores: Store[] = [];
async function setup(over: Partial<KeyringSettings> = {}, store?: Store) {
  const s = store ?? (await openStore('sqlite::memory:'));
  if (!store) stores.push(s);
  const clock = fixedClock();
  const keyring = createKeyring({ store: s, clock, settings: settings(over) });
  return { store: s, clock, keyring };
}
afterAll(async () => {
  for (const s of stores) await s.close();
});

describe('key encryption at rest', () => {
  test('when material is sealed and opened with the same JWT_SECRET, then it comes back; the store holds no plain text', () => {
    const kek = keyEncryptionKey(SECRET);
    const material = Buffer.from('the private key bytes, 32 long!!');
    const sealed = sealKeyMaterial(kek, 'kid1', 'HS256', material);
    expect(sealed).not.toContain(material.toString('base64url'));
    expect(openKeyMaterial(kek, 'kid1', 'HS256', sealed)).toEqual(material);
  });

  test('when opened under another JWT_SECRET, or on another row (kid), then it fails with a message that names JWT_SECRET and the kid', () => {
    const sealed = sealKeyMaterial(keyEncryptionKey(SECRET), 'kid1', 'ES256', Buffer.from('x'));
    expect(() => openKeyMaterial(keyEncryptionKey(`${SECRET}-other`), 'kid1', 'ES256', sealed)).toThrow(/kid1 cannot be decrypted: JWT_SECRET is not the one/);
    expect(() => openKeyMaterial(keyEncryptionKey(SECRET), 'kid2', 'ES256', sealed)).toThrow(/kid2 cannot be decrypted/);
  });

  test('when a server starts with another JWT_SECRET than the keys were stored under, then sync fails clearly', async () => {
    const { store, keyring } = await setup();
    await keyring.sync();
    const other = createKeyring({ store, clock: fixedClock(), settings: settings({ rootSecret: `${SECRET}-but-another-one` }) });
    await expect(other.sync()).rejects.toThrow(/cannot be decrypted: JWT_SECRET is not the one it was stored under/);
  });
});

describe('key states follow the clock', () => {
  test.each<[SigningAlgorithm]>([['HS256'], ['ES256'], ['EdDSA']])(
    'when an empty store is synced (%s), then one current key signs, with a kid',
    async (alg) => {
      const { keyring } = await setup({ algorithm: alg });
      await keyring.sync();
      const list = keyring.list();
      expect(list).toHaveLength(1);
      expect(list[0]).toMatchObject({ alg, state: 'current', retiredAt: null });
      expect(keyring.signer().kid).toBe(list[0]?.kid);
      expect(keyring.publicJwks()).toHaveLength(alg === 'HS256' ? 0 : 1);
    },
  );

  test('when a key is rotated, then the new one is next (published, not signing) until the lead passes, then current; the old one retires and verifies one TTL + skew more', async () => {
    const { keyring, clock } = await setup();
    await keyring.sync();
    const old = keyring.signer().kid;
    const start = clock.now();
    const next = await keyring.rotate();
    expect(next.state).toBe('next');
    expect(next.activateAt).toBe(start + 10 * MINUTE);
    expect(keyring.signer().kid).toBe(old);
    expect(
      keyring
        .publicJwks()
        .map((k) => k.kid)
        .sort(),
    ).toEqual([old, next.kid].sort());

    clock.advance(10 * MINUTE);
    expect(keyring.signer().kid).toBe(next.kid);
    const states = Object.fromEntries(keyring.list().map((k) => [k.kid, k.state]));
    expect(states).toEqual({ [old]: 'retired', [next.kid]: 'current' });
    expect(keyring.verifier(old)).toBeDefined();

    // Its last token (signed at the hand-over) expires TTL later; with the skew, it verifies until then.
    clock.advance((TTL + SKEW) * 1000 - 1);
    expect(keyring.verifier(old)).toBeDefined();
    clock.advance(1);
    expect(keyring.verifier(old)).toBeUndefined();
    expect(keyring.publicJwks().map((k) => k.kid)).toEqual([next.kid]);
  });

  test('when a next key waits, then another rotate is refused; rotate --now hands over at once', async () => {
    const { keyring } = await setup();
    await keyring.sync();
    const first = keyring.signer().kid;
    const next = await keyring.rotate();
    await expect(keyring.rotate()).rejects.toThrow(/is waiting to sign/);
    await keyring.retire(next.kid);
    // Withdrawn: the key it was to replace keeps signing past the planned hand-over.
    expect(keyring.list().find((k) => k.kid === first)).toMatchObject({ state: 'current', retiredAt: null });
    expect(keyring.verifier(next.kid)).toBeUndefined();
    const now = await keyring.rotate({ immediately: true });
    expect(keyring.signer().kid).toBe(now.kid);
    expect(keyring.list().find((k) => k.kid === first)?.state).toBe('retired');
  });

  test('when the only current key is retired, then it is refused; remove refuses while its tokens may live, unless forced', async () => {
    const { keyring, clock } = await setup();
    await keyring.sync();
    const first = keyring.signer().kid;
    await expect(keyring.retire(first)).rejects.toThrow(/only one that signs/);
    await expect(keyring.remove(first)).rejects.toThrow(/not removed: it is the current key/);
    await keyring.rotate({ immediately: true });
    await expect(keyring.remove(first)).rejects.toThrow(/tokens it signed may be valid until/);
    clock.advance((TTL + SKEW) * 1000);
    await keyring.remove(first);
    expect(keyring.list().map((k) => k.kid)).not.toContain(first);
  });

  test('when the current key is removed by force, then the next sync makes a new one that signs at once', async () => {
    const { keyring } = await setup();
    await keyring.sync();
    const first = keyring.signer().kid;
    await keyring.remove(first, { force: true });
    expect(keyring.verifier(first)).toBeUndefined();
    await keyring.sync();
    expect(keyring.signer().kid).not.toBe(first);
  });

  test('when automatic rotation is on, then the next key is made one lead before the period ends, and takes over at the period', async () => {
    const { keyring, clock } = await setup({ rotationPeriodMs: 60 * MINUTE });
    await keyring.sync();
    const first = keyring.list()[0];
    const handOver = (first?.activateAt ?? 0) + 60 * MINUTE;
    clock.set(handOver - 10 * MINUTE - 1);
    await keyring.sync();
    expect(keyring.list()).toHaveLength(1);
    clock.advance(1);
    await keyring.sync();
    const next = keyring.list().find((k) => k.kid !== first?.kid);
    expect(next).toMatchObject({ state: 'next', activateAt: (first?.activateAt ?? 0) + 60 * MINUTE });
    // Syncing again makes no third key.
    await keyring.sync();
    expect(keyring.list()).toHaveLength(2);
    clock.set(handOver - 1);
    expect(keyring.signer().kid).toBe(first?.kid);
    clock.set(handOver);
    expect(keyring.signer().kid).toBe(next?.kid);
  });

  test('when two keyrings sync an empty store at once, then exactly one first key is made and both sign with it', async () => {
    const store = await openStore('sqlite::memory:');
    stores.push(store);
    const rings = await Promise.all(Array.from({ length: 5 }, () => setup({}, store)));
    await Promise.all(rings.map((r) => r.keyring.sync()));
    expect(await store.listSigningKeys()).toHaveLength(1);
    expect(new Set(rings.map((r) => r.keyring.signer().kid)).size).toBe(1);
  });

  test('when an instance whose clock runs behind (within the skew) starts after another made the first key, then it signs with that key and makes none', async () => {
    const store = await openStore('sqlite::memory:');
    stores.push(store);
    const ahead = createKeyring({ store, clock: fixedClock(Date.UTC(2026, 0, 1, 12)), settings: settings() });
    const behind = createKeyring({ store, clock: fixedClock(Date.UTC(2026, 0, 1, 12) - (SKEW - 1) * 1000), settings: settings() });
    await ahead.sync();
    await behind.sync();
    expect(await store.listSigningKeys()).toHaveLength(1);
    expect(behind.signer().kid).toBe(ahead.signer().kid);
  });

  test('when keys of another algorithm are stored, then they neither sign nor verify nor appear in the JWKS', async () => {
    const { store, keyring } = await setup({ algorithm: 'HS256' });
    await keyring.sync();
    const hsKid = keyring.signer().kid;
    const es = createKeyring({ store, clock: fixedClock(), settings: settings({ algorithm: 'ES256' }) });
    await es.sync();
    expect(es.signer().kid).not.toBe(hsKid);
    expect(es.verifier(hsKid)).toBeUndefined();
    expect(es.publicJwks().map((k) => k.kid)).toEqual([es.signer().kid]);
  });
});
