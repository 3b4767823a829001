import type { SigningAlgorithm } from '../config';

export type { SigningAlgorithm } from '../config';

/**
 * A signing key as the store keeps it (table `signing_keys`). Times are milliseconds since the
 * epoch. Its state (next, current, retired) is not stored: it follows from the times and the
 * clock, so every instance reads the same state without telling the others.
 */
export interface SigningKeyRecord {
  kid: string;
  /** Orders the keys; unique, so two instances creating "the next key" at once cannot both succeed. */
  generation: number;
  alg: SigningAlgorithm;
  /** The private key (PKCS#8 DER) or the HS256 secret, AES-256-GCM under the key-encryption key. */
  privateEnc: string;
  /** The public JWK as JSON; null for HS256. */
  publicJwk: string | null;
  createdAt: number;
  /** From when the key is in the JWKS. */
  publishAt: number;
  /** From when the key signs (unless retired by then). */
  activateAt: number;
  /** From when the key no longer signs; null while nothing has replaced it. */
  retiredAt: number | null;
  /** Until when tokens it signed are still accepted: `retiredAt` + access token TTL + clock skew. */
  verifyUntil: number | null;
}
