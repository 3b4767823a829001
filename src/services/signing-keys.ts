import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  hkdfSync,
  type JsonWebKey,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import type { Clock } from '../clock';
import { auditEvent } from './audit';
import type { SigningAlgorithm, SigningKeyRecord, Store } from '../store/store';

export type { SigningAlgorithm } from '../store/store';

/** A key's state at a moment, from its times: see {@link keyState}. */
export type KeyState = 'next' | 'current' | 'retired' | 'expired';

/** A key that signs: the one {@link KeyLookup.signer} returns. */
export interface SignerKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  /** The private key, or the HS256 secret: a KeyObject, never a string (jsonwebtoken re-parses strings per call). */
  readonly key: KeyObject;
}

/** A key that verifies: the public key, or the HS256 secret. */
export interface VerifierKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly key: KeyObject;
  /** Tokens it signed are refused from this moment (ms); Infinity while it has no successor. */
  readonly verifyUntil: number;
}

/** What signing and verifying read, on every request: in-memory, never the store. */
export interface KeyLookup {
  /** The configured algorithm: the only one signed with and accepted. */
  readonly algorithm: SigningAlgorithm;
  /** The key that signs now. Throws when there is none (the keyring was never synced). */
  signer(): SignerKey;
  /** The key with this kid while it may verify now, of the configured algorithm; else undefined. */
  verifier(kid: string): VerifierKey | undefined;
  /** Calls `listener` whenever the set of keys changes (a rotation, a retirement, a removal). */
  onChange(listener: () => void): void;
  /** Resolves once keys are loaded (the first sync, started here when none ran yet). */
  ready(): Promise<void>;
}

/** A public JWK as the JWKS serves it (RFC 7517 §4, RFC 8037 for OKP). */
export interface PublicJwk {
  kty: 'EC' | 'OKP';
  crv: 'P-256' | 'Ed25519';
  x: string;
  y?: string;
  kid: string;
  alg: 'ES256' | 'EdDSA';
  use: 'sig';
}

/** A key and its state, for the CLI's list and the logs: no key material. */
export interface KeyInfo {
  kid: string;
  alg: SigningAlgorithm;
  state: KeyState;
  generation: number;
  createdAt: number;
  publishAt: number;
  activateAt: number;
  retiredAt: number | null;
  verifyUntil: number | null;
}

/** Carries "the signing keys changed" between instances (Redis pub/sub); the store poll is the safety net. */
export interface KeyChangeBus {
  publish(): void;
  subscribe(listener: () => void, onResubscribed?: () => void): void;
}

export interface KeyringSettings {
  algorithm: SigningAlgorithm;
  /** JWT_SECRET: the root secret the key-encryption key is derived from. */
  rootSecret: string;
  /** Seconds. */
  accessTokenTtl: number;
  /** Seconds. */
  clockSkew: number;
  /** Milliseconds between a new key's publication in the JWKS and its first signature. */
  publishLeadMs: number;
  /** Milliseconds a key signs before the next one takes over; 0 turns automatic rotation off. */
  rotationPeriodMs: number;
}

/** The signing keys: loaded from the store, held in memory, rotated by time. */
export interface Keyring extends KeyLookup {
  /**
   * Reads the keys from the store; makes the first key when none of the configured algorithm
   * signs (race-free), and the next one when automatic rotation is due. Calls made while one runs
   * share it. Throws when a key that is needed cannot be decrypted (another JWT_SECRET).
   */
  sync(): Promise<void>;
  /** Reads the keys from the store and nothing more (no key is made); for tools. */
  load(): Promise<void>;
  /** Syncs every `intervalMs` until {@link stop}; errors go to `onError`. */
  start(intervalMs: number, onError: (error: unknown) => void): void;
  stop(): void;
  /** The public keys that may verify a token now (next, current, retired until their last token expired). */
  publicJwks(): PublicJwk[];
  /** Every stored key (of every algorithm) with its state, as last synced. */
  list(): KeyInfo[];
  /**
   * Makes a new key of the configured algorithm, published now, signing from `publishLeadMs`
   * later (at once with `immediately`); the current key retires at that moment. Refuses while a
   * next key is waiting. Tells the other instances.
   */
  rotate(opts?: { immediately?: boolean }): Promise<KeyInfo>;
  /** Retires a key now (a next key is withdrawn). Refuses to leave nothing that signs. */
  retire(kid: string): Promise<KeyInfo>;
  /** Deletes a key; refuses while tokens it signed may still be valid, unless `force`. */
  remove(kid: string, opts?: { force?: boolean }): Promise<void>;
}

/** A refusal of a key command, with a message fit to show (the CLI prints it). */
export class KeyringError extends Error {
  override readonly name = 'KeyringError';
}

/** HKDF info of the key-encryption key: its own, so no other key derived from JWT_SECRET equals it. */
const KEK_INFO = 'koa-jwt-auth-server signing-key encryption v1';
const ENC_PREFIX = 'v1.';

/** The AES-256-GCM key that seals private keys at rest, derived from JWT_SECRET (HKDF-SHA256). */
export function keyEncryptionKey(rootSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(rootSecret, 'utf8'), Buffer.alloc(0), KEK_INFO, 32));
}

// The kid and alg are bound in as associated data: a ciphertext copied onto another row does not open.
const aad = (kid: string, alg: string) => Buffer.from(`${kid}.${alg}`, 'utf8');

/** Seals key material under `kek` (AES-256-GCM, random 96-bit IV), bound to the key's kid and alg. */
export function sealKeyMaterial(kek: Buffer, kid: string, alg: SigningAlgorithm, material: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(aad(kid, alg));
  const sealed = Buffer.concat([cipher.update(material), cipher.final()]);
  return ENC_PREFIX + Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64url');
}

/** Opens what {@link sealKeyMaterial} sealed; throws a {@link KeyringError} that says why when it does not open. */
export function openKeyMaterial(kek: Buffer, kid: string, alg: SigningAlgorithm, sealed: string): Buffer {
  try {
    if (!sealed.startsWith(ENC_PREFIX)) throw new Error('unknown format');
    const raw = Buffer.from(sealed.slice(ENC_PREFIX.length), 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', kek, raw.subarray(0, 12));
    decipher.setAAD(aad(kid, alg));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
  } catch {
    throw new KeyringError(
      `The signing key ${kid} cannot be decrypted: JWT_SECRET is not the one it was stored under. ` +
        'Set the JWT_SECRET the keys were made with, or remove the keys (npm run keys -- remove <kid> --force; ' +
        'access tokens they signed are then refused and clients must refresh).',
    );
  }
}

/** A new key's material: the private key (PKCS#8 DER) or HS256 secret, and the public JWK. */
export function generateKeyMaterial(alg: SigningAlgorithm): { material: Buffer; publicJwk: JsonWebKey | null } {
  if (alg === 'HS256') return { material: randomBytes(32), publicJwk: null };
  const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return { material: pair.privateKey.export({ format: 'der', type: 'pkcs8' }), publicJwk: pair.publicKey.export({ format: 'jwk' }) };
}

/**
 * A key's state at `now`: `next` before it signs, `current` while it signs, `retired` once
 * replaced but still verifying, `expired` once every token it signed has expired (it is then
 * left out of the JWKS and refused, and may be removed).
 */
export function keyState(k: Pick<SigningKeyRecord, 'activateAt' | 'retiredAt' | 'verifyUntil'>, now: number): KeyState {
  if (k.retiredAt !== null && k.retiredAt <= now) return k.verifyUntil !== null && k.verifyUntil > now ? 'retired' : 'expired';
  if (k.activateAt > now) return 'next';
  return 'current';
}

const newKid = () => randomBytes(12).toString('base64url');

/** A stored key and its state at `now`, without its material. */
export const keyInfo = (r: SigningKeyRecord, now: number): KeyInfo => ({
  kid: r.kid,
  alg: r.alg,
  state: keyState(r, now),
  generation: r.generation,
  createdAt: r.createdAt,
  publishAt: r.publishAt,
  activateAt: r.activateAt,
  retiredAt: r.retiredAt,
  verifyUntil: r.verifyUntil,
});

interface Loaded {
  record: SigningKeyRecord;
  verify: KeyObject;
  /** Decrypted for keys that sign now or will (next): ready at their activation, with no store access. */
  sign?: KeyObject;
  jwk?: PublicJwk;
}

export function createKeyring(opts: { store: Store; clock: Clock; settings: KeyringSettings; bus?: KeyChangeBus }): Keyring {
  const { store, clock, settings, bus } = opts;
  const { algorithm } = settings;
  const kek = keyEncryptionKey(settings.rootSecret);
  const lifetimeMs = (settings.accessTokenTtl + settings.clockSkew) * 1000;
  let records: SigningKeyRecord[] = [];
  // Keys of the configured algorithm by kid. Replaced whole on each sync, read on every request.
  let loaded = new Map<string, Loaded>();
  let fingerprint = '';
  const listeners: (() => void)[] = [];
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let loadedOnce = false;

  const material = (r: SigningKeyRecord) => openKeyMaterial(kek, r.kid, r.alg, r.privateEnc);

  const load = (r: SigningKeyRecord, now: number, before: Loaded | undefined): Loaded => {
    const state = keyState(r, now);
    const wantSign = state === 'next' || state === 'current';
    // A record changes only in retiredAt/verifyUntil: its KeyObjects are kept across syncs.
    if (before && before.record.privateEnc === r.privateEnc && (before.sign !== undefined || !wantSign)) return { ...before, record: r };
    if (r.alg === 'HS256') {
      const secret = createSecretKey(material(r));
      return { record: r, verify: secret, sign: secret };
    }
    const jwk = JSON.parse(r.publicJwk as string) as JsonWebKey;
    const verify = createPublicKey({ key: jwk, format: 'jwk' });
    const publicJwk: PublicJwk =
      r.alg === 'ES256'
        ? { kty: 'EC', crv: 'P-256', x: String(jwk.x), y: String(jwk.y), kid: r.kid, alg: 'ES256', use: 'sig' }
        : { kty: 'OKP', crv: 'Ed25519', x: String(jwk.x), kid: r.kid, alg: 'EdDSA', use: 'sig' };
    const sign = wantSign ? createPrivateKey({ key: material(r), format: 'der', type: 'pkcs8' }) : undefined;
    return { record: r, verify, jwk: publicJwk, ...(sign ? { sign } : {}) };
  };

  const apply = (rows: SigningKeyRecord[]) => {
    const now = clock.now();
    const next = new Map<string, Loaded>();
    for (const r of rows) {
      if (r.alg !== algorithm || keyState(r, now) === 'expired') continue;
      next.set(r.kid, load(r, now, loaded.get(r.kid)));
    }
    records = rows;
    loaded = next;
    const print = rows.map((r) => `${r.kid}:${r.retiredAt}:${r.verifyUntil}`).join(',');
    if (print !== fingerprint) {
      const first = fingerprint === '';
      fingerprint = print;
      if (!first) for (const l of listeners) l();
    }
  };

  /** The key that signs at `now`: the latest activated, unretired key of the configured algorithm. */
  const signingRecord = (now: number): SigningKeyRecord | undefined => {
    let best: SigningKeyRecord | undefined;
    for (const r of records) {
      if (r.alg !== algorithm || keyState(r, now) !== 'current') continue;
      if (!best || r.activateAt > best.activateAt || (r.activateAt === best.activateAt && r.generation > best.generation)) best = r;
    }
    return best;
  };

  const makeRecord = (now: number, activateAt: number, generation: number): SigningKeyRecord => {
    const kid = newKid();
    const { material: raw, publicJwk } = generateKeyMaterial(algorithm);
    return {
      kid,
      generation,
      alg: algorithm,
      privateEnc: sealKeyMaterial(kek, kid, algorithm, raw),
      publicJwk: publicJwk === null ? null : JSON.stringify(publicJwk),
      createdAt: now,
      publishAt: now,
      activateAt,
      retiredAt: null,
      verifyUntil: null,
    };
  };

  const reload = async () => apply(await store.listSigningKeys());
  const maxGeneration = () => records.reduce((m, r) => Math.max(m, r.generation), 0);
  const waitingNext = (now: number) => records.find((r) => r.alg === algorithm && keyState(r, now) === 'next');

  /** Adds the next key after `current`; false when another process added one first. */
  const addNext = async (now: number, activateAt: number): Promise<SigningKeyRecord | undefined> => {
    const current = signingRecord(now);
    const record = makeRecord(now, activateAt, maxGeneration() + 1);
    // Tokens the old key signs up to the hand-over live one TTL more (and the skew, for the
    // instances whose clocks run late and sign with it a moment longer).
    const ok = await store.addSigningKey(record, current ? { kid: current.kid, verifyUntil: activateAt + lifetimeMs } : undefined);
    return ok ? record : undefined;
  };

  // Key changes go to the audit trail after they are made (a failed write is reported to the
  // caller; the change stands). Nobody is signed in behind them: the CLI or the schedule.
  const audit = (
    event: 'key_rotated' | 'key_retired' | 'key_removed',
    at: number,
    k: SigningKeyRecord,
    trigger: 'command' | 'schedule',
    more: Record<string, unknown> = {},
  ) =>
    store.recordAudit(
      auditEvent(event, at, undefined, { details: { kid: k.kid, alg: k.alg, activate_at: new Date(k.activateAt).toISOString(), trigger, ...more } }),
    );

  const syncOnce = async () => {
    await reload();
    const now = clock.now();
    if (!signingRecord(now)) {
      // No key of this algorithm signs (an empty store, a new JWT_ALGORITHM, a key removed by
      // force): make one that signs at once. Of instances doing this together, one wins.
      // It signs from a clock skew ago: an instance whose clock runs behind this one's (within
      // CLOCK_SKEW) sees it as current too, not as a key still to come.
      await store.createFirstSigningKey(makeRecord(now, now - settings.clockSkew * 1000, 0));
      await reload();
    } else if (settings.rotationPeriodMs > 0 && !waitingNext(now)) {
      const current = signingRecord(now) as SigningKeyRecord;
      // The next key is made a publish lead ahead of the hand-over, so resource servers have it
      // in their JWKS cache before its first token.
      const handOver = current.activateAt + settings.rotationPeriodMs;
      if (now >= handOver - settings.publishLeadMs) {
        const made = await addNext(now, Math.max(handOver, now + settings.publishLeadMs));
        if (made) {
          bus?.publish();
          await audit('key_rotated', now, made, 'schedule');
        }
        await reload();
      }
    }
    if (!signingRecord(clock.now())) throw new KeyringError(`No ${algorithm} signing key could be made or loaded.`);
    loadedOnce = true;
  };

  const find = (kid: string) => {
    const r = records.find((k) => k.kid === kid);
    if (!r) throw new KeyringError(`No signing key has the kid "${kid}".`);
    return r;
  };

  const keyring: Keyring = {
    algorithm,
    signer() {
      const r = signingRecord(clock.now());
      const k = r && loaded.get(r.kid);
      if (!r || !k?.sign) throw new Error('The keyring has no signing key: sync it first');
      return { kid: r.kid, alg: r.alg, key: k.sign };
    },
    verifier(kid) {
      const k = loaded.get(kid);
      if (!k) return undefined;
      const until = k.record.verifyUntil ?? Number.POSITIVE_INFINITY;
      if (clock.now() >= until) return undefined;
      return { kid, alg: k.record.alg, key: k.verify, verifyUntil: until };
    },
    onChange(listener) {
      listeners.push(listener);
    },
    ready() {
      if (loadedOnce) return Promise.resolve();
      return keyring.sync();
    },
    load: () => reload(),
    sync() {
      running ??= syncOnce().finally(() => {
        running = undefined;
      });
      return running;
    },
    start(intervalMs, onError) {
      keyring.stop();
      started = true;
      // The next sync is planned when this one ends: a store that hangs holds one, not a pile.
      const tick = () => {
        timer = setTimeout(() => {
          keyring
            .sync()
            .catch(onError)
            .finally(() => {
              if (started) tick();
            });
        }, intervalMs);
        timer.unref();
      };
      tick();
    },
    stop() {
      started = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
    publicJwks() {
      const now = clock.now();
      const out: PublicJwk[] = [];
      for (const k of loaded.values()) {
        if (!k.jwk || k.record.publishAt > now) continue;
        if (k.record.verifyUntil !== null && k.record.verifyUntil <= now) continue;
        out.push(k.jwk);
      }
      return out;
    },
    list() {
      const now = clock.now();
      return records.map((r) => keyInfo(r, now));
    },
    async rotate(o = {}) {
      await reload();
      const now = clock.now();
      const pending = waitingNext(now);
      if (pending) {
        throw new KeyringError(
          `The key ${pending.kid} is waiting to sign from ${new Date(pending.activateAt).toISOString()}; retire it first to rotate again.`,
        );
      }
      if (!signingRecord(now) && !o.immediately) {
        // Nothing of this algorithm signs: there is no hand-over to wait for.
        throw new KeyringError(`No ${algorithm} key signs yet: start the server once (it makes the first key), or rotate --now.`);
      }
      const record = await addNext(now, o.immediately ? now : now + settings.publishLeadMs);
      if (!record) throw new KeyringError('Another process rotated the keys at the same moment; see: npm run keys -- list');
      bus?.publish();
      await audit('key_rotated', now, record, 'command');
      await reload();
      return keyInfo(record, now);
    },
    async retire(kid) {
      await reload();
      const now = clock.now();
      const r = find(kid);
      const state = keyState(r, now);
      if (state === 'retired' || state === 'expired') throw new KeyringError(`The key ${kid} is retired already.`);
      if (state === 'current') {
        const others = records.filter((k) => k.kid !== kid && k.alg === r.alg && keyState(k, now) === 'current');
        if (others.length === 0) {
          throw new KeyringError(`The key ${kid} is the only one that signs: rotate instead (npm run keys -- rotate, or rotate --now).`);
        }
      }
      // A next key never signed: it stops verifying at once. A current one verifies its tokens out.
      const verifyUntil = state === 'next' ? now : now + lifetimeMs;
      if (!(await store.retireSigningKey(kid, now, verifyUntil))) throw new KeyringError(`The key ${kid} is retired already.`);
      if (state === 'next') {
        // The key it was to replace goes on signing: its planned retirement is undone.
        for (const k of records) {
          if (k.alg === r.alg && k.retiredAt === r.activateAt && k.kid !== kid) await store.unretireSigningKey(k.kid, r.activateAt);
        }
      }
      bus?.publish();
      await audit('key_retired', now, r, 'command');
      await reload();
      return keyInfo(find(kid), now);
    },
    async remove(kid, o = {}) {
      await reload();
      const now = clock.now();
      const r = find(kid);
      const state = keyState(r, now);
      if (state !== 'expired' && !o.force) {
        const why = state === 'retired' ? `tokens it signed may be valid until ${new Date(r.verifyUntil as number).toISOString()}` : `it is the ${state} key`;
        throw new KeyringError(`The key ${kid} is not removed: ${why}. Add --force to remove it anyway (its tokens are refused at once).`);
      }
      if (!(await store.deleteSigningKey(kid))) throw new KeyringError(`No signing key has the kid "${kid}".`);
      bus?.publish();
      await audit('key_removed', now, r, 'command', { forced: state !== 'expired' });
      await reload();
    },
  };
  bus?.subscribe(
    () => void keyring.sync().catch(() => undefined),
    () => void keyring.sync().catch(() => undefined),
  );
  return keyring;
}

/**
 * A keyring of one fixed HS256 key, for tools and tests that sign with a known secret: never
 * rotates, needs no store. Its kid is derived from the secret.
 */
export function staticHs256Keyring(secret: string | Buffer): KeyLookup {
  const key = createSecretKey(typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret);
  const kid = createHash('sha256').update('static-hs256-kid:').update(key.export()).digest('base64url').slice(0, 16);
  return {
    algorithm: 'HS256',
    signer: () => ({ kid, alg: 'HS256', key }),
    verifier: (k) => (k === kid ? { kid, alg: 'HS256', key, verifyUntil: Number.POSITIVE_INFINITY } : undefined),
    onChange: () => undefined,
    ready: () => Promise.resolve(),
  };
}
